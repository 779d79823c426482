// Command spoolfill fills a spool with N events shaped like the gateway's
// sample SMS (as the webhook stores it, with its dedup key), through the
// spool's own Enqueue, for the start-up and disk harnesses
// (bench/startup.sh, bench/disk.sh). It prints how many it stored, how
// long it took, and the file's size.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/spool"
)

func main() {
	dir := flag.String("dir", "", "spool.dir to fill (created when missing)")
	n := flag.Int("n", 100_000, "events to store")
	conc := flag.Int("c", 512, "concurrent enqueuers (the spool packs them into group commits)")
	dedup := flag.Duration("dedup", 24*time.Hour, "dedup.window, as hookmail's default")
	only := flag.Bool("report", false, "store nothing: only report where an existing spool's bytes go")
	flag.Parse()
	if *only && *dir != "" {
		if err := reportOnly(*dir); err != nil {
			fmt.Fprintln(os.Stderr, "spoolfill:", err)
			os.Exit(1)
		}
		return
	}
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "spoolfill: -dir is required")
		os.Exit(2)
	}
	if err := fill(*dir, *n, *conc, *dedup); err != nil {
		fmt.Fprintln(os.Stderr, "spoolfill:", err)
		os.Exit(1)
	}
}

func fill(dir string, n, conc int, dedup time.Duration) error {
	s, err := spool.Open(dir, spool.WithDedupWindow(dedup))
	if err != nil {
		return err
	}
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conc)
	for range conc {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				if err := s.Enqueue(context.Background(), sampleSMS(i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		s.Close()
		return err
	}
	took := time.Since(start)
	if err := s.Close(); err != nil {
		return err
	}
	fi, err := os.Stat(filepath.Join(dir, spool.File))
	if err != nil {
		return err
	}
	fmt.Printf("stored %d events in %s (%.0f/s)\n", n, took.Round(time.Millisecond), float64(n)/took.Seconds())
	return report(filepath.Join(dir, spool.File), fi.Size(), n)
}

func reportOnly(dir string) error {
	path := filepath.Join(dir, spool.File)
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return err
	}
	n := 0
	err = db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte("events")); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	})
	db.Close()
	if err != nil || n == 0 {
		return fmt.Errorf("no events to report on (%v)", err)
	}
	return report(path, fi.Size(), n)
}

// report prints where the file's bytes go: the records, each bucket's
// pages, the free pages, per event.
func report(path string, size int64, n int) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		var records int64
		if b := tx.Bucket([]byte("events")); b != nil {
			_ = b.ForEach(func(_, v []byte) error { records += int64(len(v)); return nil })
		}
		per := func(b int64) float64 { return float64(b) / float64(n) }
		fmt.Printf("file %d bytes: %.0f per event; records %.0f bytes per event (%.2fx); pages in use up to %d bytes\n",
			size, per(size), per(records), float64(size)/float64(records), tx.Size())
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			st := b.Stats()
			fmt.Printf("  bucket %-9s keys %8d  pages %7d  bytes %11d (%.0f per event, %.0f%% full)\n", name, st.KeyN,
				st.BranchPageN+st.BranchOverflowN+st.LeafPageN+st.LeafOverflowN,
				int64(st.BranchAlloc+st.LeafAlloc), per(int64(st.BranchAlloc+st.LeafAlloc)),
				100*float64(st.BranchInuse+st.LeafInuse)/float64(max(1, st.BranchAlloc+st.LeafAlloc)))
			return nil
		})
	})
}

// sampleSMS is the gateway's sample SMS as the webhook stores it, with its
// own data[id] (so each is stored, as real traffic is) and dedup key.
func sampleSMS(i int64) *relay.Event {
	id := strconv.FormatInt(i, 10)
	sum := sha256.Sum256([]byte("gateway\x00sms\x00" + id))
	return &relay.Event{
		ID:     uuid.Must(uuid.NewV7()).String(),
		Source: "gateway",
		Format: "zender",
		Type:   "sms",
		Data: map[string]string{
			"id": id, "rid": "10593", "sim": "1", "device": "00000000-0000-0000-d57d-f30cb6a89289",
			"phone": "+639760713666", "message": "Hello World!", "timestamp": "1645684231",
		},
		Received: time.Now(),
		DedupKey: hex.EncodeToString(sum[:]),
	}
}
