package relay

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// testClock is a settable clock for spools.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func dedupEvent(id, senderID string) *Event {
	ev := testEvent(id)
	ev.Data["id"] = senderID
	ev.DedupKey = dedupKey([32]byte{}, ev.Type, senderID)
	return ev
}

func TestSpoolDedupWithinWindowAcrossRestart(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	clock := &testClock{now: time.Unix(1_700_000_000, 0)}
	s, err := OpenSpool(dir, clock.Now, WithDedupWindow(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Enqueue(ctx, dedupEvent("e1", "42")); err != nil {
		t.Fatal(err)
	}
	var dup *DuplicateError
	if err := s.Enqueue(ctx, dedupEvent("e2", "42")); !errors.As(err, &dup) || dup.ID != "e1" {
		t.Fatalf("second enqueue of sender id 42 = %v, want duplicate of e1", err)
	}
	// Another sender id, and an event without one, are stored.
	if err := s.Enqueue(ctx, dedupEvent("e3", "43")); err != nil {
		t.Fatal(err)
	}
	noID := testEvent("e4")
	delete(noID.Data, "id")
	noID.DedupKey = dedupKey([32]byte{}, noID.Type, "")
	for range 2 {
		if err := s.Enqueue(ctx, noID); err != nil {
			t.Fatalf("event without an id: %v", err)
		}
		noID = testEvent("e5")
		delete(noID.Data, "id")
	}
	s.Close()

	// The window holds across a restart...
	clock.Add(59 * time.Minute)
	s, err = OpenSpool(dir, clock.Now, WithDedupWindow(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Enqueue(ctx, dedupEvent("e6", "42")); !errors.As(err, &dup) {
		t.Fatalf("after restart, within the window: %v, want duplicate", err)
	}
	// ...and ends with it.
	clock.Add(2 * time.Minute)
	if err := s.Enqueue(ctx, dedupEvent("e7", "42")); err != nil {
		t.Fatalf("after the window: %v, want stored", err)
	}
	st, _ := s.Stats(ctx)
	if st.Depth != 5 {
		t.Errorf("depth %d, want 5 (e1, e3, e4, e5, e7)", st.Depth)
	}
}

func TestSpoolDedupSweepDeletesExpiredKeys(t *testing.T) {
	clock := &testClock{now: time.Unix(1_700_000_000, 0)}
	dir := t.TempDir()
	s, err := OpenSpool(dir, clock.Now, WithDedupWindow(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i, id := range []string{"1", "2", "3"} {
		if err := s.Enqueue(t.Context(), dedupEvent("e"+id, id)); err != nil {
			t.Fatal(i, err)
		}
	}
	count := func() (n int) {
		_ = s.db.View(func(tx *bolt.Tx) error {
			n = tx.Bucket(bucketDedup).Stats().KeyN + tx.Bucket(bucketDedupExp).Stats().KeyN
			return nil
		})
		return n
	}
	if n := count(); n != 6 {
		t.Fatalf("%d dedup records, want 6", n)
	}
	clock.Add(2 * time.Minute)
	s.Close() // stops the sweeper; a fresh open sweeps at once
	s, err = OpenSpool(dir, clock.Now, WithDedupWindow(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	deadline := time.Now().Add(5 * time.Second)
	for count() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := count(); n != 0 {
		t.Errorf("%d dedup records left after the window, want 0", n)
	}
}

func TestSpoolLimits(t *testing.T) {
	ctx := t.Context()
	s, err := OpenSpool(t.TempDir(), time.Now, WithLimits(2, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, id := range []string{"a", "b"} {
		if err := s.Enqueue(ctx, testEvent(id)); err != nil {
			t.Fatal(err)
		}
	}
	err = s.Enqueue(ctx, testEvent("c"))
	if !errors.Is(err, ErrQueueFull) || !strings.Contains(err.Error(), "spool.max_events") {
		t.Fatalf("third event = %v, want ErrQueueFull naming spool.max_events", err)
	}
	it, _ := s.Lease(ctx)
	if err := s.Ack(ctx, it); err != nil {
		t.Fatal(err)
	}
	if err := s.Enqueue(ctx, testEvent("c")); err != nil {
		t.Fatalf("after an ack: %v, want room again", err)
	}

	b, err := OpenSpool(t.TempDir(), time.Now, WithLimits(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Enqueue(ctx, testEvent("a")); err != nil {
		t.Fatal(err) // under the limit before it: stored
	}
	if err := b.Enqueue(ctx, testEvent("b")); !errors.Is(err, ErrQueueFull) || !strings.Contains(err.Error(), "spool.max_bytes") {
		t.Fatalf("past max_bytes = %v, want ErrQueueFull naming spool.max_bytes", err)
	}
}

// TestSpoolInspector lists, shows, requeues and drops, and checks the kept
// counts against a fresh count at reopen.
func TestSpoolInspector(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	clock := &testClock{now: time.Unix(1_700_000_000, 0)}
	s, err := OpenSpool(dir, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c", "d"} {
		ev := testEvent(id)
		ev.Received = clock.Now()
		if id == "d" {
			ev.Type = "telegram"
		}
		if err := s.Enqueue(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := s.Lease(ctx)
	a.Attempts = 1
	if err := s.Retry(ctx, a, clock.Now().Add(time.Hour), errors.New("451 try later")); err != nil {
		t.Fatal(err)
	}
	b, _ := s.Lease(ctx)
	b.Attempts = 1
	if err := s.Bury(ctx, b, "permanent error: 550 no such user"); err != nil {
		t.Fatal(err)
	}
	c, _ := s.Lease(ctx) // held by a "worker"

	waiting, err := s.List(ctx, StateWaiting, 0)
	if err != nil || len(waiting) != 3 {
		t.Fatalf("waiting = %d items, %v; want 3", len(waiting), err)
	}
	// Due order: c and d are due now, a in an hour.
	if waiting[0].Event.ID != "c" || waiting[0].State != StateDelivering || waiting[2].Event.ID != "a" {
		t.Errorf("waiting order/state: %s %s, %s", waiting[0].Event.ID, waiting[0].State, waiting[2].Event.ID)
	}
	if lim, _ := s.List(ctx, StateWaiting, 1); len(lim) != 1 {
		t.Errorf("limit 1 listed %d", len(lim))
	}
	dead, _ := s.List(ctx, StateDead, 0)
	if len(dead) != 1 || dead[0].Event.ID != "b" || dead[0].State != StateDead {
		t.Fatalf("dead = %+v", dead)
	}
	got, err := s.Get(ctx, "a")
	if err != nil || got.State != StateWaiting || len(got.History) != 1 || !strings.Contains(got.History[0].What, "451 try later") {
		t.Fatalf("Get(a) = %+v, %v; want waiting with the failed attempt in its history", got, err)
	}
	if _, err := s.Get(ctx, "zz"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(unknown) = %v, want ErrNotFound", err)
	}
	if err := s.Drop(ctx, "c"); !errors.Is(err, ErrBusy) {
		t.Errorf("Drop(leased) = %v, want ErrBusy", err)
	}
	if err := s.Requeue(ctx, "c"); !errors.Is(err, ErrBusy) {
		t.Errorf("Requeue(leased) = %v, want ErrBusy", err)
	}

	st, _ := s.Stats(ctx)
	if st.Depth != 3 || st.Dead != 1 || st.Delivering != 1 || st.ByType["sms"] != (TypeCount{Waiting: 2, Dead: 1}) || st.ByType["other"] != (TypeCount{Waiting: 1}) {
		t.Fatalf("stats %+v", st)
	}

	// The dead letter comes back due now, with a fresh lifetime.
	clock.Add(time.Minute)
	if err := s.Requeue(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Get(ctx, "b")
	if got.State != StateWaiting || !got.NextAttempt.Equal(clock.Now()) || !got.LifetimeStart().Equal(clock.Now()) || got.DeadReason != "" {
		t.Fatalf("requeued b = %+v", got)
	}
	if err := s.Requeue(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.Get(ctx, "a"); !got.NextAttempt.Equal(clock.Now()) {
		t.Errorf("requeued a is due %v, want now", got.NextAttempt)
	}
	if err := s.Drop(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(ctx, c); err != nil {
		t.Fatal(err)
	}
	it, _ := s.Lease(ctx)
	if err := s.Bury(ctx, it, "x"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.RequeueDead(ctx); n != 1 || err != nil {
		t.Fatalf("RequeueDead = %d, %v; want 1", n, err)
	}
	kept, _ := s.Stats(ctx)
	s.Close()

	s, err = OpenSpool(dir, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fresh, _ := s.Stats(ctx)
	if kept.Depth != fresh.Depth || kept.Dead != fresh.Dead || kept.Bytes != fresh.Bytes || !reflect.DeepEqual(kept.ByType, fresh.ByType) {
		t.Errorf("counts kept while running %+v differ from a fresh count %+v", kept, fresh)
	}
	if fresh.Depth != 2 || fresh.Dead != 0 {
		t.Errorf("fresh %+v, want a and b waiting", fresh)
	}
}

// TestDropHoldsTheLeaseUntilCommitted: between Drop's write and its commit,
// a worker must not lease the item (it would email an event the operator
// was told was dropped).
func TestDropHoldsTheLeaseUntilCommitted(t *testing.T) {
	ctx := t.Context()
	s := openTestSpool(t, t.TempDir(), time.Now)
	if err := s.Enqueue(ctx, testEvent("victim")); err != nil {
		t.Fatal(err)
	}
	// Hold the committer, queue Drop and then a second blocker behind it,
	// so Drop's write runs in a batch that stays open.
	gate0, gate1 := make(chan struct{}), make(chan struct{})
	go s.update(func(*bolt.Tx) error { <-gate0; return nil })
	time.Sleep(20 * time.Millisecond)
	dropped := make(chan error, 1)
	go func() { dropped <- s.Drop(ctx, "victim") }()
	time.Sleep(20 * time.Millisecond)
	go s.update(func(*bolt.Tx) error { <-gate1; return nil })
	time.Sleep(20 * time.Millisecond)
	close(gate0)
	time.Sleep(20 * time.Millisecond) // Drop's write has run; the batch waits on gate1

	leaseCtx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if it, err := s.Lease(leaseCtx); err == nil {
		t.Errorf("leased %s while its drop was being committed", it.Event.ID)
	}
	close(gate1)
	if err := <-dropped; err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Stats(ctx); st.Depth != 0 {
		t.Errorf("depth %d after the drop", st.Depth)
	}
}
