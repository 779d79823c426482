package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hookmail/hookmail/relay"
)

// TestOpenSpoolDamaged damages a spool file in several ways, both one
// closed cleanly (which Open trusts without reading it through) and one
// left as a crash leaves it (which Open reads through first): each open
// fails with a message naming the file, or opens a spool whose every read
// and write works or fails with such a message; none panics.
func TestOpenSpoolDamaged(t *testing.T) {
	src := t.TempDir()
	s := openTestSpool(t, src)
	for i := range 200 {
		if err := s.Enqueue(t.Context(), testEvent(fmt.Sprintf("ev-%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	crashed, err := os.ReadFile(filepath.Join(src, File)) // every commit is on disk
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	clean, err := os.ReadFile(filepath.Join(src, File))
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
	for _, orig := range []struct {
		name string
		file []byte
	}{{"closed cleanly", clean}, {"crashed", crashed}} {
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
			{"last page garbled", func(b []byte) []byte { return garble(b, len(b)-pageSize, pageSize) }},
			{"not a spool at all", func([]byte) []byte { return []byte(strings.Repeat("hello, world\n", 5000)) }},
		} {
			t.Run(orig.name+"/"+tc.name, func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, File)
				if err := os.WriteFile(path, tc.damage(append([]byte(nil), orig.file...)), 0o600); err != nil {
					t.Fatal(err)
				}
				s, err := Open(dir)
				if err != nil {
					if !strings.Contains(err.Error(), path) {
						t.Errorf("error does not name the file: %v", err)
					}
					t.Logf("refused: %v", err)
					return
				}
				defer s.Close()
				// Opened (the damage missed what open reads): every use either
				// works or says the file is damaged.
				ctx, cancel := context.WithTimeout(t.Context(), time.Second)
				defer cancel()
				_, statsErr := s.Stats(ctx)
				_, listErr := s.List(ctx, relay.Filter{})
				_, leaseErr := s.Lease(ctx)
				enqErr := s.Enqueue(ctx, testEvent("new"))
				for _, err := range []error{statsErr, listErr, leaseErr, enqErr} {
					if err != nil && !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), path) {
						t.Errorf("error does not name the file: %v", err)
					}
				}
				t.Logf("opened; stats %v, list %v, lease %v, enqueue %v", statsErr, listErr, leaseErr, enqErr)
			})
		}
	}
}

// TestWriteOnADamagedPageIsAnError: a write that reads a damaged page
// fails with an error naming the file. bbolt panics on the page, and its
// Update rolled back by reading every page again in a goroutine of its own,
// where the same page panicked out of reach and ended the process.
func TestWriteOnADamagedPageIsAnError(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if err := s.Enqueue(t.Context(), testEvent(fmt.Sprintf("ev-%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	// The events bucket's root page: Open does not read it (a clean file
	// is not read through), the next Enqueue does.
	path := filepath.Join(dir, File)
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var root uint64
	db.View(func(tx *bolt.Tx) error {
		root = uint64(tx.Bucket(bucketEvents).Root())
		return nil
	})
	pageSize := db.Info().PageSize
	db.Close()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(strings.Repeat("\xa5", pageSize)), int64(root)*int64(pageSize)); err != nil {
		t.Fatal(err)
	}
	f.Close()

	s, err = Open(dir)
	if err != nil {
		t.Fatalf("open read the damaged page after all (%v); the test needs one only a write reads", err)
	}
	err = s.Enqueue(t.Context(), testEvent("new"))
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("Enqueue on a damaged page = %v, want an error saying %s is damaged", err, path)
	}
	// Closed after that, the file is not marked clean (its list of free
	// pages may be wrong), so the next start reads it through and refuses
	// it, naming the file.
	s.Close()
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("reopen after a damaged write = %v, want it refused as damaged", err)
	}
}
