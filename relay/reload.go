package relay

import (
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/hookmail/hookmail/config"
)

// live is what a reload swaps at once: workers and the receiver read it
// once per event, so each event sees the old config or the new one, never a
// mix.
type live struct {
	cfg      *config.Config
	renderer *Renderer
	router   *Router
	secrets  secretSet
}

func newLive(cfg *config.Config) (*live, error) {
	renderer, err := NewRenderer(cfg.Templates.Dir, cfg.Location(), cfg.Routes...)
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	return &live{cfg: cfg, renderer: renderer, router: NewRouter(cfg.Routes), secrets: newSecretSet(cfg.Webhook.Secrets)}, nil
}

// describer renders items for the queue commands with this config.
func (l *live) describer() Describer {
	return Describer{Renderer: l.renderer, Router: l.router, From: l.cfg.SMTP.From}
}

// reloadMetrics are named as Prometheus and Alertmanager name theirs.
type reloadMetrics struct {
	ok   prometheus.Gauge
	when prometheus.Gauge
}

func newReloadMetrics(reg prometheus.Registerer) reloadMetrics {
	f := promauto.With(reg)
	return reloadMetrics{
		ok: f.NewGauge(prometheus.GaugeOpts{
			Name: "hookmail_config_last_reload_successful",
			Help: "1 when the last config reload (or the start) succeeded, 0 when the last reload was refused and the previous config stays in force.",
		}),
		when: f.NewGauge(prometheus.GaugeOpts{
			Name: "hookmail_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful config load.",
		}),
	}
}

// ReloadFailed records a reload refused before it reached Reload (a config
// file that does not load or validate).
func (r *Relay) ReloadFailed() { r.reloads.ok.Set(0) }

func (m reloadMetrics) succeeded(at time.Time) {
	m.ok.Set(1)
	m.when.Set(float64(at.Unix()))
}

// Reload swaps in cfg's routes, templates, secrets, smtp.from and retry
// settings once they all build; on any error the config in force stays and
// the error says why. It returns the keys whose change needs a restart to
// take effect (addresses, spool, SMTP server, workers, limits).
func (r *Relay) Reload(cfg *config.Config) (needRestart []string, err error) {
	l, err := newLive(cfg)
	if err != nil {
		r.reloads.ok.Set(0)
		return nil, err
	}
	r.live.Store(l)
	r.reloads.succeeded(time.Now())
	r.initRouteSeries(cfg)
	return restartKeys(r.cfg, cfg), nil
}

// restartKeys lists the keys that differ between the config hookmail
// started with and cfg, among those only a restart applies.
func restartKeys(started, cfg *config.Config) []string {
	var keys []string
	diff := func(key string, a, b any) {
		if fmt.Sprint(a) != fmt.Sprint(b) {
			keys = append(keys, key)
		}
	}
	diff("listen", started.Listen, cfg.Listen)
	diff("log", started.Log, cfg.Log)
	diff("webhook.path", started.Webhook.Path, cfg.Webhook.Path)
	diff("webhook.max_body_bytes", started.Webhook.MaxBodyBytes, cfg.Webhook.MaxBodyBytes)
	diff("webhook.unescape_html", started.Webhook.UnescapeHTML, cfg.Webhook.UnescapeHTML)
	diff("webhook.max_concurrent", started.Webhook.MaxConcurrent, cfg.Webhook.MaxConcurrent)
	diff("webhook.rate_limit", started.Webhook.RateLimit, cfg.Webhook.RateLimit)
	diff("webhook.rate_burst", started.Webhook.RateBurst, cfg.Webhook.RateBurst)
	diff("spool", started.Spool, cfg.Spool)
	diff("dedup", started.Dedup, cfg.Dedup)
	// Secrets print masked, so they are compared apart.
	diff("admin", started.Admin.Listen, cfg.Admin.Listen)
	diff("admin.token", started.Admin.Token == cfg.Admin.Token, true)
	diff("outbox", started.Outbox, cfg.Outbox)
	s, c := started.SMTP, cfg.SMTP
	diff("smtp.password", s.Password == c.Password, true)
	s.From, c.From = "", "" // smtp.from reloads
	s.Password, c.Password = "", ""
	diff("smtp", s, c)
	slices.Sort(keys)
	return keys
}
