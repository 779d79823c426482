package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// lockedWriter lets concurrent workers share one log buffer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// String reads what was written so far, while writers may still write.
func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprint(l.w)
}

func openTestSpool(t *testing.T, dir string, now func() time.Time) *Spool {
	t.Helper()
	s, err := OpenSpool(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testEvent(id string) *Event {
	return &Event{ID: id, Source: SourceGateway, Type: "sms", Data: map[string]string{"id": id}, Received: time.Now()}
}

func TestSpoolLeaseRetryBuryAck(t *testing.T) {
	ctx := t.Context()
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := openTestSpool(t, t.TempDir(), clock)
	for _, id := range []string{"a", "b", "c"} {
		if err := s.Enqueue(ctx, testEvent(id)); err != nil {
			t.Fatal(err)
		}
	}
	a, err := s.Lease(ctx)
	if err != nil || a.Event.ID != "a" {
		t.Fatalf("first lease = %v, %v; want a", a, err)
	}
	b, _ := s.Lease(ctx)
	if b.Event.ID != "b" {
		t.Fatalf("second lease = %s, want b (a is leased)", b.Event.ID)
	}
	a.Attempts++
	if err := s.Retry(ctx, a, now.Add(time.Minute), errors.New("451 try later")); err != nil {
		t.Fatal(err)
	}
	if err := s.Bury(ctx, b, "permanent error: 550"); err != nil {
		t.Fatal(err)
	}
	c, _ := s.Lease(ctx)
	if c.Event.ID != "c" {
		t.Fatalf("third lease = %s, want c (a is not due yet)", c.Event.ID)
	}
	if err := s.Ack(ctx, c); err != nil {
		t.Fatal(err)
	}
	// Nothing is due until the clock passes a's retry time.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	if it, err := s.Lease(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("lease before a is due = %v, %v; want deadline exceeded", it, err)
	}
	cancel()
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	again, err := s.Lease(ctx)
	if err != nil || again.Event.ID != "a" || again.Attempts != 1 || again.LastError != "451 try later" {
		t.Fatalf("retried lease = %+v, %v; want a with 1 attempt and its error", again, err)
	}
	st, err := s.Stats(ctx)
	if err != nil || st.Depth != 1 || st.Dead != 1 {
		t.Fatalf("stats = %+v, %v; want depth 1, dead 1", st, err)
	}
}

func TestSpoolResumesAfterRestart(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s, err := OpenSpool(dir, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.Enqueue(ctx, testEvent(fmt.Sprintf("e%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	// e0 is in a worker's hands when the process stops; e1 failed once.
	if _, err := s.Lease(ctx); err != nil {
		t.Fatal(err)
	}
	e1, _ := s.Lease(ctx)
	next := time.Now().Add(-time.Second).Round(0)
	e1.Attempts++
	if err := s.Retry(ctx, e1, next, errors.New("connection refused")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := openTestSpool(t, dir, time.Now)
	if st, err := s2.Stats(ctx); err != nil || st.Depth != 3 || st.Dead != 0 {
		t.Fatalf("stats after restart = %+v, %v; want depth 3 counted at open", st, err)
	}
	seen := map[string]*Item{}
	for range 3 {
		it, err := s2.Lease(ctx)
		if err != nil {
			t.Fatal(err)
		}
		seen[it.Event.ID] = it
	}
	if len(seen) != 3 {
		t.Fatalf("after restart leased %d distinct events, want 3", len(seen))
	}
	if got := seen["e1"]; got.Attempts != 1 || got.LastError != "connection refused" || !got.NextAttempt.Equal(next) {
		t.Errorf("e1 after restart = %+v; want its attempt count, error and schedule kept", got)
	}
}

func TestSpoolReportsLockedAndDamagedFiles(t *testing.T) {
	dir := t.TempDir()
	openTestSpool(t, dir, time.Now)
	if _, err := OpenSpool(dir, time.Now); err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Errorf("second open: %v, want a locked error", err)
	}
	damaged := t.TempDir()
	if err := os.WriteFile(filepath.Join(damaged, SpoolFile), []byte(strings.Repeat("not a database ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSpool(damaged, time.Now); err == nil || !strings.Contains(err.Error(), "is damaged") {
		t.Errorf("damaged open: %v, want a damaged error", err)
	}
}

func TestSpoolGroupCommitUnderConcurrency(t *testing.T) {
	ctx := t.Context()
	s := openTestSpool(t, t.TempDir(), time.Now)
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

func TestSpoolAfterClose(t *testing.T) {
	s, err := OpenSpool(t.TempDir(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Enqueue(t.Context(), testEvent("x")); !errors.Is(err, ErrQueueClosed) {
		t.Errorf("enqueue after close = %v, want ErrQueueClosed", err)
	}
	if _, err := s.Lease(t.Context()); !errors.Is(err, ErrQueueClosed) {
		t.Errorf("lease after close = %v, want ErrQueueClosed", err)
	}
}

func deadLetters(t *testing.T, s *Spool) []Item {
	t.Helper()
	items, err := s.List(t.Context(), StateDead, 0)
	if err != nil {
		t.Fatal(err)
	}
	return items
}

// TestFailedSettleIsNotRetriedInATightLoop: when an outcome cannot be
// written, the item stays leased for a while instead of coming straight
// back (which would resend the same email again and again).
func TestFailedSettleIsNotRetriedInATightLoop(t *testing.T) {
	ctx := t.Context()
	s := openTestSpool(t, t.TempDir(), time.Now)
	if err := s.Enqueue(ctx, testEvent("a")); err != nil {
		t.Fatal(err)
	}
	it, err := s.Lease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Make the Ack's write fail: the record vanishes, its due entry stays.
	if err := s.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketEvents).Delete([]byte("a")) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(ctx, it); err == nil {
		t.Fatal("Ack of a vanished record succeeded")
	}
	s.mu.Lock()
	held := s.leased["a"]
	s.mu.Unlock()
	if !held {
		t.Fatal("the lease was released after a failed settle, so the item would come straight back")
	}
}

// TestOpenSpoolDamaged damages a spool file in several ways: each open
// fails with a message naming the file, or opens a spool that still works;
// none panics.
func TestOpenSpoolDamaged(t *testing.T) {
	src := t.TempDir()
	s := openTestSpool(t, src, time.Now)
	for i := range 200 {
		if err := s.Enqueue(t.Context(), testEvent(fmt.Sprintf("ev-%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	orig, err := os.ReadFile(filepath.Join(src, SpoolFile))
	if err != nil {
		t.Fatal(err)
	}
	pageSize := 4096
	garble := func(b []byte, from, n int) []byte {
		for i := from; i < from+n && i < len(b); i++ {
			b[i] = byte(i*7 + 13)
		}
		return b
	}
	for _, tc := range []struct {
		name   string
		damage func([]byte) []byte
	}{
		{"empty", func([]byte) []byte { return nil }},
		{"truncated to 100 bytes", func(b []byte) []byte { return b[:100] }},
		{"truncated to half", func(b []byte) []byte { return b[:len(b)/2] }},
		{"both meta pages garbled", func(b []byte) []byte { return garble(b, 0, 2*pageSize) }},
		{"first meta page garbled", func(b []byte) []byte { return garble(b, 0, pageSize) }},
		{"data pages garbled", func(b []byte) []byte { return garble(b, 4*pageSize, len(b)) }},
		{"one data page garbled", func(b []byte) []byte { return garble(b, 5*pageSize, pageSize) }},
		{"not a spool at all", func([]byte) []byte { return []byte(strings.Repeat("hello, world\n", 5000)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			b := tc.damage(append([]byte(nil), orig...))
			if err := os.WriteFile(filepath.Join(dir, SpoolFile), b, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := OpenSpool(dir, time.Now)
			if err != nil {
				if !strings.Contains(err.Error(), filepath.Join(dir, SpoolFile)) {
					t.Errorf("error does not name the file: %v", err)
				}
				t.Logf("refused: %v", err)
				return
			}
			defer s.Close()
			// Opened (the damage missed what open reads): it must still work.
			if _, err := s.Stats(t.Context()); err != nil {
				t.Logf("opened, stats: %v", err)
			}
		})
	}
}
