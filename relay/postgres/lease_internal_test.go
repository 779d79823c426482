package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/postgres/pgtest"
	"github.com/hookmail/hookmail/relay/queuetest"
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

	leased := queuetest.IdleLeasers(t, q, 4)
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

// TestWokenLeaserThatStopsPassesItOn: see queuetest.WakeUpPassedOn, with
// polling at a minute and no LISTEN.
func TestWokenLeaserThatStopsPassesItOn(t *testing.T) {
	q, err := Open(t.Context(), pgtest.Database(t), WithPoll(time.Minute), WithListen(false))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	queuetest.WakeUpPassedOn(t, q, q.waiters.Len, 10)
}
