package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

// Storm counts ev in its window of route's storm for conversation conv in
// one transaction that holds the window's row locked: every instance's
// counts of one conversation take turns, so the deployment emails the
// window's first storm.threshold events, not each instance. The window's
// times are the database's.
func (q *Queue) Storm(ctx context.Context, route *config.Route, conv string, ev *relay.Event) (relay.StormCount, error) {
	if q.isClosed() {
		return relay.StormCount{}, relay.ErrQueueClosed
	}
	ctx, cancel := q.bound(ctx)
	defer cancel()
	var c relay.StormCount
	err := pgx.BeginFunc(ctx, q.pool, func(tx pgx.Tx) error {
		// Take the row, making it when the conversation has none (its
		// start NULL: no window yet), and read the clock.
		t := &pgStormTx{ctx: ctx, tx: tx, route: route, conv: conv, ev: ev}
		var start *time.Time
		var now time.Time
		err := tx.QueryRow(ctx, `INSERT INTO hookmail_storm_windows AS w (route, conv, expires) VALUES ($1, $2, now())
			ON CONFLICT (route, conv) DO UPDATE SET route = w.route
			RETURNING w.start, w.emailed, w.folded, now()`, route.Name, conv).Scan(&start, &t.w.Emailed, &t.w.Folded, &now)
		if err != nil {
			return err
		}
		if start != nil {
			t.w.Start = *start
		}
		c, err = relay.CountStorm(t, route, conv, ev, now)
		return err
	})
	if err != nil {
		return relay.StormCount{}, q.fail(err)
	}
	return c, nil
}

// pgStormTx is Storm's transaction on one route's and conversation's row.
type pgStormTx struct {
	ctx   context.Context
	tx    pgx.Tx
	route *config.Route
	conv  string
	ev    *relay.Event
	w     relay.StormWindow // as the row held it when locked
}

func (t *pgStormTx) Window() (relay.StormWindow, error) { return t.w, nil }

func (t *pgStormTx) SetWindow(w relay.StormWindow) error {
	_, err := t.tx.Exec(t.ctx, `UPDATE hookmail_storm_windows SET start = $3::timestamptz, emailed = $4, folded = $5, expires = $3::timestamptz + `+micros(6)+`
		WHERE route = $1 AND conv = $2`,
		t.route.Name, t.conv, w.Start, w.Emailed, w.Folded, (t.route.Storm.Window + relay.StormKeep).Microseconds())
	return err
}

func (t *pgStormTx) Collected(digest string) (bool, error) {
	var in bool
	err := t.tx.QueryRow(t.ctx, `SELECT EXISTS (SELECT FROM hookmail_digest_entries WHERE route = $1 AND event = $2)`, digest, t.ev.ID).Scan(&in)
	return in, err
}

func (t *pgStormTx) Collect(digest string) (bool, error) {
	tag, err := t.tx.Exec(t.ctx, collectSQL, collectArgs(digest, t.route, t.ev)...)
	return tag.RowsAffected() == 1, err
}

// sweepStorms deletes the storm windows whose time is up, a batch at a
// time; instances sweeping at once skip each other's rows, and a window
// being counted.
func (q *Queue) sweepStorms(ctx context.Context) error {
	for {
		tag, err := q.pool.Exec(ctx, `DELETE FROM hookmail_storm_windows WHERE (route, conv) IN (
			SELECT route, conv FROM hookmail_storm_windows WHERE expires <= now() ORDER BY expires LIMIT $1 FOR UPDATE SKIP LOCKED)`, sweepBatch)
		if err != nil || tag.RowsAffected() < sweepBatch {
			return err
		}
	}
}
