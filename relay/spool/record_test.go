package spool

import (
	stdjson "encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay"
)

// fullItem sets every field a spool record keeps.
func fullItem() *relay.Item {
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	it := &relay.Item{
		Event: relay.Event{
			ID: "01900000-0000-7000-8000-000000000001", Source: "textbee", Format: "textbee", Type: "mms",
			Data:     map[string]string{"sender": "+15550001111", "message": "<b>hi</b> & bye"},
			Received: at, Priority: 3,
			Content: relay.Content{From: "+15550001111", To: "+15550002222", Text: "hi\nthere", Sent: at.Add(-time.Second),
				MessageID: "m-1", Status: "delivered", Attachments: []relay.Attachment{
					{Name: "a.jpg", ContentType: "image/jpeg", Size: 3, Data: []byte{0xff, 0xd8, 0}},
					{URL: "https://example.com/b.png"},
				}},
		},
		Attempts: 2, NextAttempt: at.Add(time.Minute), LastError: "451 later", DeadReason: "gave up",
		Died: at.Add(time.Hour), Delivered: []string{"ops"}, Refused: map[string]string{"audit": "550 no"},
		Owed: map[string][]string{"team": {"late@example.com"}}, Requeued: at.Add(2 * time.Hour),
		History: []relay.Attempt{{At: at, What: "attempt 1 failed: 451 later"}},
		State:   relay.StateWaiting,
	}
	return it
}

// TestRecordsReadAsEncodingJSONWroteThem: a record as every earlier
// hookmail wrote it with encoding/json reads back whole through the
// spool's codec, and a record the codec writes reads back whole with
// encoding/json, so neither an upgrade nor a downgrade loses a field.
func TestRecordsReadAsEncodingJSONWroteThem(t *testing.T) {
	want := fullItem()
	old, err := stdjson.Marshal(toRecord(want))
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeItem(old, relay.StateWaiting)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("encoding/json's record read back as\n%+v\nwant\n%+v", got, want)
	}

	raw, err := encodeItem(want)
	if err != nil {
		t.Fatal(err)
	}
	var r itemRecord
	if err := stdjson.Unmarshal(raw, &r); err != nil {
		t.Fatalf("encoding/json cannot read %s: %v", raw, err)
	}
	if got := r.item(relay.StateWaiting); !reflect.DeepEqual(got, want) {
		t.Errorf("encoding/json read the codec's record as\n%+v\nwant\n%+v", got, want)
	}
}

// TestRecordKeepsInvalidUTF8AsReplacement: an SMTP reply with invalid
// UTF-8, kept as the item's last error, is stored with U+FFFD in its place
// (as encoding/json stored it) rather than failing the retry's write.
func TestRecordKeepsInvalidUTF8AsReplacement(t *testing.T) {
	it := fullItem()
	it.LastError = "451 \xff later"
	raw, err := encodeItem(it)
	if err != nil {
		t.Fatalf("the record was not written: %v", err)
	}
	got, err := decodeItem(raw, relay.StateWaiting)
	if err != nil {
		t.Fatal(err)
	}
	if got.LastError != "451 \uFFFD later" {
		t.Errorf("last error read back as %q", got.LastError)
	}
}

// BenchmarkRecordCodec: what storing and leasing cost in the record's
// codec, beside encoding/json on the same record.
func BenchmarkRecordCodec(b *testing.B) {
	// The gateway's sample SMS, as accepted: not yet attempted.
	it := &relay.Item{Event: relay.Event{ID: "01900000-0000-7000-8000-000000000001", Source: "gateway", Type: "sms",
		Data: map[string]string{"id": "2", "rid": "10593", "sim": "1", "device": "00000000-0000-0000-d57d-f30cb6a89289",
			"phone": "+639760713666", "message": "Hello World!", "timestamp": "1645684231"},
		Received: time.Now()}, NextAttempt: time.Now()}
	raw, err := encodeItem(it)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := encodeItem(it); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeItem(raw, relay.StateWaiting); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json-encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := stdjson.Marshal(toRecord(it)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json-decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r itemRecord
			if err := stdjson.Unmarshal(raw, &r); err != nil {
				b.Fatal(err)
			}
			r.item(relay.StateWaiting)
		}
	})
}

// TestRecordsLeaveZeroFieldsOut: a field at its zero value is not written,
// as encoding/json's omitempty left it out (v2 writes a 0 for omitempty,
// so these are omitzero), and a duplicated name reads as encoding/json
// read it: the last one wins.
func TestRecordsLeaveZeroFieldsOut(t *testing.T) {
	it := &relay.Item{Event: relay.Event{ID: "a", Source: "textbee", Format: "textbee", Type: "mms", Received: time.Now(),
		Content: relay.Content{From: "+1", Attachments: []relay.Attachment{{URL: "https://example.com/a.jpg"}}}}, NextAttempt: time.Now()}
	raw, err := encodeItem(it)
	if err != nil {
		t.Fatal(err)
	}
	storm, err := marshal(stormRecord{Start: 1, Expires: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{`"priority"`, `"size"`, `"died"`, `"requeued"`, `"last_error"`} {
		if strings.Contains(string(raw), name) {
			t.Errorf("an item record with %s at zero: %s", name, raw)
		}
	}
	if strings.Contains(string(storm), `"folded"`) {
		t.Errorf("a storm record with folded at zero: %s", storm)
	}
	got, err := decodeItem([]byte(`{"event":{"id":"a","type":"sms","type":"mms","data":{}},"attempts":1,"attempts":2}`), relay.StateWaiting)
	if err != nil || got.Event.Type != "mms" || got.Attempts != 2 {
		t.Errorf("duplicated names read as %+v, %v; want the last of each", got, err)
	}
}
