package app

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/admin/web"
	"github.com/hookmail/hookmail/relay/webhook"
)

// reloadMetrics say how the last config load went: to Prometheus, in
// gauges named as Prometheus and Alertmanager name theirs, and to the
// admin page (Status).
type reloadMetrics struct {
	ok   prometheus.Gauge
	when prometheus.Gauge
	last *atomic.Pointer[web.ReloadStatus]
}

func newReloadMetrics(reg prometheus.Registerer) reloadMetrics {
	f := promauto.With(reg)
	return reloadMetrics{
		last: &atomic.Pointer[web.ReloadStatus]{},
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

func (m reloadMetrics) succeeded(at time.Time, trigger string) {
	m.ok.Set(1)
	m.when.Set(float64(at.Unix()))
	m.last.Store(&web.ReloadStatus{OK: true, At: at, Loaded: at, Trigger: trigger})
}

func (m reloadMetrics) refused(at time.Time, trigger string, err error) {
	m.ok.Set(0)
	st := web.ReloadStatus{At: at, Trigger: trigger, Err: err.Error()}
	if prev := m.last.Load(); prev != nil {
		st.Loaded = prev.Loaded
	}
	m.last.Store(&st)
}

// Status is how the last config load went, for the admin page.
func (m reloadMetrics) Status() web.ReloadStatus { return *m.last.Load() }

// reload loads the config anew and swaps in its routes, templates, webhook
// secrets, smtp.from, smtp.rate, smtp.quota_reset, retry settings and
// shutdown.drain once they all build; a config that
// does not load, validate or render is logged with why, and the one in
// force stays. Changed keys that only a restart applies are named in the
// log.
func (s *server) reload(trigger string) {
	next, err := s.opts.Load()
	var rules *relay.Rules
	if err == nil {
		err = s.backend.Check(next)
	}
	if err == nil {
		rules, err = relay.NewRules(next)
	}
	var keys map[string]webhook.Keys
	if err == nil {
		keys, err = sourceKeys(next, *s.keys.Load(), s.servedFormats())
	}
	if err != nil {
		s.reloads.refused(time.Now(), trigger, err)
		s.log.Error("config reload refused; the previous config stays in force", "trigger", trigger, "err", err)
		return
	}
	s.workers.SetRules(rules)
	s.keys.Store(&keys)
	s.drainFor.Store(int64(next.Shutdown.Drain))
	s.reloads.succeeded(time.Now(), trigger)
	s.log.Info("config reloaded", "trigger", trigger)
	if keys := restartKeys(s.cfg, next); len(keys) > 0 {
		s.log.Warn("config reloaded, but these changes take effect only after a restart", "keys", strings.Join(keys, ", "))
	}
}

func ptr[T any](v T) *T { return &v }

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
	diff("webhook.sources", sourceShapes(started), sourceShapes(cfg))
	diff("webhook.max_body_bytes", started.Webhook.MaxBodyBytes, cfg.Webhook.MaxBodyBytes)
	diff("webhook.unescape_html", started.Webhook.UnescapeHTML, cfg.Webhook.UnescapeHTML)
	diff("webhook.max_concurrent", started.Webhook.MaxConcurrent, cfg.Webhook.MaxConcurrent)
	diff("webhook.rate_limit", started.Webhook.RateLimit, cfg.Webhook.RateLimit)
	diff("webhook.rate_burst", started.Webhook.RateBurst, cfg.Webhook.RateBurst)
	diff("webhook.body_timeout", started.Webhook.BodyTimeout, cfg.Webhook.BodyTimeout)
	diff("webhook.max_connections", started.Webhook.MaxConnections, cfg.Webhook.MaxConnections)
	diff("webhook.max_connections_per_ip", started.Webhook.MaxConnectionsPerIP, cfg.Webhook.MaxConnectionsPerIP)
	diff("spool", started.Spool, cfg.Spool)
	diff("dedup", started.Dedup, cfg.Dedup)
	sq, cq := started.Queue, cfg.Queue
	diff("queue.postgres.url", sq.Postgres.URL == cq.Postgres.URL, true)
	sq.Postgres.URL, cq.Postgres.URL = "", ""
	diff("queue", sq, cq)
	// Secrets print masked, so they are compared apart.
	diff("admin", started.Admin.Listen, cfg.Admin.Listen)
	diff("admin.token", started.Admin.Token == cfg.Admin.Token, true)
	diff("outbox", started.Outbox, cfg.Outbox)
	s, c := started.SMTP, cfg.SMTP
	diff("smtp.password", s.Password == c.Password, true)
	s.From, c.From = "", "" // smtp.from reloads
	s.Rate, c.Rate = "", "" // and so do smtp.rate and smtp.quota_reset
	s.QuotaReset, c.QuotaReset = "", ""
	s.Password, c.Password = "", ""
	diff("smtp", s, c)
	slices.Sort(keys)
	return keys
}

// sourceShapes is what only a restart changes of the sources in force:
// which there are, on which paths, in which formats, with which limits.
// Their secrets and media settings reload.
func sourceShapes(cfg *config.Config) []config.Source {
	var out []config.Source
	for _, src := range cfg.Webhook.Sources() {
		src.Secrets, src.SecretsFile = nil, ""
		src.Media = config.Media{} // the workers read it from the config in force
		out = append(out, src)
	}
	return out
}

// servedFormats are the formats the running handlers read, by source.
func (s *server) servedFormats() map[string]string {
	formats := map[string]string{}
	for _, src := range s.cfg.Webhook.Sources() {
		formats[src.Name] = src.Format
	}
	return formats
}
