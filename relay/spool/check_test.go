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
