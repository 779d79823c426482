package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookmail/hookmail/relay"
)

// remember claims the dedup key for id within the window, or returns the
// id of the event that holds it. An expired key is taken over in place.
func (q *Queue) remember(ctx context.Context, tx pgx.Tx, key, id string) (string, error) {
	h := relay.HashDedupKey(key)
	for range 3 {
		var first string
		err := tx.QueryRow(ctx, `INSERT INTO hookmail_dedup AS d (key, event, expires) VALUES ($1, $2, now() + `+micros(3)+`)
			ON CONFLICT (key) DO UPDATE SET event = excluded.event, expires = excluded.expires WHERE d.expires <= now()
			RETURNING event`, h[:], id, q.opts.dedupWindow.Microseconds()).Scan(&first)
		if err == nil {
			return "", nil // the key is this event's now
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return "", err
		}
		// Held, by a transaction that has committed (an INSERT waits for
		// one that has not): read whose it is.
		err = tx.QueryRow(ctx, "SELECT event FROM hookmail_dedup WHERE key = $1", h[:]).Scan(&first)
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

// sweepLoop sweeps the dedup keys and the storm windows until ctx ends.
func (q *Queue) sweepLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(sweepEvery):
		}
		if err := q.sweepDedup(ctx); err != nil && ctx.Err() == nil {
			q.opts.log.Warn("postgres: cannot delete expired dedup keys; trying again in a minute", "err", q.red.text(err.Error()))
		}
		if err := q.sweepStorms(ctx); err != nil && ctx.Err() == nil {
			q.opts.log.Warn("postgres: cannot delete ended storm windows; trying again in a minute", "err", q.red.text(err.Error()))
		}
		if err := q.sweepStorms(ctx); err != nil && ctx.Err() == nil {
			q.opts.log.Warn("postgres: cannot delete ended storm windows; trying again in a minute", "err", q.red.text(err.Error()))
		}
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
