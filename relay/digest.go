package relay

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/hookmail/hookmail/config"
)

// digestTick is how often digest routes are checked for a digest due.
const digestTick = time.Second

// defaultDigestMax is a digest's size when the route sets no max_events.
const defaultDigestMax = 200

type digestMetrics struct {
	size *prometheus.HistogramVec
	wait *prometheus.HistogramVec
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
	}
}

// initRouteSeries creates the per-route series of cfg's routes at zero, so
// alerts and dashboards see them before the first digest or drop.
func (r *Relay) initRouteSeries(cfg *config.Config) {
	for _, rt := range cfg.Routes {
		if rt.Digest != nil {
			r.digests.size.WithLabelValues(rt.Name)
			r.digests.wait.WithLabelValues(rt.Name)
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
	return store.Collect(ctx, route.Name, ev)
}

// runDigests sends each digest route's email when it is due, until ctx
// ends. Collected events stay in the spool until their email is accepted,
// so a digest in progress survives a restart.
func (r *Relay) runDigests(ctx context.Context) {
	store, ok := r.queue.(DigestStore)
	if !ok {
		return
	}
	t := time.NewTicker(digestTick)
	defer t.Stop()
	backoff := map[string]digestRetry{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l := r.live.Load()
		for i := range l.cfg.Routes {
			rt := &l.cfg.Routes[i]
			if rt.Digest == nil || r.now().Before(backoff[rt.Name].next) {
				continue
			}
			attemptCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sendTimeout)
			err := r.flushDigest(attemptCtx, store, l, rt)
			cancel()
			if err == nil {
				delete(backoff, rt.Name)
				continue
			}
			b := backoff[rt.Name]
			b.attempts++
			b.next = r.now().Add(Backoff(l.cfg.Retry.Initial, l.cfg.Retry.Max, b.attempts-1))
			backoff[rt.Name] = b
			class := Classify(err)
			r.metrics.failed.WithLabelValues("other", class.String()).Inc()
			log := r.log.With("route", rt.Name, "attempt", b.attempts, "next_attempt", b.next.Format(time.RFC3339))
			if class == Temporary {
				log.Warn("digest not sent; its events stay collected and it is retried", "err", err)
			} else {
				log.Error("digest refused; its events stay collected and it is retried: fix the route's recipients or smtp.*", "err", err)
			}
		}
	}
}

type digestRetry struct {
	attempts int
	next     time.Time
}

// flushDigest sends route's digest when it is due: every has passed since
// its oldest event was collected, or max_events are waiting.
func (r *Relay) flushDigest(ctx context.Context, store DigestStore, l *live, rt *config.Route) error {
	limit := rt.Digest.MaxEvents
	if limit == 0 {
		limit = defaultDigestMax
	}
	entries, n, err := store.Digest(ctx, rt.Name, limit)
	if err != nil || n == 0 {
		return err
	}
	waited := r.now().Sub(entries[0].Collected)
	if n < limit && waited < rt.Digest.Every {
		return nil
	}
	msg, err := l.renderer.RenderDigest(entries, rt, l.cfg.SMTP.From)
	if err != nil {
		return err
	}
	if err := r.sender.Send(ctx, msg); err != nil {
		return err
	}
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.Event.ID
	}
	if err := store.Forget(ctx, rt.Name, ids); err != nil {
		// Sent but still collected: the next digest lists them again, under
		// the same Message-ID if it starts with the same event.
		r.log.Error("digest sent but its events could not be cleared; they may be listed again", "route", rt.Name, "err", err)
	}
	r.metrics.sent.WithLabelValues("other").Inc()
	r.digests.size.WithLabelValues(rt.Name).Observe(float64(len(entries)))
	r.digests.wait.WithLabelValues(rt.Name).Observe(waited.Seconds())
	r.log.Info("digest sent", "route", rt.Name, "events", len(entries), "waiting", n-len(entries),
		"message_id", msg.MessageID, "reply", msg.Receipt)
	return nil
}
