// Package queuetest is the conformance suite of hookmail's queue contract
// (relay.Queue, relay.Inspector and relay.DigestStore, storm counts
// included). Every backend's own tests call Run, as River's drivers run riverdrivertest: what one backend
// does, the others do too, so the workers and the admin API never need to
// know which one they run on.
package queuetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay"
)

// Backend is what a queue backend implements.
type Backend interface {
	relay.Queue
	relay.Inspector
	relay.DigestStore
}

// Options are the settings the suite opens a backend with.
type Options struct {
	LeaseTimeout time.Duration
	DedupWindow  time.Duration
	MaxEvents    int
}

// Harness opens the backend under test on one test's own storage.
type Harness struct {
	// Open opens an instance on the storage; after Close, Open again
	// reopens the same storage, as a restart does.
	Open func(o Options) Backend
	// Shared says that several instances may be open on the storage at
	// once (a database), not one at a time (a file one process locks).
	Shared bool
}

// Run runs the suite. newHarness makes fresh storage for each subtest.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	tests := []struct {
		name string
		run  func(t *testing.T, h Harness)
	}{
		{"EnqueueLeaseAck", testEnqueueLeaseAck},
		{"RetryKeepsProgress", testRetryKeepsProgress},
		{"Bury", testBury},
		{"RequeueAndDrop", testRequeueAndDrop},
		{"LeaseExclusive", testLeaseExclusive},
		{"LeaseExpires", testLeaseExpires},
		{"LeaseExtends", testLeaseExtends},
		{"DueOrder", testDueOrder},
		{"PriorityOrder", testPriorityOrder},
		{"Dedup", testDedup},
		{"ContentKept", testContentKept},
		{"ProgressAcrossReopen", testProgressAcrossReopen},
		{"CloseAndReopen", testCloseAndReopen},
		{"Limits", testLimits},
		{"ListPagesAndFilters", testListPagesAndFilters},
		{"ListContentFilters", testListContentFilters},
		{"StatsConsistent", testStatsConsistent},
		{"Digests", testDigests},
		{"DigestClaimExclusive", testDigestClaimExclusive},
		{"BuryDigestNeverLoses", testBuryDigestNeverLoses},
		{"StormCounts", testStormCounts},
		{"StormWindowEnds", testStormWindowEnds},
		{"StormCountsAtOnce", testStormCountsAtOnce},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newHarness(t))
		})
	}
}

// open opens an instance and closes it when the test ends.
func open(t *testing.T, h Harness, o Options) Backend {
	t.Helper()
	b := h.Open(o)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// event is the i-th test event: ids sort as they were made, as UUIDv7s do.
func event(i int, typ string) *relay.Event {
	return &relay.Event{
		ID: fmt.Sprintf("01900000-0000-7000-8000-%012d", i), Source: "gateway", Type: typ,
		Data:     map[string]string{"phone": "+15550001111", "message": fmt.Sprintf("event %d", i)},
		Received: base.Add(time.Duration(i) * time.Second),
	}
}

func enqueue(t *testing.T, q relay.Queue, evs ...*relay.Event) {
	t.Helper()
	for _, ev := range evs {
		if err := q.Enqueue(t.Context(), ev); err != nil {
			t.Fatalf("enqueue %s: %v", ev.ID, err)
		}
	}
}

// lease leases an item, failing the test when none comes within a while.
func lease(t *testing.T, q relay.Queue) *relay.Lease {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	l, err := q.Lease(ctx)
	if err != nil {
		t.Fatalf("lease: %v", err)
	}
	return l
}

// noLease asserts that nothing can be leased for d.
func noLease(t *testing.T, q relay.Queue, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	if l, err := q.Lease(ctx); err == nil {
		t.Fatalf("leased %s, want nothing due", l.Item.Event.ID)
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("lease: %v, want the context's deadline", err)
	}
}

func stats(t *testing.T, q relay.Queue) relay.Stats {
	t.Helper()
	st, err := q.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func list(t *testing.T, insp relay.Inspector, f relay.Filter) []relay.Item {
	t.Helper()
	var all []relay.Item
	for {
		page, err := insp.List(t.Context(), f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Items...)
		if page.Next == "" {
			return all
		}
		if f.Limit == 0 || len(page.Items) > f.Limit {
			t.Fatalf("a page of %d items with limit %d", len(page.Items), f.Limit)
		}
		f.After = page.Next
	}
}

func ids(items []relay.Item) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.Event.ID)
	}
	return out
}

// waitFor polls cond: a backend may commit an ack after Ack returns.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func progress(attempts int, what string) relay.Progress {
	return relay.Progress{
		Attempts:  attempts,
		Delivered: []string{"ops"},
		Refused:   map[string]string{"sales": "550 no such user"},
		Owed:      map[string][]string{"team": {"late@example.com"}},
		LastError: what,
		History:   []relay.Attempt{{At: base, What: fmt.Sprintf("attempt %d failed: %s", attempts, what)}},
	}
}

func checkProgress(t *testing.T, it *relay.Item, attempts int, what string) {
	t.Helper()
	if it.Attempts != attempts || it.LastError != what || !slices.Equal(it.Delivered, []string{"ops"}) ||
		it.Refused["sales"] != "550 no such user" || !slices.Equal(it.Owed["team"], []string{"late@example.com"}) {
		t.Errorf("progress %+v, want %d attempts, %q, ops delivered, sales refused, late@ owed", it, attempts, what)
	}
	if len(it.History) == 0 || it.History[len(it.History)-1].What != fmt.Sprintf("attempt %d failed: %s", attempts, what) {
		t.Errorf("history %+v lacks the attempt", it.History)
	}
}
