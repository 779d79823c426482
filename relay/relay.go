// Package relay is hookmail's core: the webhook receiver, the queue, the
// renderer and the delivery workers.
package relay

import (
	"context"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hookmail/hookmail/config"
)

// Relay wires the receiver, the queue and the workers together.
type Relay struct {
	cfg     *config.Config
	log     *slog.Logger
	reg     *prometheus.Registry
	queue   Queue
	sender  Sender
	metrics *Metrics
	reloads reloadMetrics
	digests digestMetrics

	// live is the part of the config a reload swaps: routes, templates,
	// secrets, smtp.from and retry. cfg is the config hookmail started with,
	// for what only a restart changes (addresses, spool, SMTP server).
	live atomic.Pointer[live]

	now   func() time.Time
	newID func() string

	acks     sync.WaitGroup // acks in flight (see ack)
	ackSlots chan struct{}

	failures failureLog // the delivery failure last logged
}

// New builds a relay on a validated config. It parses the templates, so a
// broken override stops start-up with its file and line.
func New(cfg *config.Config, log *slog.Logger, reg *prometheus.Registry, queue Queue, sender Sender) (*Relay, error) {
	l, err := newLive(cfg)
	if err != nil {
		return nil, err
	}
	r := &Relay{
		cfg:      cfg,
		log:      log,
		reg:      reg,
		queue:    queue,
		sender:   sender,
		metrics:  NewMetrics(reg, queue),
		reloads:  newReloadMetrics(reg),
		digests:  newDigestMetrics(reg),
		now:      time.Now,
		newID:    func() string { return uuid.Must(uuid.NewV7()).String() },
		ackSlots: make(chan struct{}, ackSlotsPerWorker*cfg.SMTP.Workers),
	}
	r.live.Store(l)
	r.reloads.succeeded(time.Now())
	r.initRouteSeries(cfg)
	return r, nil
}

// Handler serves every route: the webhook, /healthz, /readyz, /metrics.
func (r *Relay) Handler() http.Handler {
	mux := http.NewServeMux()
	secrets := func() secretSet { return r.live.Load().secrets }
	refusals := newRefusalLog(r.log, r.now)
	var webhook http.Handler = handleWebhook(r.log, &r.cfg.Webhook, secrets, r.queue, r.metrics, refusals, r.now, r.newID)
	if r.cfg.Webhook.RateLimit > 0 {
		webhook = limitRate(newIPLimiter(r.cfg.Webhook.RateLimit, r.cfg.Webhook.RateBurst, r.now), r.metrics, refusals, webhook)
	}
	p := strings.TrimSuffix(r.cfg.Webhook.Path, "/")
	mux.Handle(p, webhook)
	mux.Handle(p+"/", exact(p+"/", webhook)) // gateways are often set up with a trailing slash
	mux.Handle("/healthz", handleHealthz())
	// A flood of probes or scrapes must not take what the webhooks need.
	mux.Handle("/readyz", cacheReplies(handleReadyz(r.queue), replyCacheTTL, r.now))
	mux.Handle("/metrics", cacheReplies(promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{Registry: r.reg}), replyCacheTTL, r.now))
	mux.Handle("/", http.NotFoundHandler())
	return neverRedirect(mux)
}

// neverRedirect answers 404 where ServeMux would redirect to a cleaned
// path: a gateway follows a 301 by turning its POST into a GET without the
// body, so the event would be lost without a trace.
func neverRedirect(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		clean := path.Clean(p)
		if strings.HasSuffix(p, "/") && clean != "/" {
			clean += "/" // ServeMux keeps a trailing slash when it cleans
		}
		if p == "" || clean != p {
			writeJSON(w, http.StatusNotFound, map[string]string{"status": "error", "error": "not found"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// exact keeps a subtree pattern from taking the paths below it.
func exact(p string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != p {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// handleReadyz is ready when the queue takes writes now.
func handleReadyz(q Queue) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if err := q.Ready(ctx); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}
