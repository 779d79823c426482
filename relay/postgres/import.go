package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hookmail/hookmail/relay"
)

var _ relay.Importer = (*Queue)(nil)

// ImportItems stores the waiting events and dead letters the queue does
// not hold yet (by event id), with their progress, in one transaction, and
// returns how many it stored. Waiting ones keep their next attempt; every
// instance listening is woken for them.
func (q *Queue) ImportItems(ctx context.Context, items []relay.Item) (int, error) {
	b := &pgx.Batch{}
	n, waiting := 0, false
	for i := range items {
		it := &items[i]
		dead := it.State == relay.StateDead
		waiting = waiting || !dead
		b.Queue(`INSERT INTO hookmail_events (id, type, source, data, received, dead, due, attempts, last_error,
				delivered, refused, owed, history, requeued, dead_reason, died, format, content, priority)
			VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9, $10::jsonb, $11::jsonb, $12::jsonb, $13::jsonb, $14, $15, $16, $17, $18::jsonb, $19)
			ON CONFLICT (id) DO NOTHING`,
			it.Event.ID, it.Event.Type, it.Event.Source, jsonText(it.Event.Data), it.Event.Received, dead,
			it.NextAttempt.UnixNano(), it.Attempts, it.LastError, jsonText(it.Delivered), jsonText(it.Refused),
			jsonText(it.Owed), historyJSON(it.History), orNull(it.Requeued), it.DeadReason, orNull(it.Died),
			it.Event.Format, contentJSON(&it.Event), it.Event.Priority,
		).Exec(count(&n))
	}
	if waiting {
		b.Queue("SELECT pg_notify($1, $2)", channel, q.owner) // delivered at commit
	}
	if err := q.importBatch(ctx, b); err != nil {
		return 0, err
	}
	q.recount()
	q.signalAll()
	return n, nil
}

// ImportDedupKeys stores the dedup keys the queue does not hold in their
// window yet, in one transaction, and returns how many it stored. A key
// held past its window is taken over, as Enqueue's would be; one whose own
// window has ended by the database's clock dedups nothing and is not
// stored.
func (q *Queue) ImportDedupKeys(ctx context.Context, keys []relay.DedupRecord) (int, error) {
	b := &pgx.Batch{}
	n := 0
	for i := range keys {
		k := &keys[i]
		b.Queue(`INSERT INTO hookmail_dedup AS d (key, event, expires) SELECT $1, $2, $3 WHERE $3 > now()
			ON CONFLICT (key) DO UPDATE SET event = excluded.event, expires = excluded.expires WHERE d.expires <= now()`,
			k.Hash[:], k.Event, k.Expires).Exec(count(&n))
	}
	if err := q.importBatch(ctx, b); err != nil {
		return 0, err
	}
	return n, nil
}

// ImportDigests stores the collected digest entries the queue does not
// hold yet (by route and event id), in one transaction, and returns how
// many it stored.
func (q *Queue) ImportDigests(ctx context.Context, entries []relay.DigestRecord) (int, error) {
	b := &pgx.Batch{}
	n := 0
	for i := range entries {
		r, e := &entries[i], &entries[i].Entry
		b.Queue(`INSERT INTO hookmail_digest_entries
				(route, event, type, source, data, received, collected, to_addrs, cc_addrs, bcc_addrs, reply_to, format, content)
			VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10, $11, $12, $13::jsonb)
			ON CONFLICT (route, event) DO NOTHING`,
			r.Route, e.Event.ID, e.Event.Type, e.Event.Source, jsonText(e.Event.Data), e.Event.Received, e.Collected,
			addrs(e.To), addrs(e.Cc), addrs(e.Bcc), e.ReplyTo, e.Event.Format, contentJSON(&e.Event)).Exec(count(&n))
	}
	if err := q.importBatch(ctx, b); err != nil {
		return 0, err
	}
	return n, nil
}

// importBatch runs b's statements in one transaction, sent together so a
// batch takes one round trip rather than one per record.
func (q *Queue) importBatch(ctx context.Context, b *pgx.Batch) error {
	if q.isClosed() {
		return relay.ErrQueueClosed
	}
	ctx, cancel := q.bound(ctx)
	defer cancel()
	return q.fail(pgx.BeginFunc(ctx, q.pool, func(tx pgx.Tx) error {
		return tx.SendBatch(ctx, b).Close()
	}))
}

// count adds the rows a statement stored to n.
func count(n *int) func(pgconn.CommandTag) error {
	return func(tag pgconn.CommandTag) error {
		*n += int(tag.RowsAffected())
		return nil
	}
}

// orNull is t for a nullable timestamptz column: NULL when t is zero.
func orNull(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
