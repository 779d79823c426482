package spool

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

// enqueueMixed enqueues n events, ev-00 on, every third a whatsapp and
// the others SMS.
func enqueueMixed(t *testing.T, s *Spool, n int) {
	t.Helper()
	for i := range n {
		ev := testEvent(fmt.Sprintf("ev-%02d", i))
		if i%3 == 0 {
			ev.Type = "whatsapp"
		}
		if err := s.Enqueue(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
}

// busySpool enqueues events of two types and settles some each way, so
// that its counts have been changed by every kind of write.
func busySpool(t *testing.T, s *Spool) {
	t.Helper()
	ctx := t.Context()
	enqueueMixed(t, s, 30)
	for i := range 12 {
		l, err := s.Lease(ctx)
		if err != nil {
			t.Fatal(err)
		}
		switch i % 3 {
		case 0:
			err = s.Ack(ctx, l)
		case 1:
			err = s.Bury(ctx, l, "refused", relay.Progress{Attempts: 1})
		default:
			err = s.Retry(ctx, l, time.Now().Add(time.Hour), relay.Progress{Attempts: 1})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Drop(ctx, "ev-29"); err != nil {
		t.Fatal(err)
	}
	dead, err := s.List(ctx, relay.Filter{State: relay.StateDead})
	if err != nil || len(dead.Items) == 0 {
		t.Fatalf("dead letters: %v, %v", dead, err)
	}
	if err := s.Requeue(ctx, dead.Items[0].Event.ID); err != nil {
		t.Fatal(err)
	}
	rt := &config.Route{Name: "digest", To: []string{"me@example.com"}, Digest: &config.Digest{Every: time.Hour}}
	for _, id := range []string{"d1", "d2"} {
		if err := s.Collect(ctx, rt, testEvent(id)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.BuryDigest(ctx, rt.Name, []string{"d1"}, "refused"); err != nil {
		t.Fatal(err)
	}
	waitAcks(t, s)
}

// waitAcks waits until the acks handed to the writer are committed.
func waitAcks(t *testing.T, s *Spool) {
	t.Helper()
	if err := s.update(func(*bolt.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	for len(s.ackSlots) > 0 {
		time.Sleep(time.Millisecond)
	}
}

func counted(t *testing.T, s *Spool) relay.Stats {
	t.Helper()
	st, err := s.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	st.Bytes, st.Delivering, st.Oldest = 0, 0, time.Time{}
	return st
}

// TestCountsSurviveCloseAndCrash: the counts every write changes are in
// the file, so a spool opened after a clean close, or from the file as a
// crash leaves it, counts what the running one did.
func TestCountsSurviveCloseAndCrash(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	busySpool(t, s)
	want := counted(t, s)
	if want.Depth != 30-4-4-1+1 || want.Dead != 4-1+1 || want.ByType["whatsapp"].Waiting == 0 {
		t.Fatalf("the busy spool counts %+v", want)
	}
	crashed := t.TempDir()
	raw, err := os.ReadFile(filepath.Join(dir, File)) // every commit is on disk
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(crashed, File), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for name, d := range map[string]string{"closed": dir, "crashed": crashed} {
		got := counted(t, openTestSpool(t, d))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: opened counting %+v, want %+v", name, got, want)
		}
	}
}

// TestOpenReadsNoRecord: Open takes the kept counts instead of reading the
// events, so a record it could not decode does not stop it (a worker
// reports that record when it comes to it).
func TestOpenReadsNoRecord(t *testing.T) {
	dir := t.TempDir()
	s := openTestSpool(t, dir)
	if err := s.Enqueue(t.Context(), testEvent("good")); err != nil {
		t.Fatal(err)
	}
	if err := s.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDead).Put([]byte("garbled"), []byte("{not json"))
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2, err := Open(dir)
	if err != nil {
		t.Fatalf("open read the records: %v", err)
	}
	defer s2.Close()
	if st := counted(t, s2); st.Depth != 1 {
		t.Errorf("counts %+v, want the one event", st)
	}
	if _, err := s2.Get(t.Context(), "garbled"); err == nil {
		t.Error("the garbled record decoded")
	}
}
