package queuetest

import (
	"reflect"
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay"
)

// testContentKept: an event of a format other than zender keeps its
// format, canonical content (attachment bytes too) and priority through
// the queue, whether it is stored with a dedup key or without one, and
// the waiting item a List shows has them too.
func testContentKept(t *testing.T, h Harness) {
	q := open(t, h, Options{DedupWindow: time.Hour})
	mk := func(i int, dedup string) *relay.Event {
		ev := event(i, relay.TypeMMS)
		ev.Source, ev.Format, ev.Priority, ev.DedupKey = "android", relay.FormatSMSGate, 3, dedup
		ev.Content = relay.Content{From: "+15550001111", To: "+15550002222", Text: "two photos", MessageID: "m-1",
			Sent: base.UTC(), Status: "", Attachments: []relay.Attachment{
				{Name: "a.png", ContentType: "image/png", Size: 4, Data: []byte{0, 1, 2, 255}},
				{URL: "https://media.example/2", ContentType: "image/jpeg"},
			}}
		return ev
	}
	want := map[string]*relay.Event{}
	for i, key := range []string{"smsgate-key-1", ""} {
		ev := mk(i, key)
		want[ev.ID] = ev
		enqueue(t, q, ev)
	}
	for range want {
		l := lease(t, q)
		ev, ok := want[l.Item.Event.ID]
		if !ok {
			t.Fatalf("leased %s, which was not enqueued", l.Item.Event.ID)
		}
		got := l.Item.Event
		if got.Format != ev.Format || got.Source != ev.Source || got.Priority != ev.Priority ||
			!reflect.DeepEqual(got.Content, ev.Content) || !got.Content.Sent.Equal(ev.Content.Sent) {
			t.Errorf("%s (dedup key %q) comes back as %s/%s priority %d %+v, want %s/%s priority %d %+v",
				ev.ID, ev.DedupKey, got.Source, got.Format, got.Priority, got.Content, ev.Source, ev.Format, ev.Priority, ev.Content)
		}
		if err := q.Ack(t.Context(), l); err != nil {
			t.Fatal(err)
		}
	}
}
