package spool

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

// TestExportHandsOverEverything: a stopped spool's waiting events (with
// their progress), dead letters, dedup keys in their window and collected
// digests are handed over as stored, and the file is left byte for byte
// as it was.
func TestExportHandsOverEverything(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	clock := &testClock{now: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	s := openTestSpool(t, dir, WithClock(clock.Now), WithDedupWindow(time.Hour))
	for _, ev := range []*relay.Event{dedupEvent("e1", "old"), dedupEvent("e2", "7"), dedupEvent("e3", "8"), dedupEvent("e4", "")} {
		if err := s.Enqueue(ctx, ev); err != nil {
			t.Fatal(err)
		}
		if ev.ID == "e1" {
			clock.Add(90 * time.Minute) // e1's key is past its window from now on
		}
	}
	l, err := s.Lease(ctx)
	if err != nil || l.Item.Event.ID != "e1" {
		t.Fatalf("lease: %v %v", l, err)
	}
	next := clock.Now().Add(time.Hour)
	if err := s.Retry(ctx, l, next, relay.Progress{Attempts: 1, Delivered: []string{"ops"}, LastError: "451 later",
		History: []relay.Attempt{{At: clock.Now(), What: "attempt 1 failed: 451 later"}}}); err != nil {
		t.Fatal(err)
	}
	l, _ = s.Lease(ctx)
	if err := s.Bury(ctx, l, "permanent error: 550 no such user", relay.Progress{Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	rt := &config.Route{Name: "daily", To: []string{"ops@example.com"}, ReplyTo: "desk@example.com"}
	if err := s.Collect(ctx, rt, testEvent("d1")); err != nil {
		t.Fatal(err)
	}
	want := map[string]*relay.Item{}
	for _, id := range []string{"e1", "e2", "e3", "e4"} {
		it, err := s.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want[id] = it
	}
	s.Close()
	path := filepath.Join(dir, File)
	before, _ := os.ReadFile(path)
	fiBefore, _ := os.Stat(path)

	e, err := OpenExport(dir, WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err == nil {
		t.Error("a hookmail could open the spool while it is exported")
	}
	c, err := e.Count(ctx)
	if want := (relay.MigrationCounts{Waiting: 3, Dead: 1, DedupKeys: 2, DigestEntries: 1}); err != nil || c != want {
		t.Errorf("Count = %+v, %v; want %+v", c, err, want)
	}
	got := map[string]*relay.Item{}
	for _, state := range []relay.State{relay.StateWaiting, relay.StateDead} {
		if err := e.ExportItems(ctx, state, func(it *relay.Item) error { got[it.Event.ID] = it; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("items:\n%+v\nwant\n%+v", got, want)
	}
	if it := got["e1"]; it.Attempts != 1 || !it.NextAttempt.Equal(next) || len(it.History) != 1 || got["e2"].State != relay.StateDead {
		t.Errorf("progress or state lost: %+v, %s", it, got["e2"].State)
	}
	var keys []relay.DedupRecord
	if err := e.ExportDedupKeys(ctx, func(r *relay.DedupRecord) error { keys = append(keys, *r); return nil }); err != nil {
		t.Fatal(err)
	}
	byEvent := map[string]relay.DedupRecord{}
	for _, k := range keys {
		byEvent[k.Event] = k
	}
	if len(keys) != 2 || byEvent["e2"].Hash != relay.HashDedupKey(dedupEvent("", "7").DedupKey) ||
		!byEvent["e3"].Expires.Equal(time.Date(2026, 5, 1, 14, 30, 0, 0, time.UTC)) {
		t.Errorf("dedup keys %+v; want e2's and e3's (e1's window has passed, e4 has none)", byEvent)
	}
	var digests []relay.DigestRecord
	if err := e.ExportDigests(ctx, func(r *relay.DigestRecord) error { digests = append(digests, *r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(digests) != 1 || digests[0].Route != "daily" || digests[0].Entry.Event.ID != "d1" ||
		digests[0].Entry.ReplyTo != "desk@example.com" || !digests[0].Entry.Collected.Equal(clock.Now()) {
		t.Errorf("digests %+v", digests)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(path)
	fiAfter, _ := os.Stat(path)
	if !bytes.Equal(before, after) || !fiAfter.ModTime().Equal(fiBefore.ModTime()) {
		t.Error("the export changed the spool file")
	}
}

// TestExportRefusesARunningSpool: while a hookmail holds the spool, the
// export fails at once, saying to stop hookmail first; it never creates a
// spool.
func TestExportRefusesARunningSpool(t *testing.T) {
	dir := t.TempDir()
	openTestSpool(t, dir)
	start := time.Now()
	_, err := OpenExport(dir)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "stop hookmail first") {
		t.Errorf("export of a running spool: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s to give up", d)
	}
	missing := filepath.Join(t.TempDir(), "data")
	if _, err := OpenExport(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("export of no spool: %v", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the export created %s", missing)
	}
}
