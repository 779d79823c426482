package queuetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay"
)

func testLeaseExclusive(t *testing.T, h Harness) {
	q := open(t, h, Options{})
	var evs []*relay.Event
	for i := range 60 {
		evs = append(evs, event(i, "sms"))
	}
	enqueue(t, q, evs...)
	var mu sync.Mutex
	got := map[string]int{}
	var wg sync.WaitGroup
	leasers := []relay.Queue{q}
	if h.Shared {
		leasers = append(leasers, open(t, h, Options{}))
	}
	// The leasers go on until every event was leased or a deadline far
	// beyond a slow machine's passes: a Lease that times out on a busy
	// machine is no reason to stop while events wait.
	deadline := time.Now().Add(30 * time.Second)
	done := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == len(evs) || time.Now().After(deadline)
	}
	for i := range 8 {
		lq := leasers[i%len(leasers)]
		wg.Go(func() {
			for !done() {
				ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
				l, err := lq.Lease(ctx)
				cancel()
				if err != nil {
					continue
				}
				mu.Lock()
				got[l.Item.Event.ID]++
				mu.Unlock()
				if err := lq.Ack(t.Context(), l); err != nil {
					t.Errorf("ack: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if len(got) != len(evs) {
		t.Errorf("%d of %d events leased", len(got), len(evs))
	}
	for id, n := range got {
		if n != 1 {
			t.Errorf("%s leased %d times", id, n)
		}
	}
}

func testLeaseExpires(t *testing.T, h Harness) {
	q := open(t, h, Options{LeaseTimeout: 200 * time.Millisecond})
	enqueue(t, q, event(1, "sms"))
	first := lease(t, q) // never extended: its worker hung, or its instance died
	second := lease(t, q)
	if second.Item.Event.ID != first.Item.Event.ID || second.Token == first.Token {
		t.Fatalf("after the lease expired: %s %q, want the same item under a new token", second.Item.Event.ID, second.Token)
	}
	if time.Since(first.Expires) < -50*time.Millisecond {
		t.Errorf("leased again %s before the first lease expired", time.Until(first.Expires))
	}
	for name, err := range map[string]error{
		"extend": q.Extend(t.Context(), first),
		"retry":  q.Retry(t.Context(), first, time.Now(), relay.Progress{}),
		"bury":   q.Bury(t.Context(), first, "x", relay.Progress{}),
	} {
		if !errors.Is(err, relay.ErrLeaseLost) {
			t.Errorf("%s with the expired lease: %v, want ErrLeaseLost", name, err)
		}
	}
	if err := q.Ack(t.Context(), second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ack", func() bool { return stats(t, q).Depth == 0 })
}

func testLeaseExtends(t *testing.T, h Harness) {
	// Extended every 100 ms, a 1 s lease leaves a loaded machine room for
	// several slow extensions before it lapses (200 ms once did not).
	q := open(t, h, Options{LeaseTimeout: time.Second})
	enqueue(t, q, event(1, "sms"))
	l := lease(t, q)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
				if err := q.Extend(t.Context(), l); err != nil {
					t.Errorf("extend: %v", err)
					return
				}
			}
		}
	})
	noLease(t, q, 2500*time.Millisecond) // well past the lease, had it not been extended
	close(done)
	wg.Wait()
	if err := q.Retry(t.Context(), l, time.Now(), relay.Progress{Attempts: 1}); err != nil {
		t.Fatalf("retry with the extended lease: %v", err)
	}
}
