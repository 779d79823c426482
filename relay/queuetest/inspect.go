package queuetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

func testRequeueAndDrop(t *testing.T, h Harness) {
	q := open(t, h, Options{})
	ctx := t.Context()
	dead, waiting, held := event(1, "sms"), event(2, "sms"), event(3, "ussd")
	enqueue(t, q, dead)
	if err := q.Bury(ctx, lease(t, q), "no route", relay.Progress{Refused: map[string]string{"r": "550"}}); err != nil {
		t.Fatal(err)
	}
	if err := q.Requeue(ctx, dead.ID); err != nil {
		t.Fatal(err)
	}
	it, err := q.Get(ctx, dead.ID)
	if err != nil || it.State == relay.StateDead || it.DeadReason != "" || len(it.Refused) != 0 || it.Requeued.IsZero() {
		t.Fatalf("a requeued dead letter: %+v %v; want waiting, its refusals forgotten, Requeued set", it, err)
	}
	if last := it.History[len(it.History)-1].What; last != "requeued by an operator" {
		t.Errorf("history ends %q", last)
	}
	l := lease(t, q)
	if l.Item.Event.ID != dead.ID {
		t.Fatalf("leased %s, want the requeued dead letter", l.Item.Event.ID)
	}
	if err := q.Bury(ctx, l, "again", relay.Progress{}); err != nil {
		t.Fatal(err)
	}
	enqueue(t, q, waiting, held)
	l = lease(t, q) // waiting, the earliest due
	if err := q.Retry(ctx, l, time.Now().Add(time.Hour), relay.Progress{Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	hl := lease(t, q)
	if hl.Item.Event.ID != held.ID {
		t.Fatalf("leased %s, want %s", hl.Item.Event.ID, held.ID)
	}
	if err := q.Drop(ctx, held.ID); !errors.Is(err, relay.ErrBusy) {
		t.Errorf("drop a leased item: %v, want ErrBusy", err)
	}
	if err := q.Requeue(ctx, held.ID); !errors.Is(err, relay.ErrBusy) {
		t.Errorf("requeue a leased item: %v, want ErrBusy", err)
	}
	if err := q.Requeue(ctx, waiting.ID); err != nil {
		t.Fatal(err)
	}
	if it, _ := q.Get(ctx, waiting.ID); it.NextAttempt.After(time.Now()) {
		t.Errorf("a requeued waiting item is due at %s, want now", it.NextAttempt)
	}
	for _, id := range []string{waiting.ID, dead.ID} {
		if err := q.Drop(ctx, id); err != nil {
			t.Fatalf("drop %s: %v", id, err)
		}
		if _, err := q.Get(ctx, id); !errors.Is(err, relay.ErrNotFound) {
			t.Errorf("get a dropped item: %v", err)
		}
	}
	for _, err := range []error{q.Drop(ctx, "nope"), q.Requeue(ctx, "nope")} {
		if !errors.Is(err, relay.ErrNotFound) {
			t.Errorf("an unknown id: %v, want ErrNotFound", err)
		}
	}
	if err := q.Ack(ctx, hl); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "an empty queue", func() bool { st := stats(t, q); return st.Depth == 0 && st.Dead == 0 })
}

func testListPagesAndFilters(t *testing.T, h Harness) {
	q := open(t, h, Options{})
	ctx := t.Context()
	var want, wantUSSD []string
	for i := range 15 {
		typ := "sms"
		if i%3 == 0 {
			typ = "ussd"
			wantUSSD = append(wantUSSD, event(i, typ).ID)
		}
		enqueue(t, q, event(i, typ))
		want = append(want, event(i, typ).ID)
	}
	for _, limit := range []int{0, 1, 4, 15, 20} {
		if got := ids(list(t, q, relay.Filter{State: relay.StateWaiting, Limit: limit})); !slices.Equal(got, want) {
			t.Errorf("waiting, %d a page: %v, want %v", limit, got, want)
		}
	}
	if got := ids(list(t, q, relay.Filter{State: relay.StateWaiting, Type: "ussd", Limit: 2})); !slices.Equal(got, wantUSSD) {
		t.Errorf("ussd only: %v, want %v", got, wantUSSD)
	}
	// Items coming and going between pages neither repeat nor skip the
	// ones that stay.
	page, err := q.List(ctx, relay.Filter{State: relay.StateWaiting, Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Drop(ctx, want[6]); err != nil {
		t.Fatal(err)
	}
	rest := list(t, q, relay.Filter{State: relay.StateWaiting, Limit: 5, After: page.Next})
	if got := ids(append(page.Items, rest...)); !slices.Equal(got, slices.Delete(slices.Clone(want), 6, 7)) {
		t.Errorf("pages across a drop: %v", got)
	}
	// Dead letters, in the order they were received.
	for range 4 {
		l := lease(t, q)
		if err := q.Bury(ctx, l, "x", relay.Progress{}); err != nil {
			t.Fatal(err)
		}
	}
	dead := list(t, q, relay.Filter{State: relay.StateDead, Limit: 3})
	if got := ids(dead); !slices.Equal(got, want[:4]) {
		t.Errorf("dead letters: %v, want %v", got, want[:4])
	}
	for _, it := range dead {
		if it.State != relay.StateDead {
			t.Errorf("listed dead letter in state %q", it.State)
		}
	}
	if got := ids(list(t, q, relay.Filter{State: relay.StateDead, Type: "ussd"})); !slices.Equal(got, []string{want[0], want[3]}) {
		t.Errorf("ussd dead letters: %v", got)
	}
	if n, err := q.RequeueDead(ctx, relay.Filter{Type: "ussd"}); n != 2 || err != nil {
		t.Errorf("requeue the ussd dead letters: %d %v, want 2", n, err)
	}
	if n, err := q.RequeueDead(ctx, relay.Filter{}); n != 2 || err != nil {
		t.Errorf("requeue the rest: %d %v, want 2", n, err)
	}
}

func testListContentFilters(t *testing.T, h Harness) {
	q := open(t, h, Options{})
	ctx := t.Context()
	var evs []*relay.Event
	for i := range 12 {
		ev := event(i, "sms")
		if i%4 == 1 {
			ev.Source = "android"
		}
		switch i {
		case 5:
			ev.Data["message"] = "Your OTP is 4711"
		case 7:
			ev.Data["phone"] = "+639760713666"
		}
		evs = append(evs, ev)
		enqueue(t, q, ev)
	}
	router := relay.NewRouter([]config.Route{{Name: "phone", Match: map[string]string{"source": "android"}}, {Name: "rest"}})
	pick := func(is ...int) []string {
		var out []string
		for _, i := range is {
			out = append(out, evs[i].ID)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    relay.Filter
		want []string
	}{
		{"source", relay.Filter{Source: "android"}, pick(1, 5, 9)},
		{"text in the message, in any case", relay.Filter{Text: "otp"}, pick(5)},
		{"text in the sender", relay.Filter{Text: "9760713"}, pick(7)},
		{"text is the id", relay.Filter{Text: evs[3].ID}, pick(3)},
		{"route by the rules", relay.Filter{Route: "phone", Router: router}, pick(1, 5, 9)},
		{"route and text", relay.Filter{Route: "phone", Router: router, Text: "OTP"}, pick(5)},
		{"source and type", relay.Filter{Source: "android", Type: "ussd"}, nil},
		{"no such route", relay.Filter{Route: "nope", Router: router}, nil},
	} {
		for _, limit := range []int{0, 1, 2} {
			tc.f.State, tc.f.Limit = relay.StateWaiting, limit
			if got := ids(list(t, q, tc.f)); !slices.Equal(got, tc.want) {
				t.Errorf("%s, %d a page: %v, want %v", tc.name, limit, got, tc.want)
			}
		}
	}
	l := lease(t, q) // event 0, due first
	for _, limit := range []int{0, 1} {
		if got := ids(list(t, q, relay.Filter{State: relay.StateDelivering, Limit: limit})); !slices.Equal(got, pick(0)) {
			t.Errorf("delivering, %d a page: %v, want the leased event 0", limit, got)
		}
	}
	// A dead letter is taken by the routes of its progress too, whatever
	// the rules say now.
	if err := q.Bury(ctx, l, "x", progress(1, "550")); err != nil {
		t.Fatal(err)
	}
	for _, route := range []string{"ops", "sales", "team"} {
		if got := ids(list(t, q, relay.Filter{State: relay.StateDead, Route: route, Router: router})); !slices.Equal(got, pick(0)) {
			t.Errorf("dead letters of route %s: %v, want event 0", route, got)
		}
	}
	for range 2 { // events 1 (android) and 2
		if err := q.Bury(ctx, lease(t, q), "x", relay.Progress{}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := q.RequeueDead(ctx, relay.Filter{Source: "android"}); n != 1 || err != nil {
		t.Errorf("requeue the android dead letters: %d %v, want 1", n, err)
	}
	if n, err := q.RequeueDead(ctx, relay.Filter{Text: "EVENT 2"}); n != 1 || err != nil {
		t.Errorf("requeue the dead letters saying event 2: %d %v, want 1", n, err)
	}
	if got := ids(list(t, q, relay.Filter{State: relay.StateDead})); !slices.Equal(got, pick(0)) {
		t.Errorf("dead letters left: %v, want event 0", got)
	}
}

func testStatsConsistent(t *testing.T, h Harness) {
	q := open(t, h, Options{})
	ctx := t.Context()
	for i := range 9 {
		typ := []string{"sms", "ussd", "telegram"}[i%3]
		enqueue(t, q, event(i, typ))
	}
	if err := q.Ack(ctx, lease(t, q)); err != nil { // event 0, sms
		t.Fatal(err)
	}
	for range 2 { // events 1 (ussd) and 2 (telegram)
		if err := q.Bury(ctx, lease(t, q), "x", relay.Progress{}); err != nil {
			t.Fatal(err)
		}
	}
	held := lease(t, q) // event 3, sms
	waitFor(t, "the ack", func() bool { return stats(t, q).Depth == 6 })
	st := stats(t, q)
	waiting := list(t, q, relay.Filter{State: relay.StateWaiting})
	dead := list(t, q, relay.Filter{State: relay.StateDead})
	if st.Depth != len(waiting) || st.Dead != len(dead) || st.Dead != 2 || st.Delivering != 1 {
		t.Errorf("stats %+v, listed %d waiting and %d dead", st, len(waiting), len(dead))
	}
	want := map[string]relay.TypeCount{"sms": {Waiting: 2}, "ussd": {Waiting: 2, Dead: 1}, "telegram": {Waiting: 2, Dead: 1}}
	for typ, c := range want {
		if st.ByType[typ] != c {
			t.Errorf("%s counts %+v, want %+v", typ, st.ByType[typ], c)
		}
	}
	if !st.Oldest.Equal(event(3, "").Received) {
		t.Errorf("oldest %s, want event 3's %s", st.Oldest, event(3, "").Received)
	}
	delivering := 0
	for _, it := range waiting {
		if it.State == relay.StateDelivering {
			delivering++
			if it.Event.ID != held.Item.Event.ID {
				t.Errorf("%s listed as delivering", it.Event.ID)
			}
		}
	}
	if delivering != 1 {
		t.Errorf("%d listed as delivering, want 1", delivering)
	}
	if it, _ := q.Get(ctx, held.Item.Event.ID); it.State != relay.StateDelivering {
		t.Errorf("the leased item's state: %q", it.State)
	}
}
