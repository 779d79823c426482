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
	// Extended every 100 ms, a 3 s lease leaves a loaded machine room for
	// many slow extensions before it lapses (200 ms once did not).
	q := open(t, h, Options{LeaseTimeout: 3 * time.Second})
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
	noLease(t, q, 4500*time.Millisecond) // well past the lease, had it not been extended
	close(done)
	wg.Wait()
	if err := q.Retry(t.Context(), l, time.Now(), relay.Progress{Attempts: 1}); err != nil {
		t.Fatalf("retry with the extended lease: %v", err)
	}
}

// WakeUpPassedOn checks that a leaser woken for a new event, whose context
// ends before it looks, hands the wake-up to the next leaser in line: with
// one leaser woken per event, the event would otherwise wait with another
// leaser idle until something else woke one. waiting says how many
// leasers of q wait now. q must not find the event by polling within the
// 10 s a round allows. The race between the wake-up and the cancel is run
// rounds times. (A backend's own test calls it: how many wait is not part
// of relay.Queue.)
func WakeUpPassedOn(t *testing.T, q relay.Queue, waiting func() int, rounds int) {
	t.Helper()
	await := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); waiting() < n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d leasers waiting, want %d", waiting(), n)
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
	for i := range rounds {
		first, stop := context.WithCancel(t.Context())
		got1 := leaser(first)
		await(1)
		second, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		got2 := leaser(second)
		await(2)
		enqueue(t, q, event(i, "sms"))
		stop() // the first leaser, woken for the event, stops
		l := <-got1
		if l == nil {
			if l = <-got2; l == nil {
				cancel()
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

// IdleLeasers starts n leasers on q, each leasing once, and returns the
// channel their leased events' ids come on; they stop with the test.
func IdleLeasers(t *testing.T, q relay.Queue, n int) <-chan string {
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	leased := make(chan string, n)
	for range n {
		go func() {
			if l, err := q.Lease(ctx); err == nil {
				leased <- l.Item.Event.ID
			}
		}()
	}
	return leased
}
