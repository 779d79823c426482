package spool

import (
	"context"
	"errors"
	"reflect"
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

// TestListReadsInChunks: a listing read a few records per read
// transaction pages exactly as one read in a single transaction, and a
// listing whose context has ended stops: a filter that matches little
// walked the whole spool in one read transaction, past the admin page's
// timeout, holding up every commit that grows the file meanwhile.
func TestListReadsInChunks(t *testing.T) {
	s := openTestSpool(t, t.TempDir())
	ctx := t.Context()
	enqueueMixed(t, s, 10)
	all := func(f relay.Filter) []string {
		var ids []string
		for {
			page, err := s.List(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range page.Items {
				ids = append(ids, it.Event.ID)
			}
			if page.Next == "" {
				return ids
			}
			f.After = page.Next
		}
	}
	filters := []relay.Filter{{}, {Limit: 2}, {Type: "whatsapp", Limit: 1}, {Type: "whatsapp"}, {Type: "ussd", Limit: 3}}
	var whole [][]string
	for _, f := range filters {
		whole = append(whole, all(f))
	}
	defer func(n int) { listChunk = n }(listChunk)
	listChunk = 3
	for i, f := range filters {
		if got := all(f); !reflect.DeepEqual(got, whole[i]) {
			t.Errorf("filter %+v read 3 at a time: %v, want %v", f, got, whole[i])
		}
	}
	if len(whole[2]) != 4 || len(whole[4]) != 0 {
		t.Errorf("whatsapp %v, ussd %v: want 4 and none", whole[2], whole[4])
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.List(done, relay.Filter{Type: "ussd"}); !errors.Is(err, context.Canceled) {
		t.Errorf("a listing whose context ended: %v, want it stopped", err)
	}
}
