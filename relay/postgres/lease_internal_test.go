package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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
// wakes one of them, not every idle worker twice over (at the enqueue, and
// again when the instance's own NOTIFY comes back to its listener). Each
// wake-up is a claim and, when it finds nothing, a second query: with the
// broadcast, counted by the pool's acquisitions, one event cost 13 queries
// besides its own 2.
func TestOneEventWakesOneLeaser(t *testing.T) {
	q, err := Open(t.Context(), pgtest.Database(t), WithPoll(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	listening(t, q)
	leased := idle(t, q, 4)
	before := q.waiters.Wakes()
	if err := q.Enqueue(t.Context(), &relay.Event{ID: "a", Type: "sms", Received: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if id := <-leased; id != "a" {
		t.Errorf("leased %s, want a", id)
	}
	time.Sleep(500 * time.Millisecond) // the NOTIFY back, and anything it wakes
	if n := q.waiters.Wakes() - before; n != 1 {
		t.Errorf("one event woke %d leasers, want 1", n)
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

// listening waits until q's LISTEN connection is up.
func listening(t *testing.T, q *Queue) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !q.listening.Load(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the LISTEN connection is not up")
		}
	}
}

// idle starts n leasers on q and waits until all n are in line.
func idle(t *testing.T, q *Queue, n int) <-chan string {
	t.Helper()
	leased := queuetest.IdleLeasers(t, q, n)
	for deadline := time.Now().Add(5 * time.Second); q.waiters.Len() < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d leasers waiting, want %d", q.waiters.Len(), n)
		}
	}
	return leased
}

// TestNotifyFromElsewhereWakesEveryLeaser: a NOTIFY from another instance,
// or from an older hookmail whose payload is empty, does not say how many
// events it stands for, so it wakes every idle leaser; the instance's own
// comes back to it and wakes none.
func TestNotifyFromElsewhereWakesEveryLeaser(t *testing.T) {
	url := pgtest.Database(t)
	q, err := Open(t.Context(), url, WithPoll(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	listening(t, q)
	idle(t, q, 3)
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// wakes sends a NOTIFY and counts the wakes it made: until want have
	// come (at most 10 s: a busy machine delivers late), then 300 ms more,
	// long enough for a stray one to show, and until the woken leasers
	// are back in line.
	wakes := func(payload string, want int64) int64 {
		before := q.waiters.Wakes()
		if _, err := conn.Exec(t.Context(), "SELECT pg_notify($1, $2)", channel, payload); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); q.waiters.Wakes()-before < want && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		for deadline := time.Now().Add(10 * time.Second); q.waiters.Len() < 3 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		return q.waiters.Wakes() - before
	}
	if n := wakes(q.owner, 0); n != 0 {
		t.Errorf("the instance's own NOTIFY woke %d leasers, want 0", n)
	}
	for _, payload := range []string{"", "another-instance"} {
		if n := wakes(payload, 3); n != 3 {
			t.Errorf("a NOTIFY with payload %q woke %d leasers, want all 3", payload, n)
		}
	}
}

// TestRequeueWakesEveryLeaser: an operator's requeue of many dead letters
// wakes every idle leaser, so they are delivered together, not one at a
// time until the poll.
func TestRequeueWakesEveryLeaser(t *testing.T) {
	q, err := Open(t.Context(), pgtest.Database(t), WithPoll(time.Minute), WithListen(false))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for i := range 3 {
		if err := q.Enqueue(t.Context(), &relay.Event{ID: fmt.Sprintf("d%d", i), Type: "sms", Received: time.Now()}); err != nil {
			t.Fatal(err)
		}
		l, err := q.Lease(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Bury(t.Context(), l, "test", relay.Progress{}); err != nil {
			t.Fatal(err)
		}
	}
	leased := idle(t, q, 3)
	if n, err := q.RequeueDead(t.Context(), relay.Filter{}); err != nil || n != 3 {
		t.Fatalf("RequeueDead = %d, %v", n, err)
	}
	for i := range 3 {
		select {
		case <-leased:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of 3 requeued events leased with 3 leasers idle", i)
		}
	}
}
