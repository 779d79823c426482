package postgres

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/hookmail/hookmail/relay/postgres/pgtest"
)

// TestSweepDedup: expired dedup keys are deleted, more than a batch of
// them, and the keys still within their window stay.
func TestSweepDedup(t *testing.T) {
	url := pgtest.Database(t)
	q, err := Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	pgtest.Exec(t, url,
		`INSERT INTO hookmail_dedup (key, event, expires)
		 SELECT sha256(i::text::bytea), 'old', now() - interval '1 second' FROM generate_series(1, 2500) AS i`,
		`INSERT INTO hookmail_dedup (key, event, expires)
		 SELECT sha256(('new' || i)::bytea), 'new', now() + interval '1 hour' FROM generate_series(1, 7) AS i`)
	if err := q.sweepDedup(t.Context()); err != nil {
		t.Fatal(err)
	}
	var old, fresh int
	if err := q.pool.QueryRow(t.Context(), "SELECT count(*) FILTER (WHERE event = 'old'), count(*) FILTER (WHERE event = 'new') FROM hookmail_dedup").Scan(&old, &fresh); err != nil {
		t.Fatal(err)
	}
	if old != 0 || fresh != 7 {
		t.Errorf("after a sweep: %d expired keys left, %d unexpired, want 0 and 7", old, fresh)
	}
}

// TestSweepWarnsOncePerTable: a sweep that cannot delete warns once for
// the dedup keys and once for the storm windows, not once per repeat of
// the same statement.
func TestSweepWarnsOncePerTable(t *testing.T) {
	url := pgtest.Database(t)
	var logs bytes.Buffer
	q, err := Open(t.Context(), url, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	pgtest.Exec(t, url,
		"ALTER TABLE hookmail_dedup RENAME TO hookmail_dedup_gone",
		"ALTER TABLE hookmail_storm_windows RENAME TO hookmail_storm_windows_gone")
	q.sweep(t.Context())
	for _, msg := range []string{"cannot delete expired dedup keys", "cannot delete ended storm windows"} {
		if n := strings.Count(logs.String(), msg); n != 1 {
			t.Errorf("%q logged %d times by one sweep, want once:\n%s", msg, n, logs.String())
		}
	}
}
