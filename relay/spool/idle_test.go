package spool

import (
	"context"
	"testing"
	"time"
)

// TestIdleSpoolDoesNothing: with dedup keys in their window, an open
// spool with nothing to do starts no transaction, and a sweep finding
// nothing expired writes nothing and says when the first key expires.
func TestIdleSpoolDoesNothing(t *testing.T) {
	ctx := t.Context()
	s := openTestSpool(t, t.TempDir(), WithDedupWindow(time.Hour))
	if err := s.Enqueue(ctx, dedupEvent("e1", "42")); err != nil {
		t.Fatal(err)
	}
	l, err := s.Lease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(ctx, l); err != nil {
		t.Fatal(err)
	}
	waitAcks(t, s)
	// A worker waiting for work, as hookmail's do.
	leaseCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _, _ = s.Lease(leaseCtx) }()
	waitLeasers(t, s, 1)
	time.Sleep(200 * time.Millisecond) // the first sweep, at open, is done
	before := s.db.Stats()
	time.Sleep(3 * time.Second)
	after := s.db.Stats()
	idle := after.Sub(&before)
	if idle.TxN != 0 || idle.TxStats.GetWrite() != 0 {
		t.Errorf("idle for 3s, the spool made %d read transactions and %d page writes", idle.TxN, idle.TxStats.GetWrite())
	}
	before = s.db.Stats()
	next, err := s.sweepExpired()
	if err != nil {
		t.Fatal(err)
	}
	after = s.db.Stats()
	swept := after.Sub(&before)
	if w := swept.TxStats.GetWrite(); w != 0 {
		t.Errorf("a sweep with nothing expired wrote %d pages", w)
	}
	if d := time.Until(next); d < 59*time.Minute || d > time.Hour {
		t.Errorf("next sweep in %s, want when the key expires, in about an hour", d)
	}
}
