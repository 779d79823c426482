package queuetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay"
)

func testEnqueueLeaseAck(t *testing.T, h Harness) {
	q := open(t, h, Options{})
	a, b := event(1, "sms"), event(2, "ussd")
	enqueue(t, q, a, b)
	l := lease(t, q)
	if l.Item.Event.ID != a.ID || l.Item.Event.Data["message"] != "event 1" || !l.Item.Event.Received.Equal(a.Received) {
		t.Fatalf("leased %+v, want event 1 whole", l.Item.Event)
	}
	if l.Token == "" || !l.Expires.After(time.Now()) {
		t.Errorf("lease token %q expires %s", l.Token, l.Expires)
	}
	if st := stats(t, q); st.Depth != 2 || st.Delivering != 1 {
		t.Errorf("stats while one is leased: %+v", st)
	}
	if err := q.Ack(t.Context(), l); err != nil {
		t.Fatal(err)
	}
	l2 := lease(t, q)
	if l2.Item.Event.ID != b.ID {
		t.Fatalf("leased %s second, want %s", l2.Item.Event.ID, b.ID)
	}
	if err := q.Ack(t.Context(), l2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the acks to be recorded", func() bool { st := stats(t, q); return st.Depth == 0 && st.Delivering == 0 })
	noLease(t, q, 100*time.Millisecond)
	if _, err := q.Get(t.Context(), a.ID); !errors.Is(err, relay.ErrNotFound) {
		t.Errorf("get an acked event: %v, want ErrNotFound", err)
	}
}

func testRetryKeepsProgress(t *testing.T, h Harness) {
	q := open(t, h, Options{})
	ev := event(1, "sms")
	enqueue(t, q, ev)
	l := lease(t, q)
	// Far enough ahead that the item is not due yet when noLease looks,
	// on a busy machine too.
	next := time.Now().Add(2 * time.Second)
	if err := q.Retry(t.Context(), l, next, progress(1, "451 try later")); err != nil {
		t.Fatal(err)
	}
	it, err := q.Get(t.Context(), ev.ID)
	if err != nil || it.State != relay.StateWaiting || !it.NextAttempt.Equal(next) {
		t.Fatalf("after retry: %+v %v; want waiting, due at %s", it, err, next)
	}
	checkProgress(t, it, 1, "451 try later")
	noLease(t, q, 150*time.Millisecond)
	l = lease(t, q)
	if time.Now().Before(next) {
		t.Errorf("leased before it was due")
	}
	checkProgress(t, &l.Item, 1, "451 try later")
	if err := q.Ack(t.Context(), l); err != nil {
		t.Fatal(err)
	}
}

func testBury(t *testing.T, h Harness) {
	q := open(t, h, Options{})
	ev := event(1, "sms")
	enqueue(t, q, ev)
	l := lease(t, q)
	if err := q.Bury(t.Context(), l, "permanent error: 550 no such user", progress(2, "550 no such user")); err != nil {
		t.Fatal(err)
	}
	it, err := q.Get(t.Context(), ev.ID)
	if err != nil || it.State != relay.StateDead || it.DeadReason != "permanent error: 550 no such user" || it.Died.IsZero() {
		t.Fatalf("after bury: %+v %v", it, err)
	}
	if it.Attempts != 2 || it.LastError != "550 no such user" || !slices.Equal(it.Delivered, []string{"ops"}) || len(it.History) < 2 {
		t.Errorf("progress after bury: %+v", it)
	} else if what := it.History[len(it.History)-2].What; what != "attempt 2 failed: 550 no such user" {
		t.Errorf("history %+v lacks the attempt", it.History)
	}
	if last := it.History[len(it.History)-1].What; last != "moved to the dead letters: permanent error: 550 no such user" {
		t.Errorf("the last history entry is %q, want the burial", last)
	}
	if st := stats(t, q); st.Depth != 0 || st.Dead != 1 || st.ByType["sms"] != (relay.TypeCount{Dead: 1}) {
		t.Errorf("stats after bury: %+v", st)
	}
	noLease(t, q, 100*time.Millisecond)
}

func testDueOrder(t *testing.T, h Harness) {
	q := open(t, h, Options{})
	ctx := t.Context()
	a, b, c := event(1, "sms"), event(2, "sms"), event(3, "sms")
	enqueue(t, q, a, b, c)
	now := time.Now()
	due := map[string]time.Duration{a.ID: 300 * time.Millisecond, b.ID: 100 * time.Millisecond, c.ID: 200 * time.Millisecond}
	for _, want := range []string{a.ID, b.ID, c.ID} { // due now: in the order they came
		l := lease(t, q)
		if l.Item.Event.ID != want {
			t.Fatalf("leased %s, want %s", l.Item.Event.ID, want)
		}
		if err := q.Retry(ctx, l, now.Add(due[want]), relay.Progress{Attempts: 1}); err != nil {
			t.Fatal(err)
		}
	}
	waiting := list(t, q, relay.Filter{State: relay.StateWaiting})
	if got := ids(waiting); !slices.Equal(got, []string{b.ID, c.ID, a.ID}) {
		t.Errorf("listed %v, want b, c, a: the order they are due", got)
	}
	for _, want := range []string{b.ID, c.ID, a.ID} {
		l := lease(t, q)
		if l.Item.Event.ID != want {
			t.Fatalf("leased %s, want %s", l.Item.Event.ID, want)
		}
		if time.Now().Before(now.Add(due[want])) {
			t.Errorf("leased %s before it was due", want)
		}
		if err := q.Ack(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
}

func testDedup(t *testing.T, h Harness) {
	// A window far longer than opening a second instance takes on a
	// loaded machine, which at 300 ms it once outlasted.
	const window = 2 * time.Second
	q := open(t, h, Options{DedupWindow: window})
	var q2 Backend
	if h.Shared { // opened before the window starts
		q2 = open(t, h, Options{DedupWindow: window})
	}
	first, again, other := event(1, "sms"), event(2, "sms"), event(3, "sms")
	first.DedupKey, again.DedupKey, other.DedupKey = "key-a", "key-a", "key-b"
	enqueue(t, q, first)
	var dup *relay.DuplicateError
	if err := q.Enqueue(t.Context(), again); !errors.As(err, &dup) || dup.ID != first.ID {
		t.Fatalf("the same key again: %v, want a duplicate of %s", err, first.ID)
	}
	enqueue(t, q, other)
	if h.Shared {
		if err := q2.Enqueue(t.Context(), again); !errors.As(err, &dup) || dup.ID != first.ID {
			t.Errorf("the same key on another instance: %v, want a duplicate of %s", err, first.ID)
		}
	}
	if st := stats(t, q); st.Depth != 2 {
		t.Errorf("depth %d, want 2 (the duplicate not stored)", st.Depth)
	}
	time.Sleep(window + 100*time.Millisecond)
	enqueue(t, q, again) // past the window: a new event
	if st := stats(t, q); st.Depth != 3 {
		t.Errorf("depth %d after the window, want 3", st.Depth)
	}
}

func testProgressAcrossReopen(t *testing.T, h Harness) {
	q := h.Open(Options{})
	ev := event(1, "sms")
	enqueue(t, q, ev)
	if err := q.Retry(t.Context(), lease(t, q), time.Now(), progress(3, "451 later")); err != nil {
		t.Fatal(err)
	}
	dead := event(2, "ussd")
	enqueue(t, q, dead)
	l := lease(t, q)
	for l.Item.Event.ID != dead.ID {
		if err := q.Retry(t.Context(), l, time.Now(), progress(3, "451 later")); err != nil {
			t.Fatal(err)
		}
		l = lease(t, q)
	}
	if err := q.Bury(t.Context(), l, "permanent", relay.Progress{Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = open(t, h, Options{})
	l = lease(t, q)
	if l.Item.Event.ID != ev.ID || l.Item.Event.Data["message"] != "event 1" {
		t.Fatalf("after reopening, leased %+v", l.Item.Event)
	}
	checkProgress(t, &l.Item, 3, "451 later")
	if it, err := q.Get(t.Context(), dead.ID); err != nil || it.State != relay.StateDead || it.DeadReason != "permanent" {
		t.Errorf("the dead letter after reopening: %+v %v", it, err)
	}
	if st := stats(t, q); st.Depth != 1 || st.Dead != 1 {
		t.Errorf("stats after reopening: %+v", st)
	}
}

func testCloseAndReopen(t *testing.T, h Harness) {
	q := h.Open(Options{})
	enqueue(t, q, event(1, "sms"), event(2, "sms"))
	l := lease(t, q)
	if err := q.Ack(t.Context(), l); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(t.Context(), event(3, "sms")); !errors.Is(err, relay.ErrQueueClosed) {
		t.Errorf("enqueue after close: %v, want ErrQueueClosed", err)
	}
	if _, err := q.Lease(t.Context()); !errors.Is(err, relay.ErrQueueClosed) {
		t.Errorf("lease after close: %v, want ErrQueueClosed", err)
	}
	q = open(t, h, Options{})
	// The ack accepted before Close was committed by Close.
	if st := stats(t, q); st.Depth != 1 {
		t.Errorf("after reopening: depth %d, want 1", st.Depth)
	}
}

func testLimits(t *testing.T, h Harness) {
	q := open(t, h, Options{MaxEvents: 2})
	enqueue(t, q, event(1, "sms"), event(2, "sms"))
	if err := q.Enqueue(t.Context(), event(3, "sms")); !errors.Is(err, relay.ErrQueueFull) {
		t.Errorf("past max events: %v, want ErrQueueFull", err)
	}
	if err := q.Ready(t.Context()); !errors.Is(err, relay.ErrQueueFull) {
		t.Errorf("ready when full: %v, want ErrQueueFull", err)
	}
	if err := q.Ack(t.Context(), lease(t, q)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "room again", func() bool { return q.Ready(t.Context()) == nil })
	enqueue(t, q, event(3, "sms"))
}

func testPriorityOrder(t *testing.T, h Harness) {
	q := open(t, h, Options{})
	ctx := t.Context()
	a, b, c, d, e := event(1, "sms"), event(2, "sms"), event(3, "sms"), event(4, "sms"), event(5, "sms")
	c.Priority, d.Priority, e.Priority = 5, 9, 5
	enqueue(t, q, a, b, c, d, e)
	// The highest priority first, each priority's in the order they came.
	var held []*relay.Lease
	for _, want := range []*relay.Event{d, c, e, a} {
		l := lease(t, q)
		if l.Item.Event.ID != want.ID || l.Item.Event.Priority != want.Priority {
			t.Fatalf("leased %s (priority %d), want %s (priority %d)", l.Item.Event.ID, l.Item.Event.Priority, want.ID, want.Priority)
		}
		held = append(held, l)
	}
	// A retry keeps the priority: c, due again soon, goes before b, which
	// has waited since before c came; a, due later, after both.
	now := time.Now()
	for _, r := range []struct {
		l   *relay.Lease
		due time.Time
	}{{held[1], now.Add(200 * time.Millisecond)}, {held[3], now.Add(time.Hour)}} {
		if err := q.Retry(ctx, r.l, r.due, relay.Progress{Attempts: 1}); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []*relay.Lease{held[0], held[2]} {
		if err := q.Ack(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	// (An ack may commit after it returns: d and e may still be listed.)
	got := slices.DeleteFunc(ids(list(t, q, relay.Filter{State: relay.StateWaiting})), func(id string) bool { return id == d.ID || id == e.ID })
	if !slices.Equal(got, []string{b.ID, c.ID, a.ID}) {
		t.Errorf("listed %v, want b, c, a: the order they are due, whatever their priority", got)
	}
	time.Sleep(time.Until(now.Add(200 * time.Millisecond)))
	for _, want := range []*relay.Event{c, b} {
		l := lease(t, q)
		if l.Item.Event.ID != want.ID || l.Item.Event.Priority != want.Priority {
			t.Fatalf("leased %s (priority %d), want %s (priority %d)", l.Item.Event.ID, l.Item.Event.Priority, want.ID, want.Priority)
		}
		if err := q.Ack(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	noLease(t, q, 50*time.Millisecond)
}
