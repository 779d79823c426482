package app

import (
	"context"
	"encoding/json"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/webhook"
)

// handler serves every public route: each source's webhook path, /healthz, /readyz and
// /metrics. From the drain on /readyz answers 503 and every answer closes
// its connection.
func (s *server) handler(q relay.Queue) http.Handler {
	rc := &webhook.Receiver{
		Config:  &s.cfg.Webhook,
		Keys:    func(source string) webhook.Keys { return (*s.keys.Load())[source] },
		Queue:   relay.PriorityEnqueuer{Queue: q, Rules: s.workers.Rules},
		Metrics: webhook.NewMetrics(s.reg),
		Log:     s.log,
	}
	mux := http.NewServeMux()
	for _, src := range s.cfg.Webhook.Sources() {
		hook := rc.Handler(src)
		p := strings.TrimSuffix(src.Path, "/")
		mux.Handle(p, hook)
		mux.Handle(p+"/", exact(p+"/", hook)) // gateways are often set up with a trailing slash
	}
	mux.Handle("/healthz", handleHealthz())
	// A flood of probes or scrapes must not take what the webhooks need.
	mux.Handle("/readyz", notReadyWhileStopping(&s.stopping, cacheReplies(handleReadyz(q), replyCacheTTL, time.Now)))
	mux.Handle("/metrics", cacheReplies(promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}), replyCacheTTL, time.Now))
	mux.Handle("/", http.NotFoundHandler())
	return closeWhileStopping(&s.stopping, neverRedirect(mux))
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
func handleReadyz(q relay.Queue) http.Handler {
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

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
