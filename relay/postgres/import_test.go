package postgres_test

import (
	"errors"
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/postgres"
	"github.com/hookmail/hookmail/relay/postgres/pgtest"
)

// TestImportDedupKeys: an imported dedup key holds in the queue as one
// Enqueue stored (a repeat is a duplicate of the imported event); a key
// the queue holds in its window keeps its event, one past its window is
// taken over, and one whose own window has ended is not stored.
func TestImportDedupKeys(t *testing.T) {
	url := pgtest.Database(t)
	ctx := t.Context()
	// A window of a microsecond: the key Enqueue stores has lapsed at once.
	lapsed := open(t, url, postgres.WithDedupWindow(time.Microsecond))
	old := testEvent(1)
	old.DedupKey = "key-lapsed"
	if err := lapsed.Enqueue(ctx, old); err != nil {
		t.Fatal(err)
	}
	lapsed.Close()
	q := open(t, url, postgres.WithDedupWindow(time.Hour))
	defer q.Close()
	held := testEvent(2)
	held.DedupKey = "key-held"
	if err := q.Enqueue(ctx, held); err != nil {
		t.Fatal(err)
	}
	in := time.Now().Add(30 * time.Minute)
	keys := []relay.DedupRecord{
		{Hash: relay.HashDedupKey("key-new"), Event: "imported-new", Expires: in},
		{Hash: relay.HashDedupKey("key-lapsed"), Event: "imported-over-lapsed", Expires: in},
		{Hash: relay.HashDedupKey("key-held"), Event: "imported-over-held", Expires: in},
		{Hash: relay.HashDedupKey("key-ended"), Event: "imported-ended", Expires: time.Now().Add(-time.Minute)},
	}
	if n, err := q.ImportDedupKeys(ctx, keys); err != nil || n != 2 {
		t.Fatalf("ImportDedupKeys = %d, %v; want the new key and the lapsed one's stored", n, err)
	}
	if n, err := q.ImportDedupKeys(ctx, keys); err != nil || n != 0 {
		t.Errorf("again: %d, %v; want nothing stored twice", n, err)
	}
	for key, first := range map[string]string{"key-new": "imported-new", "key-lapsed": "imported-over-lapsed", "key-held": held.ID, "key-ended": ""} {
		ev := testEvent(3)
		ev.ID, ev.DedupKey = "repeat-of-"+key, key
		err := q.Enqueue(ctx, ev)
		var dup *relay.DuplicateError
		switch {
		case first == "" && err != nil:
			t.Errorf("%s: %v, want it stored (the key was not)", key, err)
		case first != "" && (!errors.As(err, &dup) || dup.ID != first):
			t.Errorf("%s: %v, want a duplicate of %s", key, err, first)
		}
	}
}
