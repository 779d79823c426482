package relay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// fakeExporter holds n waiting items and one record of every other kind.
type fakeExporter struct{ waiting int }

var _ Exporter = (*fakeExporter)(nil)

func (f *fakeExporter) Count(context.Context) (MigrationCounts, error) {
	return MigrationCounts{Waiting: f.waiting, Dead: 1, DedupKeys: 1, DigestEntries: 1}, nil
}

func (f *fakeExporter) ExportItems(_ context.Context, state State, fn func(*Item) error) error {
	n := f.waiting
	if state == StateDead {
		n = 1
	}
	for i := range n {
		if err := fn(&Item{Event: Event{ID: fmt.Sprintf("%s-%d", state, i)}, State: state}); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeExporter) ExportDedupKeys(_ context.Context, fn func(*DedupRecord) error) error {
	return fn(&DedupRecord{Hash: HashDedupKey("k"), Event: "waiting-0"})
}

func (f *fakeExporter) ExportDigests(_ context.Context, fn func(*DigestRecord) error) error {
	return fn(&DigestRecord{Route: "daily", Entry: DigestEntry{Event: Event{ID: "waiting-1"}}})
}

// fakeImporter stores each record once by its key, and fails the batch
// after failAfter batches when that is set.
type fakeImporter struct {
	stored           map[string]bool
	batches, biggest int
	failAfter        int
}

var _ Importer = (*fakeImporter)(nil)

func (f *fakeImporter) store(keys []string) (int, error) {
	f.batches++
	if f.failAfter > 0 && f.batches > f.failAfter {
		return 0, errors.New("the database went away")
	}
	f.biggest = max(f.biggest, len(keys))
	n := 0
	for _, k := range keys {
		if !f.stored[k] {
			f.stored[k] = true
			n++
		}
	}
	return n, nil
}

func (f *fakeImporter) ImportItems(_ context.Context, items []Item) (int, error) {
	var keys []string
	for _, it := range items {
		keys = append(keys, "item "+it.Event.ID)
	}
	return f.store(keys)
}

func (f *fakeImporter) ImportDedupKeys(_ context.Context, keys []DedupRecord) (int, error) {
	var ks []string
	for _, k := range keys {
		ks = append(ks, "key "+string(k.Hash[:]))
	}
	return f.store(ks)
}

func (f *fakeImporter) ImportDigests(_ context.Context, entries []DigestRecord) (int, error) {
	var keys []string
	for _, e := range entries {
		keys = append(keys, "digest "+e.Route+" "+e.Entry.Event.ID)
	}
	return f.store(keys)
}

// TestMigrateMovesEachRecordOnce: records go over in batches of at most
// migrateBatch; a run that fails partway reports what it moved, and runs
// again move the rest and then nothing, counting the rest as there.
func TestMigrateMovesEachRecordOnce(t *testing.T) {
	from := &fakeExporter{waiting: 2*migrateBatch + 1}
	to := &fakeImporter{stored: map[string]bool{}, failAfter: 1}
	var seen []MigrationProgress
	p, err := Migrate(t.Context(), from, to, func(p MigrationProgress) { seen = append(seen, p) })
	if err == nil || !strings.Contains(err.Error(), "moving the waiting events: the database went away") {
		t.Fatalf("a failing target: %v", err)
	}
	if p.Moved.Waiting != migrateBatch || p.Read.Waiting != migrateBatch || p.Total.Waiting != from.waiting {
		t.Errorf("progress after the failure %+v, want the first batch moved", p)
	}

	to.failAfter = 0
	seen = nil
	p, err = Migrate(t.Context(), from, to, func(p MigrationProgress) { seen = append(seen, p) })
	if err != nil {
		t.Fatal(err)
	}
	want := MigrationCounts{Waiting: from.waiting - migrateBatch, Dead: 1, DedupKeys: 1, DigestEntries: 1}
	if p.Moved != want || p.There() != (MigrationCounts{Waiting: migrateBatch}) || p.Kind != "" {
		t.Errorf("second run %+v, there %+v; want the rest moved, the first batch there", p, p.There())
	}
	if to.biggest != migrateBatch {
		t.Errorf("biggest batch %d, want %d", to.biggest, migrateBatch)
	}
	// Each kind starts with a report, and each batch ends with one: 3
	// batches of waiting events, 1 of each other kind.
	kinds := []MigrationKind{}
	for _, s := range seen {
		if len(kinds) == 0 || kinds[len(kinds)-1] != s.Kind {
			kinds = append(kinds, s.Kind)
		}
	}
	if want := []MigrationKind{KindWaiting, KindDead, KindDedupKeys, KindDigestEntries}; !slices.Equal(kinds, want) || len(seen) != 4+2+2+2 {
		t.Errorf("progress reported for %v, %d times; want %v, 10 times", kinds, len(seen), want)
	}

	p, err = Migrate(t.Context(), from, to, func(MigrationProgress) {})
	if err != nil || p.Moved != (MigrationCounts{}) || p.There() != p.Total {
		t.Errorf("third run %+v, %v; want nothing moved, everything there", p, err)
	}
}

// TestMigrateStopsWhenCancelled: an interrupted migration stops before its
// next batch and says so.
func TestMigrateStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	to := &fakeImporter{stored: map[string]bool{}}
	p, err := Migrate(ctx, &fakeExporter{waiting: 3 * migrateBatch}, to, func(p MigrationProgress) {
		if p.Read.Waiting > 0 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || p.Moved.Waiting != migrateBatch || to.batches != 1 {
		t.Errorf("cancelled after a batch: %v, %+v, %d batches stored", err, p, to.batches)
	}
}
