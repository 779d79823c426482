package queuetest

import (
	"sync"
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay"
)

// PaceHarness opens the PaceStore under test on one test's own storage.
type PaceHarness struct {
	// Open opens a store on the storage: each call another instance's,
	// all taking from the same buckets.
	Open func() relay.PaceStore
}

// RunPace runs the PaceStore suite. newHarness makes fresh storage for each
// subtest.
func RunPace(t *testing.T, newHarness func(t *testing.T) PaceHarness) {
	tests := []struct {
		name string
		run  func(t *testing.T, h PaceHarness)
	}{
		{"TakeSpaces", testTakeSpaces},
		{"TakeAllOrNothing", testTakeAllOrNothing},
		{"RateAcrossInstances", testRateAcrossInstances},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newHarness(t))
		})
	}
}

func take(t *testing.T, s relay.PaceStore, buckets ...relay.Bucket) []time.Duration {
	t.Helper()
	waits, err := s.Take(t.Context(), buckets)
	if err != nil {
		t.Fatalf("take %v: %v", buckets, err)
	}
	return waits
}

func testTakeSpaces(t *testing.T, h PaceHarness) {
	s := h.Open()
	// Long enough that the second take surely comes within the first's
	// slot on a busy machine (two round trips on Postgres).
	b := relay.Bucket{Key: relay.BucketSMTP, Every: 2 * time.Second}
	if waits := take(t, s, b); waits != nil {
		t.Fatalf("first take: waits %v, want the slot", waits)
	}
	waits := take(t, s, b)
	if len(waits) != 1 || waits[0] <= 0 || waits[0] > b.Every {
		t.Fatalf("take again at once: waits %v, want one wait within %s", waits, b.Every)
	}
	time.Sleep(waits[0] + 5*time.Millisecond)
	if waits := take(t, s, b); waits != nil {
		t.Fatalf("take after the wait: waits %v, want the slot", waits)
	}
}

func testTakeAllOrNothing(t *testing.T, h PaceHarness) {
	s := h.Open()
	smtp := relay.Bucket{Key: relay.BucketSMTP, Every: time.Hour}
	route := relay.Bucket{Key: relay.RouteBucket("otp"), Every: time.Hour}
	if waits := take(t, s, smtp); waits != nil {
		t.Fatalf("first take: waits %v, want the slot", waits)
	}
	waits := take(t, s, smtp, route)
	if len(waits) != 2 || waits[0] <= 0 || waits[1] != 0 {
		t.Fatalf("take with a bucket that has no slot: waits %v, want [>0 0]", waits)
	}
	if waits := take(t, s, route); waits != nil {
		t.Errorf("the route's bucket after a take that failed: waits %v, want its slot untaken", waits)
	}
}

// testRateAcrossInstances: two instances and four takers each, taking as
// fast as the buckets let them for a while, get no more than the rate
// allows in all, as if they were one.
func testRateAcrossInstances(t *testing.T, h PaceHarness) {
	const every, run = 50 * time.Millisecond, 1500 * time.Millisecond
	b := relay.Bucket{Key: relay.BucketSMTP, Every: every}
	stores := []relay.PaceStore{h.Open(), h.Open()}
	var mu sync.Mutex
	taken := 0
	end := time.Now().Add(run)
	var wg sync.WaitGroup
	for i := range 8 {
		s := stores[i%2]
		wg.Go(func() {
			for time.Now().Before(end) {
				waits, err := s.Take(t.Context(), []relay.Bucket{b})
				if err != nil {
					t.Error(err)
					return
				}
				if waits == nil {
					mu.Lock()
					taken++
					mu.Unlock()
					continue
				}
				time.Sleep(min(waits[0], time.Until(end)))
			}
		})
	}
	wg.Wait()
	// One slot every 50 ms, and one at the edge; a slot the database gave
	// just before the run's end was counted by its taker a little later.
	if limit := int(run/every) + 2; taken > limit || taken == 0 {
		t.Errorf("took %d slots in %s at one every %s, want 1 to %d", taken, run, every, limit)
	}
}
