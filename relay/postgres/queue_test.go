package postgres_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/postgres"
	"github.com/hookmail/hookmail/relay/postgres/pgtest"
)

// TestHistoryCapped: the statement that stores a retry's progress keeps the
// last relay.MaxHistory entries, as relay.Item.Record does.
func TestHistoryCapped(t *testing.T) {
	q := open(t, pgtest.Database(t))
	defer q.Close()
	ctx := t.Context()
	ev := testEvent(1)
	if err := q.Enqueue(ctx, ev); err != nil {
		t.Fatal(err)
	}
	const attempts = relay.MaxHistory + 5
	for i := 1; i <= attempts; i++ {
		l := leaseWithin(t, q, 5*time.Second)
		p := l.Item.Progress()
		p.Attempts = i
		p.History = []relay.Attempt{{At: time.Unix(int64(i), 0), What: fmt.Sprintf("attempt %d", i)}}
		if err := q.Retry(ctx, l, time.Now(), p); err != nil {
			t.Fatal(err)
		}
	}
	it, err := q.Get(ctx, ev.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(it.History) != relay.MaxHistory || it.Attempts != attempts {
		t.Fatalf("%d history entries after %d attempts (%d recorded), want %d", len(it.History), attempts, it.Attempts, relay.MaxHistory)
	}
	for i, h := range it.History {
		n := attempts - relay.MaxHistory + 1 + i
		if h.What != fmt.Sprintf("attempt %d", n) || !h.At.Equal(time.Unix(int64(n), 0)) {
			t.Errorf("history[%d] = %+v, want attempt %d, oldest first", i, h, n)
		}
	}
}

// TestOperatorEndsLapsedLease: requeueing or dropping an item whose lease
// lapsed ends that lease: its worker can no longer settle the item.
func TestOperatorEndsLapsedLease(t *testing.T) {
	// Long enough that the first requeue surely comes under the lease,
	// on a busy machine too.
	q := open(t, pgtest.Database(t), postgres.WithLeaseTimeout(2*time.Second))
	defer q.Close()
	ctx := t.Context()
	ev := testEvent(1)
	if err := q.Enqueue(ctx, ev); err != nil {
		t.Fatal(err)
	}
	l := leaseWithin(t, q, 5*time.Second)
	if err := q.Requeue(ctx, ev.ID); !errors.Is(err, relay.ErrBusy) {
		t.Fatalf("requeue under a lease: %v, want ErrBusy", err)
	}
	time.Sleep(time.Until(l.Expires) + 100*time.Millisecond)
	if err := q.Requeue(ctx, ev.ID); err != nil {
		t.Fatalf("requeue once the lease lapsed: %v", err)
	}
	for name, err := range map[string]error{
		"extend": q.Extend(ctx, l),
		"retry":  q.Retry(ctx, l, time.Now(), relay.Progress{}),
		"bury":   q.Bury(ctx, l, "x", relay.Progress{}),
		"ack":    q.Ack(ctx, l),
	} {
		if !errors.Is(err, relay.ErrLeaseLost) {
			t.Errorf("%s after an operator requeued the item: %v, want ErrLeaseLost", name, err)
		}
	}
	l = leaseWithin(t, q, 5*time.Second)
	time.Sleep(time.Until(l.Expires) + 100*time.Millisecond)
	if err := q.Drop(ctx, ev.ID); err != nil {
		t.Fatalf("drop once the lease lapsed: %v", err)
	}
	if err := q.Ack(ctx, l); !errors.Is(err, relay.ErrLeaseLost) {
		t.Errorf("ack after an operator dropped the item: %v, want ErrLeaseLost", err)
	}
}

// TestDedupAtOnce: the same event posted to several instances at the same
// moment is stored once; every other copy is a duplicate naming it.
func TestDedupAtOnce(t *testing.T) {
	url := pgtest.Database(t)
	qs := []*postgres.Queue{open(t, url, postgres.WithDedupWindow(time.Hour)), open(t, url, postgres.WithDedupWindow(time.Hour))}
	for _, q := range qs {
		defer q.Close()
	}
	const copies = 12
	errs := make([]error, copies)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range copies {
		wg.Go(func() {
			ev := testEvent(i)
			ev.DedupKey = "gateway|sms|42"
			<-start
			errs[i] = qs[i%len(qs)].Enqueue(t.Context(), ev)
		})
	}
	close(start)
	wg.Wait()
	var stored []string
	dups := map[string]int{}
	for i, err := range errs {
		var dup *relay.DuplicateError
		switch {
		case err == nil:
			stored = append(stored, testEvent(i).ID)
		case errors.As(err, &dup):
			dups[dup.ID]++
		default:
			t.Errorf("copy %d: %v", i, err)
		}
	}
	if len(stored) != 1 || dups[stored[0]] != copies-1 {
		t.Errorf("stored %v, duplicates naming %v; want one stored and %d duplicates naming it", stored, dups, copies-1)
	}
	if st, err := qs[0].Stats(t.Context()); err != nil || st.Depth != 1 {
		t.Errorf("depth %d %v, want 1", st.Depth, err)
	}
}
