package relay

import (
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

// SourceGateway names events from the platform in WIRE-FORMATS.md.
const SourceGateway = "gateway"

// reqError is a failed webhook request: the status, the metrics result,
// and a short reason safe to show the client (never a secret).
type reqError struct {
	status int
	result string
	reason string
	err    error // internal detail, logged for 5xx only
}

func (e *reqError) Error() string { return e.reason }

// writeError answers a failed request with {"status":"error","error":reason}.
// Only server-side failures are logged, at most once per errorLogEvery with
// the count since: a client's bad request is counted, not logged, and a
// flood of 503s cannot flood the log either.
func writeError(w http.ResponseWriter, r *http.Request, log *errorLog, e *reqError) {
	if e.status >= 500 {
		log.record(r, e)
	}
	if e.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "30")
	}
	writeJSON(w, e.status, map[string]string{"status": "error", "error": e.reason})
}

// errorLogEvery spaces out the log lines of failing webhook requests.
const errorLogEvery = 10 * time.Second

// errorLog logs server-side request failures, the first at once, then at
// most one line per errorLogEvery that counts the failures in between.
type errorLog struct {
	log *slog.Logger

	mu     sync.Mutex
	last   time.Time
	missed int
}

func (l *errorLog) record(r *http.Request, e *reqError) {
	l.mu.Lock()
	now := time.Now()
	if now.Sub(l.last) < errorLogEvery {
		l.missed++
		l.mu.Unlock()
		return
	}
	missed := l.missed
	l.last, l.missed = now, 0
	l.mu.Unlock()
	l.log.Error("webhook request failed", "status", e.status, "reason", e.reason, "err", e.err,
		"remote", r.RemoteAddr, "failures_not_logged", missed)
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

// handleWebhook accepts a gateway's webhook: decode, check the secret,
// persist, and only then answer 200. An event the queue already holds
// (same secret, type and sender's id within dedup.window) is answered 200
// "duplicate" and not stored again.
func handleWebhook(log *slog.Logger, cfg *config.Webhook, secrets func() secretSet, queue Queue, m *Metrics, now func() time.Time, newID func() string) http.Handler {
	opts := DecodeOptions{UnescapeHTML: cfg.UnescapeHTML}
	errLog := &errorLog{log: log}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, rerr := readEvent(w, r, cfg.MaxBodyBytes, opts, secrets())
		var dup *DuplicateError
		if rerr == nil {
			ev.ID, ev.Received = newID(), now()
			err := queue.Enqueue(r.Context(), ev)
			switch {
			case errors.As(err, &dup):
			case errors.Is(err, ErrQueueFull):
				rerr = &reqError{http.StatusServiceUnavailable, ResultQueueFull, "hookmail's queue is full; try again later", err}
			case err != nil:
				rerr = &reqError{http.StatusServiceUnavailable, ResultUnavailable, "cannot store the event now", err}
			}
		}
		typ := "none"
		if ev != nil {
			typ = typeLabel(ev.Type)
		}
		switch {
		case rerr != nil:
			m.received.WithLabelValues(typ, rerr.result).Inc()
			writeError(w, r, errLog, rerr)
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

// readEvent decodes and checks one request. The event it returns (typed
// but without id) may come with an error, so the metrics can name its type.
func readEvent(w http.ResponseWriter, r *http.Request, maxBody int64, opts DecodeOptions, secrets secretSet) (*Event, *reqError) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return nil, &reqError{http.StatusMethodNotAllowed, ResultInvalid, "only POST is accepted here", nil}
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	p, err := DecodePayload(r.Header.Get("Content-Type"), r.Body, opts)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, &reqError{http.StatusRequestEntityTooLarge, ResultTooLarge, "body is larger than webhook.max_body_bytes allows", nil}
	case isLimit(err):
		// The text names the limit (MaxFields, MaxFieldBytes, ...) and
		// quotes nothing of the body.
		return nil, &reqError{http.StatusRequestEntityTooLarge, ResultTooLarge, err.Error(), nil}
	case errors.Is(err, ErrUnsupportedMediaType):
		return nil, &reqError{http.StatusUnsupportedMediaType, ResultUnsupported, err.Error(), nil}
	case err != nil:
		return nil, &reqError{http.StatusBadRequest, ResultInvalid, "body does not decode as a webhook", nil}
	}
	ev := &Event{Source: SourceGateway, Type: NormalizeType(p.Type), Data: p.Data}
	sender := secrets.match(p.Secret)
	if sender < 0 {
		return ev, &reqError{http.StatusUnauthorized, ResultUnauthorized, "missing or wrong secret", nil}
	}
	ev.DedupKey = dedupKey(secrets[sender], p.Type, p.Data["id"])
	if ev.Type == "" {
		return ev, &reqError{http.StatusBadRequest, ResultInvalid, "missing type", nil}
	}
	return ev, nil
}
