package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

// Collect stores ev in route's digest with where it goes. The key is the
// route and the event's id, so collecting it again keeps the first copy.
func (q *Queue) Collect(ctx context.Context, rt *config.Route, ev *relay.Event) error {
	_, err := q.pool.Exec(ctx, collectSQL, collectArgs(rt.Name, rt, ev)...)
	return q.fail(err)
}

// collectSQL stores an event in a digest, once; its arguments are
// collectArgs.
const collectSQL = `INSERT INTO hookmail_digest_entries
		(route, event, type, source, format, data, content, received, collected, to_addrs, cc_addrs, bcc_addrs, reply_to)
	VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9, $10, $11, $12, $13)
	ON CONFLICT (route, event) DO NOTHING`

// collectArgs are collectSQL's arguments for ev in the digest named name,
// going where rt sends it.
func collectArgs(name string, rt *config.Route, ev *relay.Event) []any {
	return []any{name, ev.ID, ev.Type, ev.Source, ev.Format, jsonText(ev.Data), contentJSON(ev), ev.Received, time.Now(),
		addrs(rt.To), addrs(rt.Cc), addrs(rt.Bcc), rt.ReplyTo}
}

// addrs is a list for a text[] column, which is never NULL.
func addrs(a []string) []string {
	if a == nil {
		return []string{}
	}
	return a
}

// ClaimDigest claims route's digest for this instance for ttl, when no
// instance's claim holds it: one INSERT ... ON CONFLICT that takes over only
// a claim that lapsed.
func (q *Queue) ClaimDigest(ctx context.Context, route string, ttl time.Duration) (bool, error) {
	err := q.pool.QueryRow(ctx, `INSERT INTO hookmail_digest_claims AS c (route, owner, expires)
		VALUES ($1, $2, now() + `+micros(3)+`)
		ON CONFLICT (route) DO UPDATE SET owner = excluded.owner, expires = excluded.expires WHERE c.expires <= now()
		RETURNING true`, route, q.owner, ttl.Microseconds()).Scan(new(bool))
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, q.fail(err)
}

// ReleaseDigest gives up this instance's claim on route's digest.
func (q *Queue) ReleaseDigest(ctx context.Context, route string) error {
	_, err := q.pool.Exec(ctx, "DELETE FROM hookmail_digest_claims WHERE route = $1 AND owner = $2", route, q.owner)
	return q.fail(err)
}

// Digest reads up to limit of route's collected events, oldest first, and
// how many there are in all, in one statement.
func (q *Queue) Digest(ctx context.Context, route string, limit int) ([]relay.DigestEntry, int, error) {
	var lim *int
	if limit > 0 {
		lim = &limit
	}
	rows, err := q.pool.Query(ctx, `SELECT event, type, source, format, data, content, received, collected, to_addrs, cc_addrs, bcc_addrs, reply_to, count(*) OVER ()
		FROM hookmail_digest_entries WHERE route = $1 ORDER BY event LIMIT $2::bigint`, route, lim)
	if err != nil {
		return nil, 0, q.fail(err)
	}
	var out []relay.DigestEntry
	var e relay.DigestEntry
	var data, content []byte
	var n int
	_, err = pgx.ForEachRow(rows, []any{&e.Event.ID, &e.Event.Type, &e.Event.Source, &e.Event.Format, &data, &content, &e.Event.Received,
		&e.Collected, &e.To, &e.Cc, &e.Bcc, &e.ReplyTo, &n}, func() error {
		e.Event.Data = nil
		if err := json.Unmarshal(data, &e.Event.Data); err != nil {
			return err
		}
		if err := decodeContent(content, &e.Event); err != nil {
			return err
		}
		out = append(out, e)
		e = relay.DigestEntry{}
		return nil
	})
	if err != nil {
		return nil, 0, q.fail(err)
	}
	return out, n, nil
}

// DigestRoutes lists the routes with collected events, in byte order.
func (q *Queue) DigestRoutes(ctx context.Context) ([]string, error) {
	rows, err := q.pool.Query(ctx, `SELECT route FROM hookmail_digest_entries GROUP BY route ORDER BY route COLLATE "C"`)
	if err != nil {
		return nil, q.fail(err)
	}
	routes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return routes, q.fail(err)
}

// Forget deletes the given entries of route's digest.
func (q *Queue) Forget(ctx context.Context, route string, ids []string) error {
	_, err := q.pool.Exec(ctx, "DELETE FROM hookmail_digest_entries WHERE route = $1 AND event = ANY($2)", route, ids)
	return q.fail(err)
}

// BuryDigest moves the given entries of route's digest to the dead
// letters, in one statement. An event buried from another digest already
// is buried again, its history kept. An event still waiting in the queue
// (a route of its own still owes it) keeps its entry collected: the next
// failed digest buries it, once the queue is done with the event.
func (q *Queue) BuryDigest(ctx context.Context, route string, ids []string, reason string) (int, error) {
	now := time.Now()
	history := historyJSON([]relay.Attempt{{At: now, What: "moved to the dead letters from route " + route + "'s digest: " + reason}})
	var moved int
	// The INSERT runs as a statement of the WITH, counted or not.
	err := q.pool.QueryRow(ctx, `
		WITH moved AS (
			DELETE FROM hookmail_digest_entries AS d
			WHERE d.route = $1 AND d.event = ANY($2)
			  AND NOT EXISTS (SELECT FROM hookmail_events AS w WHERE w.id = d.event AND NOT w.dead)
			RETURNING d.event, d.type, d.source, d.format, d.data, d.content, d.received),
		buried AS (
			INSERT INTO hookmail_events
				(id, type, source, format, data, content, received, dead, due, attempts, last_error, dead_reason, died, history)
			SELECT event, type, source, format, data, content, received, true, `+nowNS+`, 1, $3, $3, $4, $5::jsonb FROM moved
			ON CONFLICT (id) DO UPDATE SET last_error = excluded.last_error, dead_reason = excluded.dead_reason,
				died = excluded.died, history = `+appendHistory(5)+`
			WHERE hookmail_events.dead)
		SELECT count(*) FROM moved`,
		route, ids, reason, now, history).Scan(&moved)
	if err != nil {
		return 0, q.fail(err)
	}
	return moved, nil
}
