package spool

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/queuetest"
)

func openTestSpool(t *testing.T, dir string, opts ...Option) *Spool {
	t.Helper()
	s, err := Open(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// writeRaw changes the spool file in dir as another program would: with
// bbolt, not through the spool.
func writeRaw(t *testing.T, dir string, fn func(*bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, File), 0o600, &bolt.Options{NoFreelistSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func testEvent(id string) *relay.Event {
	return &relay.Event{ID: id, Source: "gateway", Type: "sms", Data: map[string]string{"id": id}, Received: time.Now()}
}

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

func dedupEvent(id, senderID string) *relay.Event {
	ev := testEvent(id)
	ev.Data["id"] = senderID
	if senderID != "" {
		sum := sha256.Sum256([]byte(ev.Type + "\x00" + senderID))
		ev.DedupKey = hex.EncodeToString(sum[:])
	}
	return ev
}

// TestReadsSpoolsOfEarlierVersions: a record as every earlier hookmail
// wrote it (with the dedup key and state it no longer stores) is read back
// whole, so an upgrade finds its queue as it left it.
func TestReadsSpoolsOfEarlierVersions(t *testing.T) {
	dir := t.TempDir()
	s := openTestSpool(t, dir)
	old := `{"event":{"id":"01900000-0000-7000-8000-000000000001","source":"gateway","type":"sms","data":{"phone":"+15550001111","message":"hi"},` +
		`"received":"2026-03-01T12:00:00Z","dedup_key":"abc"},"attempts":2,"next_attempt":"2026-03-01T12:05:00Z","last_error":"451 later",` +
		`"delivered":["ops"],"owed":{"team":["late@example.com"]},"history":[{"at":"2026-03-01T12:01:00Z","what":"attempt 1 failed: 451 later"}],"state":"waiting"}`
	id := "01900000-0000-7000-8000-000000000001"
	s.Close()
	// Written as that hookmail wrote: without the counts it did not keep.
	writeRaw(t, dir, func(tx *bolt.Tx) error {
		return putRaw(tx, id, time.Date(2026, 3, 1, 12, 5, 0, 0, time.UTC), 0, []byte(old))
	})
	s = openTestSpool(t, dir)
	it, err := s.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if it.Event.Data["message"] != "hi" || it.Attempts != 2 || it.LastError != "451 later" || it.Delivered[0] != "ops" ||
		it.Owed["team"][0] != "late@example.com" || len(it.History) != 1 || it.State != relay.StateWaiting {
		t.Errorf("read back %+v", it)
	}
	if st, _ := s.Stats(t.Context()); st.Depth != 1 || st.ByType["sms"].Waiting != 1 {
		t.Errorf("counted %+v", st)
	}
}

func TestSpoolReportsLockedAndDamagedFiles(t *testing.T) {
	dir := t.TempDir()
	openTestSpool(t, dir)
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Errorf("second open: %v, want a locked error", err)
	}
	damaged := t.TempDir()
	if err := os.WriteFile(filepath.Join(damaged, File), []byte(strings.Repeat("not a database ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(damaged); err == nil || !strings.Contains(err.Error(), "is damaged") {
		t.Errorf("damaged open: %v, want a damaged error", err)
	}
}

func TestSpoolGroupCommitUnderConcurrency(t *testing.T) {
	ctx := t.Context()
	s := openTestSpool(t, t.TempDir())
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Go(func() { errs <- s.Enqueue(ctx, testEvent(fmt.Sprintf("c%03d", i))) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.Stats(ctx)
	if err != nil || st.Depth != 200 {
		t.Fatalf("depth = %d, %v; want 200", st.Depth, err)
	}
}

// TestFailedAckIsNotRetriedInATightLoop: when an ack cannot be written,
// the item stays leased until the lease expires instead of coming straight
// back (which would resend the same email again and again), and the
// failure is logged.
func TestFailedAckIsNotRetriedInATightLoop(t *testing.T) {
	ctx := t.Context()
	s := openTestSpool(t, t.TempDir(), WithLeaseTimeout(time.Hour))
	if err := s.Enqueue(ctx, testEvent("a")); err != nil {
		t.Fatal(err)
	}
	l, err := s.Lease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Make the ack's write fail: the record vanishes, its due entry stays.
	if err := s.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketEvents).Delete([]byte("a")) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(ctx, l); err != nil {
		t.Fatal(err) // handed to the writer; its failure comes after
	}
	time.Sleep(50 * time.Millisecond)
	if !s.delivering("a") {
		t.Fatal("the lease was released after a failed ack, so the item would come straight back")
	}
	if s.writeErr.Load() != nil {
		t.Error("a write's own failure was taken for the disk's")
	}
}

func TestSpoolDedupWithinWindowAcrossRestart(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	clock := &testClock{now: time.Unix(1_700_000_000, 0)}
	s, err := Open(dir, WithClock(clock.Now), WithDedupWindow(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Enqueue(ctx, dedupEvent("e1", "42")); err != nil {
		t.Fatal(err)
	}
	var dup *relay.DuplicateError
	if err := s.Enqueue(ctx, dedupEvent("e2", "42")); !errors.As(err, &dup) || dup.ID != "e1" {
		t.Fatalf("second enqueue of sender id 42 = %v, want duplicate of e1", err)
	}
	// Another sender id, and an event without one, are stored.
	if err := s.Enqueue(ctx, dedupEvent("e3", "43")); err != nil {
		t.Fatal(err)
	}
	noID := dedupEvent("e4", "")
	for range 2 {
		if err := s.Enqueue(ctx, noID); err != nil {
			t.Fatalf("event without an id: %v", err)
		}
		noID = dedupEvent("e5", "")
	}
	s.Close()

	// The window holds across a restart...
	clock.Add(59 * time.Minute)
	s, err = Open(dir, WithClock(clock.Now), WithDedupWindow(time.Hour))
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
	s, err := Open(dir, WithClock(clock.Now), WithDedupWindow(time.Minute))
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
	s, err = Open(dir, WithClock(clock.Now), WithDedupWindow(time.Minute))
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

// TestDropHoldsTheLeaseUntilCommitted: between Drop's write and its commit,
// a worker must not lease the item (it would email an event the operator
// was told was dropped).
func TestDropHoldsTheLeaseUntilCommitted(t *testing.T) {
	ctx := t.Context()
	s := openTestSpool(t, t.TempDir())
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
	if l, err := s.Lease(leaseCtx); err == nil {
		t.Errorf("leased %s while its drop was being committed", l.Item.Event.ID)
	}
	close(gate1)
	if err := <-dropped; err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Stats(ctx); st.Depth != 0 {
		t.Errorf("depth %d after the drop", st.Depth)
	}
}

// TestDigestBytesCount: collected events count in the spool's bytes (the
// pages they take, which spool.max_bytes bounds), and a digest's events
// buried count as dead letters, after a restart too.
func TestDigestBytesCount(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	route := &config.Route{Name: "facebook-digest", To: []string{"me@example.com"}, Digest: &config.Digest{Every: time.Hour, MaxEvents: 500}}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	empty, _ := s.Stats(ctx)
	for i := range 200 {
		ev := testEvent(fmt.Sprintf("ev-%03d", i))
		ev.Type, ev.Data = "notification", map[string]string{"id": fmt.Sprint(i), "package": "com.facebook.katana", "title": "Facebook", "content": fmt.Sprintf("comment number %d", i)}
		if err := s.Collect(ctx, route, ev); err != nil {
			t.Fatal(err)
		}
	}
	if _, n, err := s.Digest(ctx, route.Name, 0); err != nil || n != 200 {
		t.Fatalf("digest holds %d events (%v), want 200", n, err)
	}
	kept, _ := s.Stats(ctx)
	if kept.Depth != 0 || kept.Bytes < empty.Bytes+200*100 {
		t.Fatalf("stats with 200 collected: %+v (empty: %d bytes), want their bytes counted", kept, empty.Bytes)
	}
	entries, _, _ := s.Digest(ctx, route.Name, 0)
	ids := []string{entries[0].Event.ID, entries[1].Event.ID}
	if err := s.Forget(ctx, route.Name, ids[:1]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.BuryDigest(ctx, route.Name, ids[1:], "test"); err != nil {
		t.Fatal(err)
	}
	after, _ := s.Stats(ctx)
	s.Close()
	s2 := openTestSpool(t, dir)
	again, _ := s2.Stats(ctx)
	if after.Dead != 1 || again.Dead != 1 || again.ByType["notification"].Dead != 1 {
		t.Errorf("after forget and bury: kept %+v, reopened %+v; want one dead letter", after, again)
	}
}

// TestAckRacingCloseIsKept: an Ack that found the spool open and hands
// its ack over while the spool closes is committed: after a reopen its
// item is gone. (Close drained the acks' buffer and stopped, and an ack
// handed over after that was never written: its email went out again
// after the restart.)
func TestAckRacingCloseIsKept(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Enqueue(t.Context(), testEvent("a")); err != nil {
		t.Fatal(err)
	}
	l, err := s.Lease(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	testHookAckHandOff = func() {
		go func() { s.Close(); close(closed) }()
		time.Sleep(200 * time.Millisecond) // Close drains the buffer meanwhile
	}
	defer func() { testHookAckHandOff = nil }()
	if err := s.Ack(t.Context(), l); err != nil {
		t.Fatalf("Ack = %v", err)
	}
	<-closed
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if st, err := s.Stats(t.Context()); err != nil || st.Depth != 0 {
		t.Fatalf("after the reopen: depth %d, %v; want the acked item gone", st.Depth, err)
	}
}

// TestAckedLeaseHoldsWhileTheCommitWaits: an ack handed over starts a full
// lease, since the worker stops extending it then. While the writer is
// held up past the lease it had, the item is not leased again and sent
// twice.
func TestAckedLeaseHoldsWhileTheCommitWaits(t *testing.T) {
	clock := &testClock{now: time.Unix(1_700_000_000, 0)}
	s := openTestSpool(t, t.TempDir(), WithClock(clock.Now), WithLeaseTimeout(30*time.Second))
	if err := s.Enqueue(t.Context(), testEvent("a")); err != nil {
		t.Fatal(err)
	}
	l, err := s.Lease(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(25 * time.Second) // the worker extended it last at the lease
	// A write that holds the writer, as a slow fsync does.
	held, release := make(chan struct{}), make(chan struct{})
	go s.update(func(*bolt.Tx) error { close(held); <-release; return nil })
	<-held
	if err := s.Ack(t.Context(), l); err != nil {
		t.Fatal(err)
	}
	clock.Add(10 * time.Second) // past the lease the worker had
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if again, err := s.Lease(ctx); err == nil {
		t.Errorf("the acked item %s was leased again while its ack waited for the writer", again.Item.Event.ID)
	}
	close(release)
}

// TestRequeueWakesAWaitingLeaser: an operator's requeue of an item due
// later reaches a worker waiting for work at once. The leaser woke while
// the operator's hold was still on, saw the item held, and slept until
// that hold would have lapsed (a lease timeout).
func TestRequeueWakesAWaitingLeaser(t *testing.T) {
	s := openTestSpool(t, t.TempDir(), WithLeaseTimeout(time.Hour))
	if err := s.Enqueue(t.Context(), testEvent("a")); err != nil {
		t.Fatal(err)
	}
	l, err := s.Lease(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Retry(t.Context(), l, time.Now().Add(time.Hour), relay.Progress{Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	got := make(chan error, 1)
	go func() {
		_, err := s.Lease(ctx) // waits: a, the only item, is due in an hour
		got <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if err := s.Requeue(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Errorf("the waiting leaser got %v, not the requeued item", err)
	}
}

// TestWokenLeaserThatStopsPassesItOn: see queuetest.WakeUpPassedOn; the
// spool does not poll, so an event whose wake-up was lost waited until
// the next one came.
func TestWokenLeaserThatStopsPassesItOn(t *testing.T) {
	s := openTestSpool(t, t.TempDir())
	queuetest.WakeUpPassedOn(t, s, s.waiters.Len, 20)
}

// TestOneItemWakesOneLeaser: with four workers waiting, a new item wakes
// one of them, which walks the index and leases it; the others sleep on.
// (A broadcast woke all four for every webhook, and three walked the index
// to find nothing.)
func TestOneItemWakesOneLeaser(t *testing.T) {
	s := openTestSpool(t, t.TempDir())
	// What an enqueue reads by itself (the commit measures the file).
	before := s.db.Stats()
	if err := s.Enqueue(t.Context(), testEvent("first")); err != nil {
		t.Fatal(err)
	}
	after := s.db.Stats()
	own := after.Sub(&before).TxN
	if _, err := s.Lease(t.Context()); err != nil {
		t.Fatal(err)
	}
	leased := queuetest.IdleLeasers(t, s, 4)
	waitLeasers(t, s, 4)
	before = s.db.Stats()
	if err := s.Enqueue(t.Context(), testEvent("a")); err != nil {
		t.Fatal(err)
	}
	if id := <-leased; id != "a" {
		t.Fatalf("leased %s", id)
	}
	time.Sleep(200 * time.Millisecond) // any other wake-up walks meanwhile
	after = s.db.Stats()
	if walks := after.Sub(&before).TxN - own; walks != 1 {
		t.Errorf("one new item made %d walks of the index, want 1", walks)
	}
}

// waitLeasers waits until n leasers wait for an item on s, each having
// walked the index once.
func waitLeasers(t *testing.T, s *Spool, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); s.waiters.Len() < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d leasers waiting after 10 s, want %d", s.waiters.Len(), n)
		}
	}
}
