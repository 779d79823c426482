package relay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// ReasonNoRoute is the dead-letter reason of an event no route takes.
const ReasonNoRoute = "no route"

// sendTimeout bounds one delivery attempt, so a worker always comes back to
// the queue; the SMTP sender's own smtp.timeout is shorter.
const sendTimeout = 5 * time.Minute

// Run starts the delivery workers and blocks until ctx ends. Each worker
// then finishes the email in hand (its attempt runs on a context that the
// shutdown does not cancel) and settles it before Run returns.
func (r *Relay) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range r.cfg.SMTP.Workers {
		wg.Go(func() { r.work(ctx) })
	}
	wg.Go(func() { r.runDigests(ctx) })
	wg.Wait()
	r.acks.Wait() // every sent email recorded before the queue closes
	return nil
}

// ackSlotsPerWorker bounds the acks in flight per worker. Two were too few:
// on a slow disk (a commit takes 2-25 ms here) a fast mail server then
// waited on fsync, since a commit carried at most two acks per worker. With
// a remote server an ack commits long before the next email is sent, so the
// bound matters only at loopback speed. Each ack in flight at a crash is an
// email sent twice, so the bound stays small.
const ackSlotsPerWorker = 16

// ack records a sent email without holding up the worker: the worker takes
// its next event while the ack waits for the spool's next group commit. An
// email whose ack is lost in a crash is sent again with the same Message-ID,
// never lost.
func (r *Relay) ack(ctx context.Context, it *Item, log *slog.Logger) {
	r.ackSlots <- struct{}{}
	r.acks.Go(func() {
		defer func() { <-r.ackSlots }()
		if err := r.queue.Ack(ctx, it); err != nil {
			log.Error("email sent but the queue did not record it; the queue offers it again later and it is resent with the same Message-ID", "err", err)
		}
	})
}

func (r *Relay) work(ctx context.Context) {
	// Checked before every lease: on shutdown a worker stops after the email
	// in hand, leaving a backlog in the spool rather than draining it.
	for ctx.Err() == nil {
		it, err := r.queue.Lease(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, ErrQueueClosed) {
				return
			}
			r.log.Error("cannot read the queue; retrying in 1s", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		attemptCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sendTimeout)
		r.deliver(attemptCtx, it)
		cancel()
	}
}

// deliver makes one attempt at it and settles the lease: Ack once every
// route that takes it has its email (or dropped it), Bury on a permanent
// error or past retry.lifetime, Retry otherwise. Routes already served on an
// earlier attempt (it.Delivered) are not emailed again.
func (r *Relay) deliver(ctx context.Context, it *Item) {
	start := r.now()
	ev := &it.Event
	base := r.log.With("id", ev.ID, "type", ev.Type, "attempt", it.Attempts+1)
	l := r.live.Load()
	routes := l.router.Routes(ev)
	if len(routes) == 0 {
		r.bury(ctx, it, ReasonNoRoute, start)
		return
	}
	names := make([]string, len(routes))
	for i, rt := range routes {
		names[i] = rt.Name
	}
	log := base.With("route", strings.Join(names, ",")) // the event's outcome lines
	it.Attempts++
	// Each route's outcome stands alone: a route refused for good is given
	// up (it.Refused) while the others still get their email now and, when
	// refused for now, on the retry.
	var err error // the first temporary failure: the event is retried
	for _, route := range routes {
		if slices.Contains(it.Delivered, route.Name) || it.Refused[route.Name] != "" {
			continue
		}
		rlog := base.With("route", route.Name)
		if route.Drop {
			r.metrics.dropped.WithLabelValues(route.Name).Inc()
			rlog.Info("event dropped by its route; no email")
			it.Delivered = append(it.Delivered, route.Name)
			continue
		}
		var msg *Message
		var rerr error
		if route.Digest != nil {
			if rerr = r.collect(ctx, route, ev); rerr != nil {
				rerr = fmt.Errorf("collect for the digest: %w", rerr)
			}
		} else if msg, rerr = l.renderer.Render(ev, route, l.cfg.SMTP.From); rerr == nil {
			msg.Envelope = it.Owed[route.Name]
			rerr = r.sender.Send(ctx, msg)
		}
		var partial *PartialError
		if errors.As(rerr, &partial) {
			if it.Owed == nil {
				it.Owed = map[string][]string{}
			}
			it.Owed[route.Name] = partial.Later
			r.metrics.sent.WithLabelValues(typeLabel(ev.Type)).Inc()
			rlog.Info("email sent to some recipients; the others deferred it, so it is retried for them", "message_id", msg.MessageID, "reply", msg.Receipt, "deferred", len(partial.Later))
		}
		if rerr != nil {
			if len(routes) > 1 {
				rerr = fmt.Errorf("route %s: %w", route.Name, rerr)
			}
			class := Classify(rerr)
			r.metrics.failed.WithLabelValues(typeLabel(ev.Type), class.String()).Inc()
			if class == Permanent {
				if it.Refused == nil {
					it.Refused = map[string]string{}
				}
				it.Refused[route.Name] = rerr.Error()
				if len(routes) > 1 {
					rlog.Error("delivery failed permanently; this route gives the event up, the others do not", "err", rerr)
				}
				continue
			}
			err = cmp.Or(err, rerr)
			continue
		}
		it.Delivered = append(it.Delivered, route.Name)
		delete(it.Owed, route.Name)
		if msg == nil {
			rlog.Debug("collected for the route's digest")
			continue
		}
		r.failures.clear()
		r.metrics.sent.WithLabelValues(typeLabel(ev.Type)).Inc()
		rlog.Info("email sent", "message_id", msg.MessageID, "reply", msg.Receipt)
	}
	// Only the routes that take the event now count: a refusal by a route a
	// reload has since removed does not hold it back.
	var reasons []string
	for _, route := range routes {
		if why := it.Refused[route.Name]; why != "" {
			reasons = append(reasons, why)
		}
	}
	if err == nil && len(reasons) == 0 {
		r.ack(context.WithoutCancel(ctx), it, log)
		r.metrics.deliveries.WithLabelValues("sent").Observe(r.now().Sub(start).Seconds())
		return
	}
	if err == nil {
		// Nothing left to retry: only routes that refused it for good.
		slices.Sort(reasons)
		it.LastError = reasons[0]
		log.Error("delivery failed permanently; moved to the dead letters", "err", strings.Join(reasons, "; "))
		r.bury(ctx, it, "permanent error: "+strings.Join(reasons, "; "), start)
		return
	}
	class := Classify(err)
	it.LastError = err.Error()
	retry := l.cfg.Retry
	// A config error waits for its fix however long that takes: its events
	// never run out of retry.lifetime into the dead letters.
	deadline := it.LifetimeStart().Add(retry.Lifetime)
	if class != Config && !r.now().Before(deadline) {
		log.Error("delivery kept failing for retry.lifetime; moved to the dead letters", "err", err, "lifetime", retry.Lifetime)
		r.bury(ctx, it, fmt.Sprintf("retry.lifetime (%s) exceeded: %v", retry.Lifetime, err), start)
		return
	}
	next := r.now().Add(Backoff(retry.Initial, retry.Max, it.Attempts-1))
	if class != Config && next.After(deadline) {
		next = deadline // one last attempt when the lifetime ends
	}
	switch {
	case !r.failures.changed(class.String() + ": " + err.Error()):
		log.Debug("delivery failed again; will retry", "err", err, "next_attempt", next.Format(time.RFC3339))
	case class == Config:
		log.Error("delivery failed: the SMTP setup needs fixing (config error); events stay queued and are retried", "err", err, "fix", Hint(err), "next_attempt", next.Format(time.RFC3339))
	default:
		log.Warn("delivery failed; will retry", "err", err, "next_attempt", next.Format(time.RFC3339))
	}
	if err := r.queue.Retry(ctx, it, next, err); err != nil {
		log.Error("cannot reschedule; the queue keeps the event and offers it again later", "err", err)
	}
	r.metrics.deliveries.WithLabelValues("retry").Observe(r.now().Sub(start).Seconds())
}

func (r *Relay) bury(ctx context.Context, it *Item, reason string, start time.Time) {
	if err := r.queue.Bury(ctx, it, reason); err != nil {
		r.log.Error("cannot move the event to the dead letters; the queue keeps it and offers it again later", "id", it.Event.ID, "err", err)
		return
	}
	if reason == ReasonNoRoute {
		r.log.Warn("no route takes this event; moved to the dead letters", "id", it.Event.ID, "type", it.Event.Type)
	}
	r.metrics.deliveries.WithLabelValues("dead").Observe(r.now().Sub(start).Seconds())
}

// failureLog keeps, for the whole process and in memory only, the cause
// (class and error text) of the delivery failure last logged: a mail server
// down or a wrong password is logged once, not for every event and attempt,
// and again after a success or a restart.
type failureLog struct {
	mu   sync.Mutex
	last string
}

// changed reports whether cause differs from the one last logged, and
// makes it the one last logged.
func (f *failureLog) changed(cause string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cause == f.last {
		return false
	}
	f.last = cause
	return true
}

// clear forgets the cause: after a success the next failure is news.
func (f *failureLog) clear() {
	f.mu.Lock()
	f.last = ""
	f.mu.Unlock()
}
