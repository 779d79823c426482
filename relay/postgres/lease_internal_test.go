package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/postgres/pgtest"
)

// givenUp is a context its caller has given up on by the time anyone
// asks, though nothing was cancelled while a statement ran: what a Lease
// whose deadline passed during the claim sees afterwards.
type givenUp struct{ context.Context }

func (givenUp) Err() error { return context.DeadlineExceeded }

// TestLateClaimHandedBack: a claim that comes back after its caller gave up
// is handed back at once, so the item is due for the next leaser, not held
// until the lease lapses.
func TestLateClaimHandedBack(t *testing.T) {
	q, err := Open(t.Context(), pgtest.Database(t), WithLeaseTimeout(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ev := &relay.Event{ID: "late-1", Type: "sms", Received: time.Now()}
	if err := q.Enqueue(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	if l, _, err := q.next(givenUp{t.Context()}); l != nil || err == nil {
		t.Fatalf("next for a caller that gave up: %v %v, want no lease and its error", l, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	l, err := q.Lease(ctx)
	if err != nil {
		t.Fatalf("the item handed back is not leased again: %v", err)
	}
	if l.Item.Event.ID != ev.ID {
		t.Errorf("leased %s, want %s", l.Item.Event.ID, ev.ID)
	}
}

// TestOneEventWakesOneLeaser: an event stored while four leasers wait
// costs one claim, not a claim and a second query for every idle worker,
// twice (at the enqueue, and again when the instance's own NOTIFY comes
// back to its listener). The pool's acquisitions count the queries.
func TestOneEventWakesOneLeaser(t *testing.T) {
	q, err := Open(t.Context(), pgtest.Database(t), WithPoll(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	settle := func() { time.Sleep(500 * time.Millisecond) } // the NOTIFY and what it wakes
	queries := func(f func()) int64 {
		before := q.pool.Stat().AcquireCount()
		f()
		settle()
		return q.pool.Stat().AcquireCount() - before
	}
	enqueue := func(id string) {
		if err := q.Enqueue(t.Context(), &relay.Event{ID: id, Type: "sms", Received: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); !q.listening.Load(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the LISTEN connection is not up")
		}
	}
	// What an enqueue costs by itself: the insert and the NOTIFY.
	own := queries(func() { enqueue("alone") })
	if _, err := q.Lease(t.Context()); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	leased := make(chan string, 4)
	for range 4 {
		go func() {
			if l, err := q.Lease(ctx); err == nil {
				leased <- l.Item.Event.ID
			}
		}()
	}
	for deadline := time.Now().Add(5 * time.Second); q.waiters.Len() < 4; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d leasers waiting, want 4", q.waiters.Len())
		}
	}
	settle()
	n := queries(func() {
		enqueue("a")
		if id := <-leased; id != "a" {
			t.Errorf("leased %s, want a", id)
		}
	})
	if claims := n - own; claims != 1 {
		t.Errorf("one event while four leasers waited cost %d queries besides its own %d, want 1 claim", claims, own)
	}
	if w := q.waiters.Len(); w != 3 {
		t.Errorf("%d leasers waiting after, want the other 3", w)
	}
}

// TestWokenLeaserThatStopsPassesItOn: a leaser woken for a new event whose
// context ends before it looks hands the wake-up to the next leaser, which
// finds the event long before the poll (a minute here). The race between
// the wake-up and the cancel is run 10 times.
func TestWokenLeaserThatStopsPassesItOn(t *testing.T) {
	q, err := Open(t.Context(), pgtest.Database(t), WithPoll(time.Minute), WithListen(false))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	waiting := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); q.waiters.Len() < n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d leasers waiting, want %d", q.waiters.Len(), n)
			}
		}
	}
	leaser := func(ctx context.Context) chan *relay.Lease {
		got := make(chan *relay.Lease, 1)
		go func() {
			l, _ := q.Lease(ctx)
			got <- l
		}()
		return got
	}
	for i := range 10 {
		first, stop := context.WithCancel(t.Context())
		got1 := leaser(first)
		waiting(1)
		second, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		got2 := leaser(second)
		waiting(2)
		if err := q.Enqueue(t.Context(), &relay.Event{ID: fmt.Sprintf("e%d", i), Type: "sms", Received: time.Now()}); err != nil {
			t.Fatal(err)
		}
		stop() // the first leaser, woken for the event, stops
		l := <-got1
		if l == nil {
			if l = <-got2; l == nil {
				t.Fatalf("round %d: the event waited with a leaser idle", i)
			}
		} else {
			cancel()
			<-got2
		}
		if err := q.Ack(t.Context(), l); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
}
