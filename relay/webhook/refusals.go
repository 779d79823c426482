package webhook

import (
	"cmp"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/hookmail/hookmail/relay/ratelimit"
)

// reqError is a failed webhook request: the status, the metrics result,
// and a short reason safe to show the client (never a secret).
type reqError struct {
	status int
	result string
	reason string
	err    error // internal detail, logged for 5xx only
	// retryAfter is the Retry-After of a 429 or 503 (default 30 s).
	retryAfter string
}

// writeError answers a failed request with {"status":"error","error":reason}
// and logs it through refusals (typ is the event's type label, or "none").
func writeError(w http.ResponseWriter, r *http.Request, refusals *refusalLog, source, typ string, e *reqError) {
	refusals.record(r, source, typ, e)
	if e.status == http.StatusServiceUnavailable || e.status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", cmp.Or(e.retryAfter, "30"))
	}
	writeJSON(w, e.status, map[string]string{"status": "error", "error": e.reason})
}

// refusalLogEvery spaces out the log lines of refused webhooks: one line
// per client IP (IPv6: /64) and result per refusalLogEvery, counting the refusals in
// between, so a flood cannot flood the log while every kind of refusal from
// every client still shows.
const refusalLogEvery = time.Minute

// maxRefusalKeys bounds the clients and results refusalLog remembers; past
// it, refusals from new clients share one line per result.
const maxRefusalKeys = 10000

// refusalLog logs refused webhook requests: the client's mistakes (401,
// 400, 413, 429, ...) at WARN, hookmail's own failures (5xx) at ERROR.
// The gateway never retries, so a refused webhook is a lost event: every
// refusal must be visible, not only counted.
type refusalLog struct {
	log *slog.Logger
	now func() time.Time

	mu    sync.Mutex
	seen  map[refusalKey]*refusalCount
	swept time.Time
}

type refusalKey struct{ ip, result string }

type refusalCount struct {
	last   time.Time
	missed int
}

func newRefusalLog(log *slog.Logger, now func() time.Time) *refusalLog {
	return &refusalLog{log: log, now: now, seen: map[refusalKey]*refusalCount{}}
}

func (l *refusalLog) record(r *http.Request, source, typ string, e *reqError) {
	key := refusalKey{ip: ratelimit.ClientNet(r.RemoteAddr), result: e.result}
	now := l.now()
	l.mu.Lock()
	if now.Sub(l.swept) > refusalLogEvery {
		for k, c := range l.seen {
			if now.Sub(c.last) > refusalLogEvery && c.missed == 0 {
				delete(l.seen, k)
			}
		}
		l.swept = now
	}
	c := l.seen[key]
	if c == nil && len(l.seen) >= maxRefusalKeys {
		key.ip = "other"
		c = l.seen[key]
	}
	if c == nil {
		c = &refusalCount{}
		l.seen[key] = c
	} else if now.Sub(c.last) < refusalLogEvery {
		c.missed++
		l.mu.Unlock()
		return
	}
	missed := c.missed
	c.last, c.missed = now, 0
	l.mu.Unlock()
	remote := ratelimit.ClientIP(r.RemoteAddr)
	if key.ip == "other" {
		remote = "other" // the count is of many clients'
	}
	attrs := []any{"remote", remote, "status", e.status, "result", e.result, "reason", e.reason, "type", typ, "source", source, "not_logged_since", missed}
	if e.status >= 500 {
		l.log.Error("webhook refused: hookmail could not take it", append(attrs, "err", e.err)...)
		return
	}
	l.log.Warn("webhook refused", attrs...)
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
