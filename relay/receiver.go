package relay

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
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
// Only server-side failures are logged: a client's bad request is counted,
// not logged, so a flood of them cannot flood the log.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, e *reqError) {
	if e.status >= 500 {
		log.Error("webhook request failed", "status", e.status, "reason", e.reason, "err", e.err, "remote", r.RemoteAddr)
	}
	if e.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "30")
	}
	writeJSON(w, e.status, map[string]string{"status": "error", "error": e.reason})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// secretSet compares a presented secret against every configured one in
// constant time. Hashing first makes every comparison the same length, so
// neither a secret's content nor its length leaks through timing. check
// has no early exit: it compares against every configured secret and ORs
// the results, so which secret matched (or how many are configured past
// the first) does not show either. The work before it, decoding the body,
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

func (set secretSet) check(presented string) bool {
	h := sha256.Sum256([]byte(presented))
	ok := 0
	for i := range set {
		ok |= subtle.ConstantTimeCompare(h[:], set[i][:])
	}
	return presented != "" && ok == 1
}

// handleWebhook accepts a gateway's webhook: decode, check the secret,
// persist, and only then answer 200.
func handleWebhook(log *slog.Logger, cfg *config.Webhook, secrets secretSet, queue Queue, m *Metrics, now func() time.Time, newID func() string) http.Handler {
	opts := DecodeOptions{UnescapeHTML: cfg.UnescapeHTML}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, rerr := readEvent(w, r, cfg.MaxBodyBytes, opts, secrets)
		if rerr == nil {
			ev.ID, ev.Received = newID(), now()
			if err := queue.Enqueue(r.Context(), ev); err != nil {
				rerr = &reqError{http.StatusServiceUnavailable, ResultUnavailable, "cannot store the event now", err}
			}
		}
		typ := "none"
		if ev != nil {
			typ = typeLabel(ev.Type)
		}
		if rerr != nil {
			m.received.WithLabelValues(typ, rerr.result).Inc()
			writeError(w, r, log, rerr)
			return
		}
		m.received.WithLabelValues(typ, ResultQueued).Inc()
		log.Info("event queued", "id", ev.ID, "type", ev.Type, "fields", len(ev.Data))
		writeJSON(w, http.StatusOK, map[string]string{"status": "queued", "id": ev.ID})
	})
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
	if !secrets.check(p.Secret) {
		return ev, &reqError{http.StatusUnauthorized, ResultUnauthorized, "missing or wrong secret", nil}
	}
	if ev.Type == "" {
		return ev, &reqError{http.StatusBadRequest, ResultInvalid, "missing type", nil}
	}
	return ev, nil
}
