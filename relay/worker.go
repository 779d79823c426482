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
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookmail/hookmail/config"
)

// ReasonNoRoute is the dead-letter reason of an event no route takes.
const ReasonNoRoute = "no route"

// sendTimeout bounds one delivery attempt, so a worker always comes back to
// the queue; the SMTP sender's own smtp.timeout is shorter.
const sendTimeout = 5 * time.Minute

// settleTimeout bounds storing an attempt's result in the queue.
const settleTimeout = 30 * time.Second

// settling is the context an attempt's result is stored on: not the
// attempt's own, which ends at sendTimeout. On a queue that honours it
// (Postgres), a result stored on it after a slow attempt failed, so the
// routes already emailed were emailed again and the attempt not counted.
func settling(attempt context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(attempt), settleTimeout)
}

// Rules is the part of the config a reload swaps at once: routes,
// templates, smtp.from and retry. Workers read it once per event, so each
// event sees the old rules or the new ones, never a mix.
type Rules struct {
	// Config is the config the rules were built from.
	Config   *config.Config
	Router   *Router
	Renderer *Renderer
}

// NewRules parses cfg's templates and compiles its routes. A template that
// does not parse or render is an error naming its file.
func NewRules(cfg *config.Config) (*Rules, error) {
	renderer, err := NewRenderer(cfg.Templates.Dir, cfg.Location(), cfg.Routes...)
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	return &Rules{Config: cfg, Router: NewRouter(cfg.Routes), Renderer: renderer}, nil
}

// Workers take events off the queue and deliver them: route, render,
// send, and settle each lease. They also send the digests.
type Workers struct {
	queue   Queue
	digests DigestStore
	sender  Sender
	media   MediaFetcher
	log     *slog.Logger
	metrics *Metrics
	rules   atomic.Pointer[Rules]
	count   int
	now     func() time.Time
	pacer   *pacer
	// hangAfter is how long keep extends a lease: an attempt's time and
	// its result's store (shorter in tests).
	hangAfter time.Duration

	failures failureLog // the delivery failure last logged
	outcomes *Outcomes  // the last hour's, for the admin page

	mu     sync.Mutex
	reload chan struct{} // closed, and replaced, by each SetRules
}

// NewWorkers builds smtp.workers workers on queue, which scope says is
// this process's alone or shared. digests may be nil when no route digests
// (Run checks); pace holds the rates' slots, and nil keeps them in this
// process (NewLocalPace); media may be nil, and then no remote file is
// fetched. Their metrics, the queue's gauges among them, are registered on
// reg.
func NewWorkers(rules *Rules, queue Queue, scope QueueScope, digests DigestStore, pace PaceStore, sender Sender, media MediaFetcher, log *slog.Logger, reg prometheus.Registerer) *Workers {
	w := &Workers{
		queue:    queue,
		digests:  digests,
		sender:   sender,
		media:    media,
		log:      log,
		metrics:  NewMetrics(reg, queue, scope),
		count:    rules.Config.SMTP.Workers,
		now:      time.Now,
		outcomes: newOutcomes(),

		hangAfter: sendTimeout + settleTimeout,
	}
	if pace == nil {
		pace = NewLocalPace(nil)
	}
	w.pacer = newPacer(pace, log, reg, func() *config.Config { return w.rules.Load().Config })
	w.SetRules(rules)
	return w
}

// SetRules swaps in a reload's rules.
func (w *Workers) SetRules(r *Rules) {
	w.rules.Store(r)
	w.metrics.initRouteSeries(r.Config)
	w.mu.Lock()
	if w.reload != nil {
		close(w.reload)
	}
	w.reload = make(chan struct{})
	w.mu.Unlock()
}

// reloaded returns a channel that the next SetRules closes.
func (w *Workers) reloaded() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.reload
}

// Rules returns the rules in force.
func (w *Workers) Rules() *Rules { return w.rules.Load() }

// Outcomes sums up this process's deliveries of the last hour.
func (w *Workers) Outcomes() OutcomeSummary { return w.outcomes.Summary(w.now()) }

// Run delivers until ctx ends. Each worker then finishes the email in hand
// (its attempt runs on a context that the shutdown does not cancel), puts
// the event's routes not begun back in the queue, and settles it before
// Run returns.
func (w *Workers) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range w.count {
		wg.Go(func() { w.work(ctx) })
	}
	if w.digests != nil {
		wg.Go(func() { w.runDigests(ctx) })
	}
	wg.Wait()
	return nil
}

func (w *Workers) work(ctx context.Context) {
	// Checked before every lease: on shutdown a worker stops after the email
	// in hand, leaving a backlog in the queue rather than draining it.
	for ctx.Err() == nil {
		release, err := w.pacer.turn(ctx, w.rules.Load().Config)
		if err != nil {
			return
		}
		l, err := w.queue.Lease(ctx)
		if err != nil {
			release()
			if ctx.Err() != nil || errors.Is(err, ErrQueueClosed) {
				return
			}
			w.log.Error("cannot read the queue; retrying in 1s", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		w.pacer.leased(l.Item.Event.ID)
		attemptCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sendTimeout)
		// The lease is kept until the result is stored, past sendTimeout
		// if need be: the worker holds the event until then.
		stop, lost := w.keep(context.WithoutCancel(ctx), l)
		w.deliver(attemptCtx, l, turn{stop: ctx.Done(), lost: lost, release: release})
		release()
		stop()
		cancel()
	}
}

// keep extends l every third of its lease while the attempt lasts, so a
// slow mail server never makes the lease expire under the worker. A timer
// does it, not a goroutine of its own: most emails go out long before the
// first extension, and a goroutine per email cost two hand-offs.
//
// lost closes when the queue says the lease is gone: it lapsed, or an
// operator requeued or dropped the event.
func (w *Workers) keep(ctx context.Context, l *Lease) (stop func(), lost <-chan struct{}) {
	every := max(time.Until(l.Expires)/3, 10*time.Millisecond)
	// Past the attempt's time and its result's store, the worker hangs:
	// the lease is left to lapse, so the event is offered again.
	until := time.Now().Add(w.hangAfter)
	var mu sync.Mutex // held while extending, and to stop
	stopped := false
	gone := make(chan struct{})
	var t *time.Timer
	mu.Lock()
	t = time.AfterFunc(every, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		if time.Now().After(until) {
			w.log.Error("a delivery attempt hangs past its time; its lease is left to lapse, and the event is offered again", "id", l.Item.Event.ID)
			stopped = true
			return
		}
		err := w.queue.Extend(ctx, l)
		if errors.Is(err, ErrLeaseLost) {
			close(gone)
			stopped = true
			return
		}
		if err != nil {
			w.log.Warn("cannot extend the lease; the event may be delivered twice", "id", l.Item.Event.ID, "err", err)
		}
		t.Reset(every)
	})
	mu.Unlock()
	return func() {
		mu.Lock() // an extension under way ends first
		stopped = true
		t.Stop()
		mu.Unlock()
	}, gone
}

// stopping reports whether stop is closed (a nil stop never is).
func stopping(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// turn is what a worker brings to pacing for the email in hand: stop says
// the worker is to stop, and release ends its turn to lease (nil when it
// has none).
type turn struct {
	stop    <-chan struct{}
	lost    <-chan struct{} // closes when the lease is gone
	release func()
}

// deliver makes one attempt at the leased item and settles the lease: Ack
// once every route that takes it has its email (or dropped it), Bury on a
// permanent error or past retry.lifetime, Retry otherwise. Routes already
// served on an earlier attempt (Delivered) are not emailed again. An email
// pacing holds back (its route's rate, a throttling or quota reply) goes
// back to the queue without counting as an attempt.
func (w *Workers) deliver(ctx context.Context, lease *Lease, t turn) {
	start := w.now()
	ev := &lease.Item.Event
	it := lease.Item.Progress() // what this attempt adds to
	base := w.log.With("id", ev.ID, "type", ev.Type, "attempt", it.Attempts+1)
	l := w.rules.Load()
	routes := l.Router.Routes(ev)
	if len(routes) == 0 {
		w.bury(ctx, lease, ReasonNoRoute, it, start)
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
	var err error     // the first temporary failure: the event is retried
	var held heldBack // the routes pacing holds back
	var mailed *Event // ev with its remote files, fetched for the first email
	for _, route := range routes {
		if slices.Contains(it.Delivered, route.Name) || it.Refused[route.Name] != "" {
			continue
		}
		if stopping(t.lost) {
			// Whoever holds the event now sends it; this worker's
			// progress cannot be stored any more.
			log.Warn("the lease on this event was lost during the attempt (it lapsed, or an operator requeued or dropped the event); its routes not begun are left to the queue",
				"delivered", it.Delivered)
			return
		}
		if stopping(t.stop) {
			// hookmail is stopping: the email in hand went, the routes
			// not begun wait in the queue, this attempt not counted,
			// rather than hold the shutdown past its budget.
			held.add(w.now(), nil)
			continue
		}
		rlog := base.With("route", route.Name)
		if route.Drop {
			w.metrics.dropped.WithLabelValues(route.Name).Inc()
			rlog.Info("event dropped by its route; no email")
			it.Delivered = append(it.Delivered, route.Name)
			continue
		}
		var msg *Message
		var rerr error
		var folded bool
		var sentAt time.Time
		if route.Digest != nil {
			if rerr = w.collect(ctx, route, ev); rerr != nil {
				rerr = fmt.Errorf("collect for the digest: %w", rerr)
			}
		} else if folded, rerr = w.fold(ctx, route, ev, rlog); rerr == nil && !folded {
			if mailed == nil {
				mailed = w.withMedia(ctx, l.Config, ev)
			}
			if msg, rerr = l.Renderer.Render(mailed, route, l.Config.SMTP.From); rerr == nil {
				msg.Envelope = it.Owed[route.Name]
				var until time.Time
				until, rerr = w.pacer.wait(ctx, t.stop, l.Config, route, t.release)
				t.release = nil // a wait ends the turn
				if rerr == nil && !until.IsZero() {
					held.add(until, nil)
					rlog.Debug("email put back in the queue until the pace allows it", "until", until.Format(time.RFC3339Nano))
					continue
				}
				if rerr == nil {
					sentAt = w.now()
					rerr = w.sender.Send(ctx, msg)
				}
			}
		}
		var partial *PartialError
		if errors.As(rerr, &partial) {
			if it.Owed == nil {
				it.Owed = map[string][]string{}
			}
			it.Owed[route.Name] = partial.Later
			w.metrics.sent.WithLabelValues(TypeLabel(ev.Type)).Inc()
			w.outcomes.sent(w.now())
			rlog.Info("email sent to some recipients; the others deferred it, so it is retried for them", "message_id", msg.MessageID, "reply", msg.Receipt, "deferred", len(partial.Later))
		}
		if rerr != nil {
			if len(routes) > 1 {
				rerr = fmt.Errorf("route %s: %w", route.Name, rerr)
			}
			class := Classify(rerr)
			w.metrics.failed.WithLabelValues(TypeLabel(ev.Type), class.String()).Inc()
			w.outcomes.failed(w.now(), class, rerr.Error())
			if class == Throttled || class == Quota {
				held.add(w.pacer.replied(class, sentAt, l.Config), rerr)
				continue
			}
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
		if folded {
			rlog.Debug("folded into the storm's digest")
			continue
		}
		if msg == nil {
			rlog.Debug("collected for the route's digest")
			continue
		}
		w.failures.clear()
		w.metrics.sent.WithLabelValues(TypeLabel(ev.Type)).Inc()
		w.outcomes.sent(w.now())
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
	if err == nil && len(reasons) == 0 && !held.set {
		sctx, cancel := settling(ctx)
		defer cancel()
		if err := w.queue.Ack(sctx, lease); err != nil {
			log.Error("email sent but the queue did not record it; the queue offers it again later and it is resent with the same Message-ID", "err", err)
		}
		w.metrics.deliveries.WithLabelValues("sent").Observe(w.now().Sub(start).Seconds())
		return
	}
	if err == nil && held.set {
		w.putBack(ctx, lease, it, held, start, log)
		return
	}
	if err == nil {
		// Nothing left to retry: only routes that refused it for good.
		slices.Sort(reasons)
		it.LastError = reasons[0]
		log.Error("delivery failed permanently; moved to the dead letters", "err", strings.Join(reasons, "; "))
		w.bury(ctx, lease, "permanent error: "+strings.Join(reasons, "; "), it, start)
		return
	}
	class := Classify(err)
	it.LastError = err.Error()
	retry := l.Config.Retry
	// A config error waits for its fix however long that takes: its events
	// never run out of retry.lifetime into the dead letters.
	deadline := lease.Item.LifetimeStart().Add(retry.Lifetime)
	if class != Config && !w.now().Before(deadline) {
		log.Error("delivery kept failing for retry.lifetime; moved to the dead letters", "err", err, "lifetime", retry.Lifetime)
		w.bury(ctx, lease, fmt.Sprintf("retry.lifetime (%s) exceeded: %v", retry.Lifetime, err), it, start)
		return
	}
	next := w.now().Add(Backoff(retry.Initial, retry.Max, it.Attempts-1))
	if class != Config && next.After(deadline) {
		next = deadline // one last attempt when the lifetime ends
	}
	if held.until.After(next) {
		next = held.until // a route pacing holds back waits for its turn
	}
	switch {
	case !w.failures.changed(class.String() + ": " + err.Error()):
		log.Debug("delivery failed again; will retry", "err", err, "next_attempt", next.Format(time.RFC3339))
	case class == Config:
		log.Error("delivery failed: the SMTP setup needs fixing (config error); events stay queued and are retried", "err", err, "fix", Hint(err), "next_attempt", next.Format(time.RFC3339))
	default:
		log.Warn("delivery failed; will retry", "err", err, "next_attempt", next.Format(time.RFC3339))
	}
	it.History = append(it.History, Attempt{At: w.now(), What: fmt.Sprintf("attempt %d failed: %s", it.Attempts, err)})
	sctx, cancel := settling(ctx)
	defer cancel()
	if err := w.queue.Retry(sctx, lease, next, it); err != nil {
		log.Error("cannot reschedule; the queue keeps the event and offers it again later", "err", err)
	}
	w.metrics.deliveries.WithLabelValues("retry").Observe(w.now().Sub(start).Seconds())
}

func (w *Workers) bury(ctx context.Context, lease *Lease, reason string, p Progress, start time.Time) {
	ev := &lease.Item.Event
	sctx, cancel := settling(ctx)
	defer cancel()
	if err := w.queue.Bury(sctx, lease, reason, p); err != nil {
		w.log.Error("cannot move the event to the dead letters; the queue keeps it and offers it again later", "id", ev.ID, "err", err)
		return
	}
	w.outcomes.dead(w.now(), reason)
	if reason == ReasonNoRoute {
		w.log.Warn("no route takes this event; moved to the dead letters", "id", ev.ID, "type", ev.Type)
	}
	w.metrics.deliveries.WithLabelValues("dead").Observe(w.now().Sub(start).Seconds())
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
