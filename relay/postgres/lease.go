package postgres

import (
	"context"
	"crypto/rand"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookmail/hookmail/relay"
)

// Lease claims the due item of the highest priority no unexpired lease
// holds, the earliest due first. Idle, it
// waits until the next item is due, a lease lapses, this instance stores
// or settles something, a NOTIFY says another instance stored something,
// or the poll interval passes, whichever comes first; polling alone finds
// every event, LISTEN only makes it sooner.
func (q *Queue) Lease(ctx context.Context) (*relay.Lease, error) {
	woken := false // the last wait ended in a wake-up: look, or pass it on
	for {
		if err := q.waiters.Stopped(ctx, q.closing, woken); err != nil {
			return nil, err
		}
		wake := q.waiters.Join() // before looking, so a signal in between is not lost
		l, wait, err := q.next(ctx)
		if err != nil || l != nil {
			// Found without the wake-up, or not looking again: one that
			// came meanwhile goes to the next leaser.
			q.waiters.Leave(wake, true)
		}
		switch {
		case err != nil && ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil:
			return nil, q.fail(err)
		case l != nil:
			return l, nil
		}
		if wait <= 0 || wait > q.opts.poll {
			wait = q.opts.poll
		}
		if woken, err = q.waiters.Wait(ctx, q.closing, wait, wake); err != nil {
			return nil, err
		}
	}
}

// next leases the due item of the highest priority, the earliest due
// first, or says how long until one is due or
// a lease lapses (0: nothing waits).
func (q *Queue) next(ctx context.Context) (*relay.Lease, time.Duration, error) {
	// The claim runs on a context of its own: were the caller's to end
	// while the statement ran, the row could be claimed in the database
	// with no one told, and sit idle until the lease lapsed. A claim that
	// comes back after the caller gave up is handed back at once.
	claimCtx, cancel := q.bound(context.WithoutCancel(ctx))
	defer cancel()
	token := rand.Text()
	// SKIP LOCKED passes over the rows other leasers are claiming at this
	// moment, so leasers on every instance never wait for each other.
	row := q.pool.QueryRow(claimCtx, `
		WITH next AS (
			SELECT id AS next_id FROM hookmail_events
			WHERE NOT dead AND due <= `+nowNS+` AND NOT `+leased+`
			ORDER BY priority DESC, due, id LIMIT 1
			FOR UPDATE SKIP LOCKED)
		UPDATE hookmail_events AS e SET lease_token = $1, lease_expires = now() + `+micros(2)+`
		FROM next WHERE e.id = next.next_id
		RETURNING `+itemColumns+`, lease_expires`, token, q.opts.leaseTimeout.Microseconds())
	l := &relay.Lease{Token: token}
	it, err := scanItem(leaseRow{row, &l.Expires})
	switch {
	case err == nil && ctx.Err() != nil:
		q.unclaim(it.Event.ID, token)
		return nil, 0, ctx.Err()
	case err == nil:
		l.Item = *it
		l.Item.State = relay.StateDelivering
		return l, 0, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return nil, 0, err
	}
	ctx, cancel = q.bound(ctx)
	defer cancel()
	var wait *int64
	err = q.pool.QueryRow(ctx, `SELECT least(
			(SELECT min(due) FROM hookmail_events WHERE NOT dead AND due > `+nowNS+`),
			(SELECT (extract(epoch FROM min(lease_expires)) * 1000000000)::bigint FROM hookmail_events
			 WHERE NOT dead AND lease_expires > now())
		) - `+nowNS).Scan(&wait)
	if err != nil || wait == nil {
		return nil, 0, err
	}
	return nil, max(time.Duration(*wait), time.Millisecond), nil
}

// unclaim ends a lease no caller took, so the item is due again now.
func (q *Queue) unclaim(id, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Should this fail, the lease lapses by itself.
	_, _ = q.pool.Exec(ctx, "UPDATE hookmail_events SET lease_token = NULL, lease_expires = NULL WHERE id = $1 AND lease_token = $2", id, token)
	q.signal()
	q.announce() // the other instances' leasers passed over it, or this one's are stopping
}

// leaseRow scans a row of itemColumns followed by the lease's expiry.
type leaseRow struct {
	pgx.Row
	expires *time.Time
}

func (r leaseRow) Scan(dest ...any) error { return r.Row.Scan(append(dest, r.expires)...) }

// listenPing is how long the LISTEN connection may stay silent before it
// is pinged, so a connection that died without a word is noticed.
const listenPing = 30 * time.Second

// listenLoop keeps a connection of its own listening on channel until ctx
// ends, and wakes this instance's leasers at each notification from
// another instance. A lost
// connection is made again, with backoff; meanwhile polling finds the new
// events.
func (q *Queue) listenLoop(ctx context.Context) {
	backoff := time.Second
	var lastErr string
	down := false
	up := func() {
		if down {
			q.opts.log.Info("postgres: listening for new events again")
			down = false
		}
	}
	for {
		listening, err := q.listen(ctx, up)
		if ctx.Err() != nil {
			return
		}
		if listening {
			backoff, lastErr = time.Second, ""
		}
		if msg := q.red.text(err.Error()); msg != lastErr {
			q.opts.log.Warn("postgres: no LISTEN connection; new events are found by polling until it is back",
				"poll", q.opts.poll, "err", msg)
			lastErr = msg
		}
		down = true
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// listen connects, listens (then calls up) and waits for notifications
// until the connection fails; it reports whether it got as far as
// listening.
func (q *Queue) listen(ctx context.Context, up func()) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, opTimeout)
	conn, err := pgx.ConnectConfig(cctx, q.listenCfg.Copy())
	if err == nil {
		_, err = conn.Exec(cctx, "LISTEN "+channel)
	}
	cancel()
	if conn != nil {
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			conn.Close(cctx)
		}()
	}
	if err != nil {
		return false, err
	}
	up()
	q.signalAll() // events stored while no one listened
	q.listening.Store(true)
	defer q.listening.Store(false)
	for {
		wctx, cancel := context.WithTimeout(ctx, listenPing)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil && n.Payload == q.owner:
			// This instance's own, back to it: its leasers were woken
			// when it stored the event.
		case err == nil:
			// Another instance stored something: how many, it does not
			// say.
			q.signalAll()
		case ctx.Err() != nil:
			return true, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			pctx, cancel := context.WithTimeout(ctx, opTimeout)
			err = conn.Ping(pctx)
			cancel()
			if err != nil {
				return true, err
			}
		default:
			return true, err
		}
	}
}
