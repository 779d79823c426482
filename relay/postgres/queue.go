package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hookmail/hookmail/relay"
)

// Enqueue stores ev, due now, and its dedup key, in one statement (so one
// transaction) that has committed when it returns. The key's row is
// written with the event, so two instances given the same event at once
// store it once: the second waits for the first's transaction and gets a
// *relay.DuplicateError. One idle worker here is woken at once (see
// signal), those of other instances by a NOTIFY that follows the commit
// (notifyLoop).
func (q *Queue) Enqueue(ctx context.Context, ev *relay.Event) error {
	if q.isClosed() {
		return relay.ErrQueueClosed
	}
	ctx, cancel := q.bound(ctx)
	defer cancel()
	if err := q.full(ctx); err != nil {
		return err
	}
	var dupOf string
	var err error
	if ev.DedupKey != "" && q.opts.dedupWindow > 0 {
		dupOf, err = q.storeOnce(ctx, ev)
	} else {
		_, err = q.pool.Exec(ctx, `INSERT INTO hookmail_events (id, type, source, format, data, content, received, priority, due)
			VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8, `+nowNS+`)`,
			ev.ID, ev.Type, ev.Source, ev.Format, jsonText(ev.Data), contentJSON(ev), ev.Received, ev.Priority)
	}
	switch {
	case err != nil:
		return q.fail(err)
	case dupOf != "":
		return &relay.DuplicateError{ID: dupOf}
	}
	q.counted(1)
	q.signal()
	q.announce()
	return nil
}

// A count of the waiting events for the maxEvents check stands at least
// recountEvery, and countShare times as long as it took (counting spends
// at most a twentieth of the time), but never over maxStanding.
const (
	recountEvery = time.Second
	countShare   = 20
	maxStanding  = 30 * time.Second
)

// full reports whether maxEvents events wait: the last count of them,
// plus what this instance stored and took out since (see counted). A count
// reads every waiting event, a quarter of a second for a million here, so
// one check at a time counts, once the last count has stood its time (see
// recountEvery), however near the limit; the checks of other webhooks
// meanwhile take the standing count. Counting at every webhook near the
// limit made each wait for a count of the whole backlog, all at once (a
// p99 of 2.1 s at 950,000 events of a 1,000,000 limit).
//
// What other instances store and deliver is seen at the next count: the
// limit can be passed by what they store meanwhile, and an instance that
// stores while others deliver would refuse on its own rising figure; so
// once the standing figure says full, a count stands recountEvery only.
func (q *Queue) full(ctx context.Context) error {
	limit := q.opts.maxEvents
	if limit <= 0 {
		return nil
	}
	q.mu.Lock()
	n := q.depth
	stands := min(max(recountEvery, countShare*q.countTook), maxStanding)
	if n >= limit {
		stands = recountEvery
	}
	count := !q.counting && time.Since(q.depthAt) > stands
	q.counting = q.counting || count
	base, gen := q.depth, q.recounts
	q.mu.Unlock()
	if count {
		start := time.Now()
		q.countsMade.Add(1)
		// Counting stops at the limit: what lies beyond it changes nothing.
		err := q.pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT FROM hookmail_events WHERE NOT dead LIMIT $1) AS w`, limit).Scan(&n)
		q.mu.Lock()
		q.counting = false
		if err == nil {
			// What this instance stored and took out while the count ran
			// is added to it. The count may have seen some of it already:
			// the figure is off by at most what this instance did during
			// one count, until the next.
			n += q.depth - base
			q.depth, q.depthAt, q.countTook = n, time.Now(), time.Since(start)
			if q.recounts != gen {
				// An import or a requeue asked for a count while this one
				// ran, which may not have seen its events: count again.
				q.depthAt = time.Time{}
			}
		}
		q.mu.Unlock()
		if err != nil {
			return q.fail(err)
		}
	}
	if n >= limit {
		return fmt.Errorf("%w: %d events waiting, the spool.max_events limit", relay.ErrQueueFull, limit)
	}
	return nil
}

// counted adds n to the standing count of waiting events.
func (q *Queue) counted(n int) {
	q.mu.Lock()
	q.depth += n
	q.mu.Unlock()
}

// recount has the next maxEvents check count anew.
func (q *Queue) recount() {
	q.mu.Lock()
	q.depthAt = time.Time{}
	q.recounts++
	q.mu.Unlock()
}

// Ack deletes the delivered item, if l still holds it.
func (q *Queue) Ack(ctx context.Context, l *relay.Lease) error {
	if q.isClosed() {
		return relay.ErrQueueClosed
	}
	ctx, cancel := q.bound(ctx)
	defer cancel()
	tag, err := q.pool.Exec(ctx, "DELETE FROM hookmail_events WHERE id = $1 AND lease_token = $2 AND NOT dead",
		l.Item.Event.ID, l.Token)
	if err != nil {
		return q.fail(err)
	}
	if tag.RowsAffected() == 0 {
		return relay.ErrLeaseLost
	}
	q.counted(-1)
	return nil
}

// Extend pushes l's expiry a lease timeout past the database's now, if l
// still holds the item.
func (q *Queue) Extend(ctx context.Context, l *relay.Lease) error {
	if q.isClosed() {
		return relay.ErrQueueClosed
	}
	ctx, cancel := q.bound(ctx)
	defer cancel()
	err := q.pool.QueryRow(ctx, `UPDATE hookmail_events SET lease_expires = now() + `+micros(3)+`
		WHERE id = $1 AND lease_token = $2 AND NOT dead RETURNING lease_expires`,
		l.Item.Event.ID, l.Token, q.opts.leaseTimeout.Microseconds()).Scan(&l.Expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return relay.ErrLeaseLost
	}
	return q.fail(err)
}

// progressSet are the assignments that store a relay.Progress from
// parameters $3 to $8, as relay.Item.Apply does, and end the lease.
var progressSet = `attempts = $3, delivered = $4::jsonb, refused = $5::jsonb, owed = $6::jsonb,
	last_error = $7, history = ` + appendHistory(8) + `, lease_token = NULL, lease_expires = NULL`

func progressArgs(l *relay.Lease, p relay.Progress, history []relay.Attempt) []any {
	return []any{l.Item.Event.ID, l.Token, p.Attempts, jsonText(p.Delivered), jsonText(p.Refused), jsonText(p.Owed),
		p.LastError, historyJSON(history)}
}

// Retry stores the attempt's progress and makes the item due at next, in
// one statement, if l still holds it.
func (q *Queue) Retry(ctx context.Context, l *relay.Lease, next time.Time, p relay.Progress) error {
	args := append(progressArgs(l, p, p.History), next.UnixNano())
	return q.settle(ctx, `UPDATE hookmail_events SET `+progressSet+`, due = $9
		WHERE id = $1 AND lease_token = $2 AND NOT dead`, args)
}

// Bury stores the attempt's progress and moves the item to the dead
// letters, in one statement, if l still holds it.
func (q *Queue) Bury(ctx context.Context, l *relay.Lease, reason string, p relay.Progress) error {
	died := time.Now()
	history := append(p.History[:len(p.History):len(p.History)], relay.Attempt{At: died, What: "moved to the dead letters: " + reason})
	args := append(progressArgs(l, p, history), reason, died)
	if err := q.settle(ctx, `UPDATE hookmail_events SET `+progressSet+`, dead = true, dead_reason = $9, died = $10
		WHERE id = $1 AND lease_token = $2 AND NOT dead`, args); err != nil {
		return err
	}
	q.counted(-1)
	return nil
}

// settle runs a Retry's or Bury's statement; no row changed means the
// lease no longer holds the item.
func (q *Queue) settle(ctx context.Context, sql string, args []any) error {
	if q.isClosed() {
		return relay.ErrQueueClosed
	}
	ctx, cancel := q.bound(ctx)
	defer cancel()
	tag, err := q.pool.Exec(ctx, sql, args...)
	if err != nil {
		return q.fail(err)
	}
	if tag.RowsAffected() == 0 {
		return relay.ErrLeaseLost
	}
	q.signal() // a local leaser may now have something due sooner
	return nil
}

// Stats counts by type and state in one pass over the events. Bytes is
// the size of the events' and collected digests' tables on disk
// (pg_table_size), without indexes; it keeps the space of deleted rows
// until Postgres reuses it, so it does not fall as a backlog drains.
// Summing each row's size instead nearly doubled the pass (360 ms against
// 200 for a million events here), and a pass runs at every /metrics
// scrape.
func (q *Queue) Stats(ctx context.Context) (relay.Stats, error) {
	if q.isClosed() {
		return relay.Stats{}, relay.ErrQueueClosed
	}
	ctx, cancel := q.bound(ctx)
	defer cancel()
	rows, err := q.pool.Query(ctx, `
		SELECT type, dead, count(*), count(*) FILTER (WHERE `+leased+`), min(received), 0::bigint
		FROM hookmail_events GROUP BY type, dead
		UNION ALL
		SELECT NULL, NULL, 0, 0, NULL, pg_table_size('hookmail_events') + pg_table_size('hookmail_digest_entries')`)
	if err != nil {
		return relay.Stats{}, q.fail(err)
	}
	st := relay.Stats{ByType: map[string]relay.TypeCount{}}
	var typ *string
	var dead *bool
	var n, delivering int
	var oldest *time.Time
	var bytes int64
	_, err = pgx.ForEachRow(rows, []any{&typ, &dead, &n, &delivering, &oldest, &bytes}, func() error {
		st.Bytes += bytes
		switch {
		case typ == nil: // the digests' row
		case *dead:
			st.Dead += n
			c := st.ByType[*typ]
			c.Dead += n
			st.ByType[*typ] = c
		default:
			st.Depth += n
			st.Delivering += delivering
			c := st.ByType[*typ]
			c.Waiting += n
			st.ByType[*typ] = c
			if oldest != nil && (st.Oldest.IsZero() || oldest.Before(st.Oldest)) {
				st.Oldest = *oldest
			}
		}
		return nil
	})
	if err != nil {
		return relay.Stats{}, q.fail(err)
	}
	return st, nil
}

// Ready asks the database whether it takes writes now (a standby after a
// failover does not), and checks the maxEvents limit. An error says why:
// the database's own words when it cannot be reached. A pooled connection
// the database closed fails once; the question is asked again on a fresh
// one, so the answer is about the database now.
func (q *Queue) Ready(ctx context.Context) error {
	if q.isClosed() {
		return relay.ErrQueueClosed
	}
	ctx, cancel := q.bound(ctx)
	defer cancel()
	var readOnly string
	err := q.pool.QueryRow(ctx, readOnlySQL).Scan(&readOnly)
	var pgErr *pgconn.PgError
	if err != nil && ctx.Err() == nil && !errors.As(err, &pgErr) {
		err = q.pool.QueryRow(ctx, readOnlySQL).Scan(&readOnly)
	}
	if err != nil {
		return q.fail(err)
	}
	if readOnly == "on" {
		return fmt.Errorf("postgres: %s is read-only (a standby, or default_transaction_read_only is on): point queue.postgres.url at the primary", q.where)
	}
	return q.full(ctx)
}

const readOnlySQL = "SELECT current_setting('transaction_read_only')"
