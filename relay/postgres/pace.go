package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookmail/hookmail/relay"
)

var _ relay.PaceStore = (*Queue)(nil)

// clockNS is the database's time in Unix nanoseconds when the expression
// runs (not when its transaction began, as now() would be): a slot is
// timed after the locks that order the takers are held.
const clockNS = "(extract(epoch FROM clock_timestamp()) * 1000000000)::bigint"

// Take takes a slot from every bucket in one transaction, so that the rates
// hold across every instance on the database: the buckets' rows are made if
// need be, locked in key order (two instances taking the same buckets never
// deadlock), read against the database's clock once locked, and moved on
// only when each one is free. The rows are a handful, so the lock is short.
func (q *Queue) Take(ctx context.Context, buckets []relay.Bucket) ([]time.Duration, error) {
	if q.isClosed() {
		return nil, relay.ErrQueueClosed
	}
	ctx, cancel := q.bound(ctx)
	defer cancel()
	keys := make([]string, len(buckets))
	every := make([]int64, len(buckets))
	for i, b := range buckets {
		keys[i], every[i] = b.Key, b.Every.Nanoseconds()
	}
	var waits []time.Duration
	err := pgx.BeginFunc(ctx, q.pool, func(tx pgx.Tx) error {
		waits = nil
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO hookmail_pace (key, free) SELECT unnest($1::text[]), 0 ON CONFLICT (key) DO NOTHING`, keys)
		b.Queue(`SELECT FROM hookmail_pace WHERE key = ANY($1) ORDER BY key FOR UPDATE`, keys)
		wait := map[string]int64{}
		b.Queue(`SELECT key, greatest(free - `+clockNS+`, 0) FROM hookmail_pace WHERE key = ANY($1)`, keys).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var key string
				var w int64
				if err := rows.Scan(&key, &w); err != nil {
					return err
				}
				wait[key] = w
			}
			return rows.Err()
		})
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		blocked := false
		ws := make([]time.Duration, len(keys))
		for i, k := range keys {
			ws[i] = time.Duration(wait[k])
			blocked = blocked || ws[i] > 0
		}
		if blocked {
			waits = ws
			return nil
		}
		_, err := tx.Exec(ctx, `UPDATE hookmail_pace AS p SET free = `+clockNS+` + b.every
			FROM unnest($1::text[], $2::bigint[]) AS b(key, every) WHERE p.key = b.key`, keys, every)
		return err
	})
	if err != nil {
		return nil, q.fail(err)
	}
	return waits, nil
}
