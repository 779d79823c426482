package relay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hookmail/hookmail/config"
)

// digestTick is how often digest routes are checked for a digest due.
const digestTick = time.Second

// collect adds ev to route's digest instead of emailing it now.
func (w *Workers) collect(ctx context.Context, route *config.Route, ev *Event) error {
	if w.digests == nil {
		return PermanentErr(fmt.Errorf("route %q: this queue keeps no digests", route.Name))
	}
	return w.digests.Collect(ctx, route, ev)
}

// runDigests sends each digest route's email when it is due, until ctx
// ends. Collected events stay in the spool until their email is accepted,
// so a digest in progress survives a restart. Events of a route the config
// no longer has (renamed or removed by a reload) go out at once, to the
// recipients stored with them.
//
// It looks every digestTick while a route digests or collected events
// wait, and a tick after start and after each reload; otherwise (no
// digest route, nothing collected) it sleeps until a reload, so an idle
// hookmail does no periodic queue work.
func (w *Workers) runDigests(ctx context.Context) {
	// waiting at start: look once, a tick in, for events collected before.
	ds := &digestState{waiting: true, retry: map[string]digestRetry{}, forget: map[string][]string{}}
	for {
		reloaded := w.reloaded()
		var tick <-chan time.Time
		if ds.waiting || collectsDigests(w.rules.Load().Config) {
			tick = time.After(digestTick)
		}
		select {
		case <-ctx.Done():
			return
		case <-reloaded:
			ds.waiting = true // look a tick after a reload: it may have removed a digest route
			continue
		case <-tick:
		}
		w.sendDueDigests(ctx, w.rules.Load(), ds)
	}
}

// sendDueDigests sends the digests due by l's routes, and notes in ds
// whether collected events wait.
func (w *Workers) sendDueDigests(ctx context.Context, l *Rules, ds *digestState) {
	store := w.digests
	names, err := store.DigestRoutes(ctx)
	ds.waiting = err != nil || len(names) > 0
	if err != nil {
		w.log.Error("cannot read the collected digests", "err", err)
		return
	}
	w.metrics.noDigestPending(l.Config, names)
	for _, name := range names {
		rt := digestRoute(l.Config, name)
		if w.now().Before(ds.retry[name].next) {
			continue
		}
		attemptCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sendTimeout)
		err := w.flushDigest(attemptCtx, store, l, name, rt, ds)
		cancel()
		if err == nil {
			delete(ds.retry, name)
			continue
		}
		b := ds.retry[name]
		b.attempts++
		b.next = w.now().Add(Backoff(l.Config.Retry.Initial, l.Config.Retry.Max, b.attempts-1))
		ds.retry[name] = b
		class := Classify(err)
		w.metrics.failed.WithLabelValues("other", class.String()).Inc()
		w.outcomes.failed(w.now(), class, fmt.Sprintf("digest of route %s: %v", name, err))
		log := w.log.With("route", name, "attempt", b.attempts, "next_attempt", b.next.Format(time.RFC3339))
		if class == Temporary {
			log.Warn("digest not sent; its events stay collected and it is retried", "err", err)
		} else {
			log.Error("digest refused; its events stay collected and it is retried until retry.lifetime, then they go to the dead letters: fix the route's recipients or smtp.*", "err", err)
		}
	}
}

// collectsDigests reports whether a route of cfg collects a digest.
func collectsDigests(cfg *config.Config) bool {
	return slices.ContainsFunc(cfg.Routes, func(rt config.Route) bool { return rt.Digest != nil })
}

// digestState is what runDigests keeps between ticks.
type digestState struct {
	// waiting says the last look found collected events, or could not
	// look: look again at the next tick.
	waiting bool
	retry   map[string]digestRetry
	// forget holds, by route, events whose digest went out but which the
	// spool could not yet remove: they are removed before any new digest,
	// so they are never listed twice.
	forget map[string][]string
}

type digestRetry struct {
	attempts int
	next     time.Time
}

// digestRoute returns the config's digest route name, or nil when the
// config has none of that name (or it no longer digests).
func digestRoute(cfg *config.Config, name string) *config.Route {
	for i := range cfg.Routes {
		if rt := &cfg.Routes[i]; rt.Name == name && rt.Digest != nil {
			return rt
		}
	}
	return nil
}

// flushDigest sends route name's digest when it is due: every has passed
// since its oldest event was collected, or max_events are waiting; at once
// when the config no longer has the route (rt nil). A digest refused past
// retry.lifetime sends its events to the dead letters.
func (w *Workers) flushDigest(ctx context.Context, store DigestStore, l *Rules, name string, rt *config.Route, ds *digestState) error {
	// One instance at a time sends a route's digest, so each window gives
	// one email however many instances share the queue.
	claimed, err := store.ClaimDigest(ctx, name, sendTimeout+time.Minute)
	if err != nil || !claimed {
		return err
	}
	defer func() {
		if err := store.ReleaseDigest(context.WithoutCancel(ctx), name); err != nil {
			w.log.Warn("cannot release the claim on a digest; it lapses by itself", "route", name, "err", err)
		}
	}()
	if ids := ds.forget[name]; len(ids) > 0 {
		if err := store.Forget(ctx, name, ids); err != nil {
			return fmt.Errorf("clear the digest sent before: %w", err)
		}
		delete(ds.forget, name)
	}
	limit, every := config.DefaultDigestMax, time.Duration(0)
	if rt != nil {
		limit, every = rt.Digest.Max(), rt.Digest.Every
	}
	entries, n, err := store.Digest(ctx, name, limit)
	w.metrics.digestPending.WithLabelValues(name).Set(float64(n))
	if err != nil || n == 0 {
		return err
	}
	waited := w.now().Sub(entries[0].Collected)
	if rt != nil && n < limit && waited < every {
		return nil
	}
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.Event.ID
	}
	if rt == nil {
		w.log.Warn("this route no longer collects a digest (a reload renamed or removed it); sending what it collected to its recipients then",
			"route", name, "events", len(entries))
		first := entries[0]
		rt = &config.Route{Name: name, To: first.To, Cc: first.Cc, Bcc: first.Bcc, ReplyTo: first.ReplyTo}
	}
	msg, err := l.Renderer.RenderDigest(entries, rt, l.Config.SMTP.From)
	if err == nil {
		err = w.sender.Send(ctx, msg)
	}
	if err != nil {
		if lifetime := l.Config.Retry.Lifetime; Classify(err) == Permanent && waited >= lifetime {
			reason := fmt.Sprintf("digest of route %s refused for retry.lifetime (%s): %v", name, lifetime, err)
			if berr := store.BuryDigest(ctx, name, ids, reason); berr != nil {
				return errors.Join(err, berr)
			}
			w.log.Error("digest refused for retry.lifetime; its events are in the dead letters (hookmail queue list --dead)", "route", name, "events", len(ids), "err", err)
			return nil
		}
		return err
	}
	if err := store.Forget(ctx, name, ids); err != nil {
		// Sent but still collected: cleared before the next digest.
		ds.forget[name] = ids
		w.log.Error("digest sent but its events could not be cleared yet; retrying before the next digest", "route", name, "err", err)
	}
	w.metrics.sent.WithLabelValues("other").Inc()
	w.outcomes.sent(w.now())
	w.metrics.digestSize.WithLabelValues(name).Observe(float64(len(entries)))
	w.metrics.digestWait.WithLabelValues(name).Observe(waited.Seconds())
	w.metrics.digestPending.WithLabelValues(name).Set(float64(n - len(entries)))
	w.log.Info("digest sent", "route", name, "events", len(entries), "waiting", n-len(entries),
		"message_id", msg.MessageID, "reply", msg.Receipt)
	return nil
}

// PendingDigest is one route's collected events, waiting for its digest.
type PendingDigest struct {
	Route  string
	Events int
	// Oldest is when the oldest of them was collected.
	Oldest time.Time
	// Due is when the digest goes out at the earliest: digest.every after
	// Oldest, or as soon as max_events wait or the route is gone. A digest
	// the server refused waits for its retry besides.
	Due time.Time
	// Gone says the config no longer has the route: what it collected goes
	// out at once, to the recipients stored with the events.
	Gone bool
}

// PendingDigests lists the routes with collected events in store, by name,
// with when their digests are due by cfg's routes.
func PendingDigests(ctx context.Context, store DigestStore, cfg *config.Config) ([]PendingDigest, error) {
	names, err := store.DigestRoutes(ctx)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var out []PendingDigest
	for _, name := range names {
		entries, n, err := store.Digest(ctx, name, 1)
		if err != nil {
			return nil, err
		}
		if n == 0 || len(entries) == 0 {
			continue
		}
		p := PendingDigest{Route: name, Events: n, Oldest: entries[0].Collected, Due: entries[0].Collected}
		switch rt := digestRoute(cfg, name); {
		case rt == nil:
			p.Gone = true
		case n < rt.Digest.Max():
			p.Due = p.Oldest.Add(rt.Digest.Every)
		}
		out = append(out, p)
	}
	return out, nil
}
