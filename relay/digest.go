package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/hookmail/hookmail/config"
)

// digestTick is how often digest routes are checked for a digest due.
const digestTick = time.Second

type digestMetrics struct {
	size    *prometheus.HistogramVec
	wait    *prometheus.HistogramVec
	pending *prometheus.GaugeVec
}

func newDigestMetrics(reg prometheus.Registerer) digestMetrics {
	f := promauto.With(reg)
	return digestMetrics{
		size: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hookmail_digest_size_events",
			Help:    "Events listed in each digest email sent, by route.",
			Buckets: []float64{1, 5, 10, 25, 50, 100, 200, 500, 1000, 5000, 10000},
		}, []string{"route"}),
		wait: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hookmail_digest_wait_seconds",
			Help:    "How long a digest's oldest event waited for the digest email, by route.",
			Buckets: []float64{1, 10, 60, 300, 900, 1800, 3600, 7200, 21600, 86400},
		}, []string{"route"}),
		pending: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hookmail_digest_pending_events",
			Help: "Events collected for a route's next digest, not yet sent.",
		}, []string{"route"}),
	}
}

// initRouteSeries creates the per-route series of cfg's routes at zero, so
// alerts and dashboards see them before the first digest or drop.
func (r *Relay) initRouteSeries(cfg *config.Config) {
	for _, rt := range cfg.Routes {
		if rt.Digest != nil {
			r.digests.size.WithLabelValues(rt.Name)
			r.digests.wait.WithLabelValues(rt.Name)
			r.digests.pending.WithLabelValues(rt.Name)
		}
		if rt.Drop {
			r.metrics.dropped.WithLabelValues(rt.Name)
		}
	}
}

// collect adds ev to route's digest instead of emailing it now.
func (r *Relay) collect(ctx context.Context, route *config.Route, ev *Event) error {
	store, ok := r.queue.(DigestStore)
	if !ok {
		return PermanentErr(fmt.Errorf("route %q: this queue keeps no digests", route.Name))
	}
	return store.Collect(ctx, route, ev)
}

// runDigests sends each digest route's email when it is due, until ctx
// ends. Collected events stay in the spool until their email is accepted,
// so a digest in progress survives a restart. Events of a route the config
// no longer has (renamed or removed by a reload) go out at once, to the
// recipients stored with them.
func (r *Relay) runDigests(ctx context.Context) {
	store, ok := r.queue.(DigestStore)
	if !ok {
		return
	}
	t := time.NewTicker(digestTick)
	defer t.Stop()
	ds := &digestState{retry: map[string]digestRetry{}, forget: map[string][]string{}}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l := r.live.Load()
		names, err := store.DigestRoutes(ctx)
		if err != nil {
			r.log.Error("cannot read the collected digests", "err", err)
			continue
		}
		for _, name := range names {
			rt := digestRoute(l.cfg, name)
			if r.now().Before(ds.retry[name].next) {
				continue
			}
			attemptCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sendTimeout)
			err := r.flushDigest(attemptCtx, store, l, name, rt, ds)
			cancel()
			if err == nil {
				delete(ds.retry, name)
				continue
			}
			b := ds.retry[name]
			b.attempts++
			b.next = r.now().Add(Backoff(l.cfg.Retry.Initial, l.cfg.Retry.Max, b.attempts-1))
			ds.retry[name] = b
			class := Classify(err)
			r.metrics.failed.WithLabelValues("other", class.String()).Inc()
			log := r.log.With("route", name, "attempt", b.attempts, "next_attempt", b.next.Format(time.RFC3339))
			if class == Temporary {
				log.Warn("digest not sent; its events stay collected and it is retried", "err", err)
			} else {
				log.Error("digest refused; its events stay collected and it is retried until retry.lifetime, then they go to the dead letters: fix the route's recipients or smtp.*", "err", err)
			}
		}
	}
}

// digestState is what runDigests keeps between ticks.
type digestState struct {
	retry map[string]digestRetry
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
func (r *Relay) flushDigest(ctx context.Context, store DigestStore, l *live, name string, rt *config.Route, ds *digestState) error {
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
	r.digests.pending.WithLabelValues(name).Set(float64(n))
	if err != nil || n == 0 {
		return err
	}
	waited := r.now().Sub(entries[0].Collected)
	if rt != nil && n < limit && waited < every {
		return nil
	}
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.Event.ID
	}
	if rt == nil {
		r.log.Warn("this route no longer collects a digest (a reload renamed or removed it); sending what it collected to its recipients then",
			"route", name, "events", len(entries))
		first := entries[0]
		rt = &config.Route{Name: name, To: first.To, Cc: first.Cc, Bcc: first.Bcc, ReplyTo: first.ReplyTo}
	}
	msg, err := l.renderer.RenderDigest(entries, rt, l.cfg.SMTP.From)
	if err == nil {
		err = r.sender.Send(ctx, msg)
	}
	if err != nil {
		if lifetime := l.cfg.Retry.Lifetime; Classify(err) == Permanent && waited >= lifetime {
			reason := fmt.Sprintf("digest of route %s refused for retry.lifetime (%s): %v", name, lifetime, err)
			if berr := store.BuryDigest(ctx, name, ids, reason); berr != nil {
				return errors.Join(err, berr)
			}
			r.log.Error("digest refused for retry.lifetime; its events are in the dead letters (hookmail queue list --dead)", "route", name, "events", len(ids), "err", err)
			return nil
		}
		return err
	}
	if err := store.Forget(ctx, name, ids); err != nil {
		// Sent but still collected: cleared before the next digest.
		ds.forget[name] = ids
		r.log.Error("digest sent but its events could not be cleared yet; retrying before the next digest", "route", name, "err", err)
	}
	r.metrics.sent.WithLabelValues("other").Inc()
	r.digests.size.WithLabelValues(name).Observe(float64(len(entries)))
	r.digests.wait.WithLabelValues(name).Observe(waited.Seconds())
	r.digests.pending.WithLabelValues(name).Set(float64(n - len(entries)))
	r.log.Info("digest sent", "route", name, "events", len(entries), "waiting", n-len(entries),
		"message_id", msg.MessageID, "reply", msg.Receipt)
	return nil
}
