package postgres

import (
	"context"
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
