package webhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

// SourceGateway names events from the platform the README describes under
// "What the gateway sends".
const SourceGateway = "gateway"

// Enqueuer is the part of a relay.Queue the receiver uses.
type Enqueuer interface {
	Enqueue(ctx context.Context, ev *relay.Event) error
}

// Receiver accepts webhooks into a queue.
type Receiver struct {
	Config *config.Webhook
	// Secrets returns the secrets in force; a reload swaps them.
	Secrets func() Secrets
	Queue   Enqueuer
	Metrics *Metrics
	Log     *slog.Logger
	// Now and NewID default to time.Now and a UUIDv7.
	Now   func() time.Time
	NewID func() string
}

// Handler serves the webhook path, rate-limited per client IP when
// webhook.rate_limit is set.
func (rc *Receiver) Handler() http.Handler {
	if rc.Now == nil {
		rc.Now = time.Now
	}
	if rc.NewID == nil {
		rc.NewID = func() string { return uuid.Must(uuid.NewV7()).String() }
	}
	refusals := newRefusalLog(rc.Log, rc.Now)
	h := rc.handle(refusals)
	if rc.Config.RateLimit > 0 {
		h = limitRate(newIPLimiter(rc.Config.RateLimit, rc.Config.RateBurst, rc.Now), rc.Metrics, refusals, h)
	}
	return h
}

// handle accepts a gateway's webhook: read the body, check the secret,
// persist, and only then answer 200. An event the queue already holds (same
// secret, type and sender's id within dedup.window) is answered 200
// "duplicate" and not stored again.
//
// The body is read whole, under webhook.body_timeout, before the request
// takes one of webhook.max_concurrent's slots: a client that sends slowly
// holds its connection only, never a slot the gateway needs. A form body
// whose secret is wrong is refused as soon as the secret field has arrived.
func (rc *Receiver) handle(refusals *refusalLog) http.Handler {
	cfg, m := rc.Config, rc.Metrics
	opts := DecodeOptions{UnescapeHTML: cfg.UnescapeHTML}
	busy := make(slots, cfg.MaxConcurrent)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, rerr := receive(w, r, cfg, opts, rc.Secrets(), busy)
		var dup *relay.DuplicateError
		if rerr == nil {
			defer busy.release()
			ev.ID, ev.Received = rc.NewID(), rc.Now()
			err := rc.Queue.Enqueue(r.Context(), ev)
			switch {
			case errors.As(err, &dup):
			case errors.Is(err, relay.ErrQueueFull):
				rerr = &reqError{status: http.StatusServiceUnavailable, result: ResultQueueFull, reason: "hookmail's queue is full; try again later", err: err}
			case err != nil:
				rerr = &reqError{status: http.StatusServiceUnavailable, result: ResultUnavailable, reason: "cannot store the event now", err: err}
			}
		}
		typ := "none"
		if ev != nil {
			typ = relay.TypeLabel(ev.Type)
		}
		switch {
		case rerr != nil:
			m.received.WithLabelValues(typ, rerr.result).Inc()
			writeError(w, r, refusals, typ, rerr)
		case dup != nil:
			m.received.WithLabelValues(typ, ResultDuplicate).Inc()
			rc.Log.Info("duplicate event not queued again", "id", dup.ID, "type", ev.Type)
			writeJSON(w, http.StatusOK, map[string]string{"status": "duplicate", "id": dup.ID})
		default:
			m.received.WithLabelValues(typ, ResultQueued).Inc()
			rc.Log.Info("event queued", "id", ev.ID, "type", ev.Type, "fields", len(ev.Data))
			writeJSON(w, http.StatusOK, map[string]string{"status": "queued", "id": ev.ID})
		}
	})
}

// receive reads, decodes and checks one request. On success it holds a slot
// of busy, which the caller releases. The event it returns (typed but
// without id) may come with an error, so the metrics can name its type.
func receive(w http.ResponseWriter, r *http.Request, cfg *config.Webhook, opts DecodeOptions, secrets Secrets, busy slots) (*relay.Event, *reqError) {
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
func decodeEvent(contentType string, body []byte, opts DecodeOptions, secrets Secrets) (*relay.Event, *reqError) {
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
	ev := p.Event()
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
