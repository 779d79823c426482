package postgres

import (
	"context"
)

// channel is the NOTIFY channel that says an event is due now. The payload
// is the notifying instance's owner token, so its own listener passes over
// it. An older hookmail sends none, which reads as another instance's,
// so instances of both kinds wake each other during a rolling upgrade.
const channel = "hookmail_due"

// announce has notifyLoop send a NOTIFY after the enqueue that calls it
// has committed. Calls while one is pending add nothing.
func (q *Queue) announce() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// notifyLoop sends one NOTIFY for each burst of announces, until ctx
// ends. A NOTIFY inside each enqueue's transaction would cost more than
// the enqueue: Postgres holds a lock shared by the whole cluster from a
// notifying transaction's commit until its WAL is flushed, so such commits
// are flushed one at a time instead of together. Here enqueues commit
// without it, and a NOTIFY follows every commit: one announced while a
// NOTIFY is under way is followed by another. A NOTIFY that fails is only
// a later wake-up: the other instances poll.
func (q *Queue) notifyLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.notify:
		}
		nctx, cancel := q.bound(ctx)
		_, _ = q.pool.Exec(nctx, "SELECT pg_notify($1, $2)", channel, q.owner)
		cancel()
	}
}
