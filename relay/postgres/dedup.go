package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookmail/hookmail/relay"
)

// storeOnce claims ev's dedup key within the window and stores ev, or
// returns the id of the event that holds the key. The claim and the event
// are one statement: one round trip, and one transaction, committed when
// it returns. An expired key is taken over in place.
func (q *Queue) storeOnce(ctx context.Context, ev *relay.Event) (string, error) {
	h := relay.HashDedupKey(ev.DedupKey)
	for range 3 {
		var stored bool
		err := q.pool.QueryRow(ctx, `WITH claim AS (
				INSERT INTO hookmail_dedup AS d (key, event, expires) VALUES ($1, $2, now() + `+micros(7)+`)
				ON CONFLICT (key) DO UPDATE SET event = excluded.event, expires = excluded.expires WHERE d.expires <= now()
				RETURNING event),
			stored AS (
				INSERT INTO hookmail_events (id, type, source, data, received, due, format, content, priority)
				SELECT event, $3, $4, $5::jsonb, $6, `+nowNS+`, $8, $9::jsonb, $10 FROM claim
				RETURNING id)
			SELECT count(*) > 0 FROM stored`,
			h[:], ev.ID, ev.Type, ev.Source, jsonText(ev.Data), ev.Received, q.opts.dedupWindow.Microseconds(),
			ev.Format, contentJSON(ev), ev.Priority).Scan(&stored)
		if err != nil || stored {
			return "", err
		}
		// Held, by a transaction that has committed (an INSERT waits for
		// one that has not): read whose it is, in a statement of its own,
		// whose snapshot has that commit in it.
		var first string
		err = q.pool.QueryRow(ctx, "SELECT event FROM hookmail_dedup WHERE key = $1", h[:]).Scan(&first)
		if err == nil {
			return first, nil
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return "", err
		}
		// It expired and was swept in between: claim it again.
	}
	return "", errors.New("the dedup key kept changing hands")
}

// sweepEvery is how often an instance deletes expired dedup keys, at most
// sweepBatch a statement, so a sweep never holds locks for long.
const (
	sweepEvery = time.Minute
	sweepBatch = 1000
)

// sweepLoop sweeps every sweepEvery until ctx ends.
func (q *Queue) sweepLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(sweepEvery):
		}
		q.sweep(ctx)
	}
}

// sweep deletes the expired dedup keys and the ended storm windows, and
// logs what it could not delete.
func (q *Queue) sweep(ctx context.Context) {
	if err := q.sweepDedup(ctx); err != nil && ctx.Err() == nil {
		q.opts.log.Warn("postgres: cannot delete expired dedup keys; trying again in a minute", "err", q.red.text(err.Error()))
	}
	if err := q.sweepStorms(ctx); err != nil && ctx.Err() == nil {
		q.opts.log.Warn("postgres: cannot delete ended storm windows; trying again in a minute", "err", q.red.text(err.Error()))
	}
}

// sweepDedup deletes the expired dedup keys, a batch at a time. Instances
// sweeping at once skip each other's rows.
func (q *Queue) sweepDedup(ctx context.Context) error {
	for {
		tag, err := q.pool.Exec(ctx, `DELETE FROM hookmail_dedup WHERE key IN (
			SELECT key FROM hookmail_dedup WHERE expires <= now() ORDER BY expires LIMIT $1 FOR UPDATE SKIP LOCKED)`, sweepBatch)
		if err != nil || tag.RowsAffected() < sweepBatch {
			return err
		}
	}
}
