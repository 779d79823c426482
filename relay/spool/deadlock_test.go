package spool

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay"
)

// TestListDoesNotDeadlockWithALeaseAndAGrowingCommit: an operator's
// listing, a worker's lease and a commit that grows the file run at once.
// The commit waits for the listing's read transaction to end, and the
// lease, holding the spool's lock, waits for the commit; the listing must
// not then wait for that lock. When it did, nothing moved again: no
// webhook was stored, no email sent.
func TestListDoesNotDeadlockWithALeaseAndAGrowingCommit(t *testing.T) {
	s := openTestSpool(t, t.TempDir())
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		if err := s.Enqueue(ctx, testEvent(id)); err != nil {
			t.Fatal(err)
		}
	}
	var once sync.Once
	stored, leased := make(chan error, 1), make(chan error, 1)
	testHookListed = func() {
		once.Do(func() {
			// A record of 16 MB makes the commit grow the file, which
			// waits for this read transaction to end.
			big := testEvent("big")
			big.Data["message"] = strings.Repeat("x", 16<<20)
			go func() { stored <- s.Enqueue(ctx, big) }()
			time.Sleep(200 * time.Millisecond)
			// A lease takes the spool's lock, then waits to read.
			go func() {
				l, err := s.Lease(ctx)
				if err == nil {
					err = s.Ack(ctx, l)
				}
				leased <- err
			}()
			time.Sleep(200 * time.Millisecond)
		})
	}
	t.Cleanup(func() { testHookListed = nil })
	listed := make(chan error, 1)
	go func() {
		_, err := s.List(ctx, relay.Filter{})
		listed <- err
	}()
	for what, ch := range map[string]chan error{"the listing": listed, "the large event's commit": stored, "the lease": leased} {
		select {
		case err := <-ch:
			if err != nil {
				t.Errorf("%s: %v", what, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s has not ended in 20 s: deadlocked", what)
		}
	}
}
