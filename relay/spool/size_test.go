package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/hookmail/hookmail/relay"
)

// gatewaySMS is an event as the webhook stores the gateway's sample SMS,
// with a dedup key, as hookmail's defaults keep one.
func gatewaySMS(i int) *relay.Event {
	ev := dedupEvent(fmt.Sprintf("0197a3c2-7d1e-7000-8000-%012d", i), fmt.Sprint(i))
	ev.Format = "zender"
	for k, v := range map[string]string{"rid": "10593", "sim": "1", "device": "00000000-0000-0000-d57d-f30cb6a89289",
		"phone": "+639760713666", "message": "Hello World!", "timestamp": "1645684231"} {
		ev.Data[k] = v
	}
	return ev
}

// fillSpool enqueues gateway SMS from several goroutines, as webhooks
// arrive, until n are stored or the spool refuses one; it returns how many
// it stored and the refusal.
func fillSpool(t *testing.T, s *Spool, n int) (int, error) {
	t.Helper()
	var next, stored atomic.Int64
	var refused atomic.Pointer[error]
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(n) && refused.Load() == nil; i = next.Add(1) {
				if err := s.Enqueue(context.Background(), gatewaySMS(int(i))); err != nil {
					refused.Store(&err)
					return
				}
				stored.Add(1)
			}
		})
	}
	wg.Wait()
	if err := refused.Load(); err != nil {
		return int(stored.Load()), *err
	}
	return int(stored.Load()), nil
}

// recordBytes sums the sizes of the waiting events' records.
func recordBytes(t *testing.T, s *Spool) int64 {
	t.Helper()
	var n int64
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEvents).ForEach(func(_, v []byte) error {
			n += int64(len(v))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDiskPerEventAtMostTwiceTheRecord: with its index entries and its
// dedup key, a queued event takes at most twice its record's size in the
// file's pages.
func TestDiskPerEventAtMostTwiceTheRecord(t *testing.T) {
	s := openTestSpool(t, t.TempDir(), WithDedupWindow(24*60*60*1e9))
	const n = 20000
	if _, err := fillSpool(t, s, n); err != nil {
		t.Fatal(err)
	}
	st, err := s.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	records := recordBytes(t, s)
	ratio := float64(st.Bytes) / float64(records)
	t.Logf("%d events: records %d bytes each, pages in use %d bytes each (%.2fx)", n, records/n, st.Bytes/n, ratio)
	if ratio > 2 {
		t.Errorf("the spool's pages hold %.2fx its records, want at most 2x", ratio)
	}
}

// TestMaxBytesBoundsTheFile: spool.max_bytes counts the file's pages in
// use, so the file stays near the limit; once delivered events free pages,
// the spool takes events again, in the pages they freed.
func TestMaxBytesBoundsTheFile(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	const limit = 2 << 20
	s := openTestSpool(t, dir, WithLimits(0, limit), WithDedupWindow(24*60*60*1e9))
	stored, err := fillSpool(t, s, 100000)
	if !errors.Is(err, relay.ErrQueueFull) {
		t.Fatalf("stored %d and then %v, want the spool full", stored, err)
	}
	fi, err := os.Stat(filepath.Join(dir, File))
	if err != nil {
		t.Fatal(err)
	}
	var highWater int64 // the file's pages, up to the last one bbolt used
	_ = s.db.View(func(tx *bolt.Tx) error { highWater = tx.Size(); return nil })
	t.Logf("full at %d events; pages up to %d bytes, file %d bytes, for a limit of %d", stored, highWater, fi.Size(), limit)
	// Enqueues that passed the check when the limit was reached still
	// commit: a few events' pages more.
	if highWater > limit*3/2 {
		t.Errorf("the file's pages reach %d bytes, past spool.max_bytes (%d)", highWater, limit)
	}
	if err := s.Ready(ctx); !errors.Is(err, relay.ErrQueueFull) {
		t.Errorf("ready at the limit: %v, want the spool full", err)
	}
	for range stored {
		l, err := s.Lease(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Ack(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	waitAcks(t, s)
	if err := s.Enqueue(ctx, testEvent("after")); err != nil {
		t.Errorf("after delivering everything: %v, want the event taken", err)
	}
	if after, _ := os.Stat(filepath.Join(dir, File)); after.Size() != fi.Size() {
		t.Errorf("the file grew from %d to %d bytes, where freed pages were there to reuse", fi.Size(), after.Size())
	}
}
