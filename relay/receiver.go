package relay

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/hookmail/hookmail/config"
)

// SourceGateway names events from the platform the README describes under "What the gateway sends".
const SourceGateway = "gateway"

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
func writeError(w http.ResponseWriter, r *http.Request, refusals *refusalLog, typ string, e *reqError) {
	refusals.record(r, typ, e)
	if e.status == http.StatusServiceUnavailable || e.status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", cmp.Or(e.retryAfter, "30"))
	}
	writeJSON(w, e.status, map[string]string{"status": "error", "error": e.reason})
}

// refusalLogEvery spaces out the log lines of refused webhooks: one line
// per client IP and result per refusalLogEvery, counting the refusals in
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

func (l *refusalLog) record(r *http.Request, typ string, e *reqError) {
	key := refusalKey{ip: clientIP(r.RemoteAddr), result: e.result}
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
	attrs := []any{"remote", key.ip, "status", e.status, "result", e.result, "reason", e.reason, "type", typ, "not_logged_since", missed}
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

// secretSet compares a presented secret against every configured one in
// constant time. Hashing first makes every comparison the same length, so
// neither a secret's content nor its length leaks through timing. match
// has no early exit: it compares against every configured secret and
// selects the match in constant time, so which secret matched (or how many
// are configured past the first) does not show either. The work before it, decoding the body,
// does not depend on the secret at all. What a right secret then costs on
// top (the fsync before 200) tells the sender nothing the 200 does not.
type secretSet [][sha256.Size]byte

func newSecretSet(secrets []config.Secret) secretSet {
	set := make(secretSet, 0, len(secrets))
	for _, s := range secrets {
		set = append(set, sha256.Sum256([]byte(s.Reveal())))
	}
	return set
}

// match returns the index of the configured secret presented equals, or -1.
// It compares against every secret, whichever matches, so the time taken
// says nothing about which one or how close.
func (set secretSet) match(presented string) int {
	h := sha256.Sum256([]byte(presented))
	idx := -1
	for i := range set {
		idx = subtle.ConstantTimeSelect(subtle.ConstantTimeCompare(h[:], set[i][:]), i, idx)
	}
	if presented == "" {
		return -1
	}
	return idx
}

// handleWebhook accepts a gateway's webhook: read the body, check the
// secret, persist, and only then answer 200. An event the queue already
// holds (same secret, type and sender's id within dedup.window) is answered
// 200 "duplicate" and not stored again.
//
// The body is read whole, under webhook.body_timeout, before the request
// takes one of webhook.max_concurrent's slots: a client that sends slowly
// holds its connection only, never a slot the gateway needs. A form body
// whose secret is wrong is refused as soon as the secret field has arrived.
func handleWebhook(log *slog.Logger, cfg *config.Webhook, secrets func() secretSet, queue Queue, m *Metrics, refusals *refusalLog, now func() time.Time, newID func() string) http.Handler {
	opts := DecodeOptions{UnescapeHTML: cfg.UnescapeHTML}
	busy := make(slots, cfg.MaxConcurrent)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, rerr := receive(w, r, cfg, opts, secrets(), busy)
		var dup *DuplicateError
		if rerr == nil {
			defer busy.release()
			ev.ID, ev.Received = newID(), now()
			err := queue.Enqueue(r.Context(), ev)
			switch {
			case errors.As(err, &dup):
			case errors.Is(err, ErrQueueFull):
				rerr = &reqError{status: http.StatusServiceUnavailable, result: ResultQueueFull, reason: "hookmail's queue is full; try again later", err: err}
			case err != nil:
				rerr = &reqError{status: http.StatusServiceUnavailable, result: ResultUnavailable, reason: "cannot store the event now", err: err}
			}
		}
		typ := "none"
		if ev != nil {
			typ = typeLabel(ev.Type)
		}
		switch {
		case rerr != nil:
			m.received.WithLabelValues(typ, rerr.result).Inc()
			writeError(w, r, refusals, typ, rerr)
		case dup != nil:
			m.received.WithLabelValues(typ, ResultDuplicate).Inc()
			log.Info("duplicate event not queued again", "id", dup.ID, "type", ev.Type)
			writeJSON(w, http.StatusOK, map[string]string{"status": "duplicate", "id": dup.ID})
		default:
			m.received.WithLabelValues(typ, ResultQueued).Inc()
			log.Info("event queued", "id", ev.ID, "type", ev.Type, "fields", len(ev.Data))
			writeJSON(w, http.StatusOK, map[string]string{"status": "queued", "id": ev.ID})
		}
	})
}

// receive reads, decodes and checks one request. On success it holds a slot
// of busy, which the caller releases. The event it returns (typed but
// without id) may come with an error, so the metrics can name its type.
func receive(w http.ResponseWriter, r *http.Request, cfg *config.Webhook, opts DecodeOptions, secrets secretSet, busy slots) (*Event, *reqError) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return nil, &reqError{status: http.StatusMethodNotAllowed, result: ResultInvalid, reason: "only POST is accepted here"}
	}
	body, rerr := readBody(w, r, cfg.MaxBodyBytes, cfg.BodyTimeout, secrets)
	if rerr != nil {
		return nil, rerr
	}
	if !busy.acquire(r.Context()) {
		return nil, errBusy
	}
	ev, rerr := decodeEvent(r.Header.Get("Content-Type"), body, opts, secrets)
	if rerr != nil {
		busy.release()
	}
	return ev, rerr
}

// dedupKey names the sender's event for deduplication: who sent it (the
// secret it came with, hashed, so two gateways with their own secrets
// never collide), the type as sent (the dashboard's test "notification"
// is not a real "notifications" event), and the sender's own id
// (data[id]). Without an id there is no key, and no deduplication. The key
// is a hash: no secret or field shows in the spool.
func dedupKey(sender [sha256.Size]byte, wireType, id string) string {
	if id == "" {
		return ""
	}
	h := sha256.New()
	h.Write(sender[:])
	h.Write([]byte("\x00" + wireType + "\x00" + id))
	return hex.EncodeToString(h.Sum(nil))
}

// decodeEvent decodes and checks one body. The event it returns (typed but
// without id) may come with an error, so the metrics can name its type.
func decodeEvent(contentType string, body []byte, opts DecodeOptions, secrets secretSet) (*Event, *reqError) {
	p, err := DecodePayload(contentType, bytes.NewReader(body), opts)
	switch {
	case isLimit(err):
		// The text names the limit (MaxFields, MaxFieldBytes, ...) and
		// quotes nothing of the body.
		return nil, &reqError{status: http.StatusRequestEntityTooLarge, result: ResultTooLarge, reason: err.Error()}
	case errors.Is(err, ErrUnsupportedMediaType):
		return nil, &reqError{status: http.StatusUnsupportedMediaType, result: ResultUnsupported, reason: err.Error()}
	case err != nil:
		return nil, &reqError{status: http.StatusBadRequest, result: ResultInvalid, reason: "body does not decode as a webhook"}
	}
	ev := &Event{Source: SourceGateway, Type: NormalizeType(p.Type), Data: p.Data}
	sender := secrets.match(p.Secret)
	if sender < 0 {
		return ev, errWrongSecret
	}
	ev.DedupKey = dedupKey(secrets[sender], p.Type, p.Data["id"])
	if ev.Type == "" {
		return ev, &reqError{status: http.StatusBadRequest, result: ResultInvalid, reason: "missing type"}
	}
	return ev, nil
}

var errWrongSecret = &reqError{status: http.StatusUnauthorized, result: ResultUnauthorized, reason: "missing or wrong secret"}
