package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/postgres/pgtest"
)

// queueWith opens a queue on a database of its own with maxEvents (0: no
// limit) and n waiting events stored straight into the table, as other
// instances would have; it returns the queue and the database's URL.
func queueWith(t *testing.T, maxEvents, n int) (*Queue, string) {
	t.Helper()
	url := pgtest.Database(t)
	q, err := Open(t.Context(), url, WithMaxEvents(maxEvents))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	pgtest.Exec(t, url, fmt.Sprintf(`INSERT INTO hookmail_events (id, type, source, data, received, due)
		SELECT 'ev-' || i, 'sms', 'x', '{}', now(), 0 FROM generate_series(1, %d) AS i`, n))
	return q, url
}

// TestLimitCountsOneAtATimeNearTheLimit: near max_events, webhooks
// checking the limit at once count the backlog once between them, not
// each (a p99 of 2.1 s at 950,000 of 1,000,000 when each did), and a count
// stands countShare times as long as it took.
func TestLimitCountsOneAtATimeNearTheLimit(t *testing.T) {
	q, _ := queueWith(t, 1000, 960)
	if err := q.full(t.Context()); err != nil {
		t.Fatal(err)
	}
	if q.depth != 960 || q.countsMade.Load() != 1 {
		t.Fatalf("first check: counted %d in %d counts, want 960 in 1", q.depth, q.countsMade.Load())
	}

	q.recount() // the count has stood its time
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if err := q.full(t.Context()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := q.countsMade.Load() - 1; n != 1 {
		t.Errorf("50 checks at once, 960 of 1000 waiting, counted %d times, want once", n)
	}

	q.mu.Lock()
	q.countTook, q.depthAt = 200*time.Millisecond, time.Now().Add(-3*time.Second)
	q.mu.Unlock()
	before := q.countsMade.Load()
	if err := q.full(t.Context()); err != nil || q.countsMade.Load() != before {
		t.Errorf("3 s after a count that took 200 ms: counted again (%v)", err)
	}
	q.mu.Lock()
	q.depthAt = time.Now().Add(-4100 * time.Millisecond)
	q.mu.Unlock()
	if err := q.full(t.Context()); err != nil || q.countsMade.Load() != before+1 {
		t.Errorf("4.1 s after a count that took 200 ms: not counted again (%v)", err)
	}
}

// TestStatsBytesAreTheTablesOnDisk: Stats' bytes are the events' and
// digests' tables as Postgres sizes them, read without a pass over the
// rows' sizes.
func TestStatsBytesAreTheTablesOnDisk(t *testing.T) {
	q, _ := queueWith(t, 0, 500)
	st, err := q.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	if err := q.pool.QueryRow(t.Context(), "SELECT pg_table_size('hookmail_events') + pg_table_size('hookmail_digest_entries')").Scan(&want); err != nil {
		t.Fatal(err)
	}
	if st.Bytes != want || st.Bytes < 500*40 || st.Depth != 500 {
		t.Errorf("stats %+v, want 500 waiting in %d bytes", st, want)
	}
}

// TestLimitRecountsAFullFigureSoon: an instance whose own figure says full
// (it stored while other instances delivered) counts again a second after
// its last count, not only after countShare times as long as that count
// took, and takes the webhook when the queue has room.
func TestLimitRecountsAFullFigureSoon(t *testing.T) {
	q, _ := queueWith(t, 100, 50)
	q.mu.Lock()
	// 120 stored here since a count that took 200 ms, 0.9 s ago; the
	// others delivered all but 50.
	q.depth, q.countTook, q.depthAt = 120, 200*time.Millisecond, time.Now().Add(-900*time.Millisecond)
	q.mu.Unlock()
	if err := q.full(t.Context()); !errors.Is(err, relay.ErrQueueFull) || q.countsMade.Load() != 0 {
		t.Fatalf("0.9 s after the count: %v after %d counts, want full on the standing figure", err, q.countsMade.Load())
	}
	q.mu.Lock()
	q.depthAt = time.Now().Add(-1100 * time.Millisecond)
	q.mu.Unlock()
	if err := q.full(t.Context()); err != nil || q.countsMade.Load() != 1 || q.depth != 50 {
		t.Errorf("1.1 s after the count: %v after %d counts, figure %d; want a count of 50 and room", err, q.countsMade.Load(), q.depth)
	}
}

// TestLimitRecountAskedDuringACount: a recount asked for (after an import
// or a requeue) while a count runs is not lost when that count, which may
// have missed the new events, ends: the next check counts again.
func TestLimitRecountAskedDuringACount(t *testing.T) {
	q, url := queueWith(t, 100, 0)
	ctx := t.Context()
	lock, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close(context.WithoutCancel(ctx))
	tx, err := lock.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE hookmail_events IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- q.full(ctx) }()
	for q.countsMade.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	q.recount() // while the count waits for the lock
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := q.full(ctx); err != nil || q.countsMade.Load() != 2 {
		t.Errorf("the check after: %v after %d counts, want a second count", err, q.countsMade.Load())
	}
}
