package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// fold counts ev in route's storm and reports whether it went into the
// storm's digest instead of being emailed now. Events of no conversation,
// and every event of a route without storm, are emailed.
func (w *Workers) fold(ctx context.Context, route *config.Route, ev *Event, log *slog.Logger) (bool, error) {
	if route.Storm == nil || w.digests == nil {
		return false, nil // a backend without digests is refused at start
	}
	conv := StormConversation(ev)
	if conv == "" {
		return false, nil
	}
	c, err := w.digests.Storm(ctx, route, conv, ev)
	if err != nil {
		return false, fmt.Errorf("count the storm: %w", err)
	}
	if c.Fold == "" {
		return false, nil
	}
	if c.Added {
		w.metrics.stormFolded.WithLabelValues(route.Name).Inc()
	}
	if c.Started {
		w.metrics.stormsStarted.WithLabelValues(route.Name).Inc()
		log.Info("storm: more than storm.threshold events of one conversation in storm.window; the rest of the window goes into one digest when it ends",
			"threshold", route.Storm.Threshold, "window", route.Storm.Window, "digest_at", c.Ends.Format(time.RFC3339))
	}
	return true, nil
}

// runDigests sends each digest route's email when it is due, until ctx
// ends. Collected events stay in the spool until their email is accepted,
// so a digest in progress survives a restart. Events of a route the config
// no longer has (renamed or removed by a reload) go out at once, to the
// recipients stored with them.
//
// It looks every digestTick while a route digests or storms, or collected
// events wait, and a tick after start and after each reload; otherwise (no
// such route, nothing collected) it sleeps until a reload, so an idle
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
	w.metrics.countPending(l.Config, names)
	for _, name := range names {
		if w.now().Before(ds.retry[name].next) {
			continue
		}
		d := digestOf(l.Config, name)
		if d.storm && d.route != nil && w.now().Before(d.due(time.Time{}, 0)) {
			continue // a storm whose window goes on: nothing to read or claim
		}
		attemptCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sendTimeout)
		err := w.flushDigest(attemptCtx, store, l, name, ds)
		cancel()
		if err == nil {
			delete(ds.retry, name)
			continue
		}
		if paced := (*pacedDigest)(nil); errors.As(err, &paced) {
			ds.retry[name] = digestRetry{attempts: ds.retry[name].attempts, next: paced.until}
			continue
		}
		b := ds.retry[name]
		b.attempts++
		b.next = w.now().Add(Backoff(l.Config.Retry.Initial, l.Config.Retry.Max, b.attempts-1))
		ds.retry[name] = b
		class := Classify(err)
		w.metrics.failed.WithLabelValues("other", class.String()).Inc()
		w.outcomes.failed(w.now(), class, fmt.Sprintf("digest of route %s: %v", d.routeName, err))
		log := w.log.With("route", d.routeName, "digest", name, "attempt", b.attempts, "next_attempt", b.next.Format(time.RFC3339))
		if kept := (*keptDigest)(nil); errors.As(err, &kept) {
			log.Error("digest refused for retry.lifetime; the events another route still owes stay collected, and it is tried again at the retry backoff", "kept", kept.kept, "err", kept.err)
		} else if class == Temporary {
			log.Warn("digest not sent; its events stay collected and it is retried", "err", err)
		} else {
			log.Error("digest refused; its events stay collected and it is retried until retry.lifetime, then they go to the dead letters: fix the route's recipients or smtp.*", "err", err)
		}
	}
}

// collectsDigests reports whether a route of cfg collects a digest or
// folds storms into one.
func collectsDigests(cfg *config.Config) bool {
	return slices.ContainsFunc(cfg.Routes, func(rt config.Route) bool { return rt.Digest != nil || rt.Storm != nil })
}

// keptDigest is a digest refused for retry.lifetime whose events (kept of
// them) stay collected, since another route still owes them.
type keptDigest struct {
	err  error
	kept int
}

func (k *keptDigest) Error() string {
	return fmt.Sprintf("%v (%d of its events stay collected while another route owes them)", k.err, k.kept)
}

func (k *keptDigest) Unwrap() error { return k.err }

// pacedDigest is a digest pacing holds back until then.
type pacedDigest struct{ until time.Time }

func (p *pacedDigest) Error() string {
	return "held back by pacing until " + p.until.Format(time.RFC3339)
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

// digestSpec is what a digest's name stands for in a config: a digest
// route's digest, or the digest of one window of a storm route's storm.
type digestSpec struct {
	// route is the config's route, nil when the config no longer has it
	// (a reload renamed or removed it) or it no longer digests (or storms):
	// what was collected then goes out at once.
	route *config.Route
	// routeName is the name of the route that collected the digest.
	routeName string
	// storm is set for a storm's digest, start to its window's start.
	storm bool
	start time.Time
}

// digestOf returns what the digest named name is in cfg.
func digestOf(cfg *config.Config, name string) digestSpec {
	routeNamed := func(name string) *config.Route {
		for i := range cfg.Routes {
			if cfg.Routes[i].Name == name {
				return &cfg.Routes[i]
			}
		}
		return nil
	}
	if rt := routeNamed(name); rt != nil && rt.Digest != nil {
		return digestSpec{route: rt, routeName: name}
	}
	if route, start, ok := ParseStormDigest(name); ok {
		d := digestSpec{routeName: route, storm: true, start: start}
		if rt := routeNamed(route); rt != nil && rt.Storm != nil {
			d.route = rt
		}
		return d
	}
	return digestSpec{routeName: name}
}

// limit is the most events one email of the digest lists.
func (d digestSpec) limit() int {
	switch {
	case d.storm:
		return StormDigestMax
	case d.route == nil:
		return config.DefaultDigestMax
	}
	return d.route.Digest.Max()
}

// due is when the digest goes out, with n events waiting, the oldest
// collected at oldest: a digest route's digest.every after oldest, or at
// once when max_events wait; a storm's when its window ends; at once when
// the config no longer has the route.
func (d digestSpec) due(oldest time.Time, n int) time.Time {
	switch {
	case d.route == nil:
		return oldest
	case d.storm:
		return d.start.Add(d.route.Storm.Window)
	case n >= d.route.Digest.Max():
		return oldest
	}
	return oldest.Add(d.route.Digest.Every)
}

// flushDigest sends the digest named name when it is due (see
// digestSpec.due). A digest refused past retry.lifetime sends its events
// to the dead letters.
func (w *Workers) flushDigest(ctx context.Context, store DigestStore, l *Rules, name string, ds *digestState) error {
	d := digestOf(l.Config, name)
	// look reads up to limit of the digest's events, oldest first, notes
	// how many wait and says whether the digest is due.
	look := func(limit int) (entries []DigestEntry, n int, due bool, err error) {
		entries, n, err = store.Digest(ctx, name, limit)
		if !d.storm {
			w.metrics.digestPending.WithLabelValues(name).Set(float64(n))
		}
		if err != nil || n == 0 {
			return nil, n, false, err
		}
		return entries, n, !w.now().Before(d.due(entries[0].Collected, n)), nil
	}
	// Each second, a digest not due yet costs a read of its oldest event
	// and a count: not the claim (a write on Postgres), nor the decoding
	// of every event it holds (an MMS's pictures included).
	if _, _, due, err := look(1); err != nil || !due {
		return err
	}
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
	// Read again under the claim: another instance may have sent it since.
	entries, n, due, err := look(d.limit())
	if err != nil || !due {
		return err
	}
	waited := w.now().Sub(entries[0].Collected)
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.Event.ID
	}
	rt := d.route
	if rt == nil {
		w.log.Warn("this route no longer collects a digest or storm (a reload renamed or removed the route, its digest or its storm); sending what it collected to its recipients then",
			"route", d.routeName, "digest", name, "events", len(entries))
		first := entries[0]
		rt = &config.Route{Name: d.routeName, To: first.To, Cc: first.Cc, Bcc: first.Bcc, ReplyTo: first.ReplyTo}
	}
	render := l.Renderer.RenderDigest
	if d.storm {
		render = l.Renderer.RenderStormDigest
	}
	msg, err := render(entries, rt, l.Config.SMTP.From)
	if err == nil {
		// Paced as any email; one pacing holds back waits for its turn
		// without counting as an attempt.
		until, perr := w.pacer.wait(ctx, nil, l.Config, rt, nil)
		switch sentAt := w.now(); {
		case perr != nil:
			err = perr
		case !until.IsZero():
			return &pacedDigest{until: until}
		default:
			err = w.sender.Send(ctx, msg)
			if c := Classify(err); err != nil && (c == Throttled || c == Quota) {
				return &pacedDigest{until: w.pacer.replied(c, sentAt, l.Config)}
			}
		}
	}
	if err != nil {
		if lifetime := l.Config.Retry.Lifetime; Classify(err) == Permanent && waited >= lifetime {
			reason := fmt.Sprintf("digest of route %s refused for retry.lifetime (%s): %v", d.routeName, lifetime, err)
			sctx, cancel := settling(ctx)
			defer cancel()
			buried, berr := store.BuryDigest(sctx, name, ids, reason)
			if berr != nil {
				return errors.Join(err, berr)
			}
			// An event another route still owes stays collected (see
			// BuryDigest): the digest is tried again at the retry backoff,
			// not at the next look a second later.
			kept := len(ids) - buried
			if buried > 0 {
				w.log.Error("digest refused for retry.lifetime; its events are in the dead letters (hookmail queue list --dead)", "route", d.routeName, "digest", name,
					"events", buried, "err", err)
			}
			if kept > 0 {
				return &keptDigest{err: err, kept: kept}
			}
			return nil
		}
		return err
	}
	sctx, cancel := settling(ctx)
	defer cancel()
	if err := store.Forget(sctx, name, ids); err != nil {
		// Sent but still collected: cleared before the next digest.
		ds.forget[name] = ids
		w.log.Error("digest sent but its events could not be cleared yet; retrying before the next digest", "route", name, "err", err)
	}
	w.metrics.sent.WithLabelValues("other").Inc()
	w.outcomes.sent(w.now())
	if d.storm {
		w.log.Info("storm digest sent", "route", d.routeName, "digest", name, "events", len(entries), "waiting", n-len(entries),
			"message_id", msg.MessageID, "reply", msg.Receipt)
		return nil
	}
	w.metrics.digestSize.WithLabelValues(name).Observe(float64(len(entries)))
	w.metrics.digestWait.WithLabelValues(name).Observe(waited.Seconds())
	w.metrics.digestPending.WithLabelValues(name).Set(float64(n - len(entries)))
	w.log.Info("digest sent", "route", name, "events", len(entries), "waiting", n-len(entries),
		"message_id", msg.MessageID, "reply", msg.Receipt)
	return nil
}

// PendingDigest is one digest's collected events, waiting to be sent.
type PendingDigest struct {
	// Route names the route that collected them.
	Route string
	// Storm is set for the digest of a storm route's storm: the events of
	// one conversation past its threshold in one window.
	Storm  bool
	Events int
	// Oldest is when the oldest of them was collected.
	Oldest time.Time
	// Due is when the digest goes out at the earliest: digest.every after
	// Oldest, or as soon as max_events wait; a storm's when its window
	// ends; at once when the route is gone. A digest the server refused
	// waits for its retry besides.
	Due time.Time
	// Gone says the config no longer has the route: what it collected goes
	// out at once, to the recipients stored with the events.
	Gone bool
}

// PendingDigests lists the digests with collected events in store, by
// name, with when they are due by cfg's routes.
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
		d := digestOf(cfg, name)
		out = append(out, PendingDigest{Route: d.routeName, Storm: d.storm, Events: n, Oldest: entries[0].Collected,
			Due: d.due(entries[0].Collected, n), Gone: d.route == nil})
	}
	return out, nil
}
