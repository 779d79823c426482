package webhook

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/ratelimit"
)

// SourceGateway names events from the platform the README describes under
// "What the gateway sends", when webhook.path and webhook.secrets set it up.
const SourceGateway = config.GatewaySource

// Enqueuer is the part of a relay.Queue the receiver uses.
type Enqueuer interface {
	Enqueue(ctx context.Context, ev *relay.Event) error
}

// Receiver accepts webhooks into a queue, one handler per source.
type Receiver struct {
	Config *config.Webhook
	// Keys returns a source's keys in force; a reload swaps them.
	Keys    func(source string) Keys
	Queue   Enqueuer
	Metrics *Metrics
	Log     *slog.Logger
	// Now and NewID default to time.Now and a UUIDv7.
	Now   func() time.Time
	NewID func() string

	limiter     sync.Once
	rateLimiter *ratelimit.Limiter // one for every source: the rate is a client's, wherever it posts
	large       *byteBudget
}

// Handler serves src's path, rate-limited per client IP when
// webhook.rate_limit is set. Each source has its own slots
// (webhook.max_concurrent), so one sender's flood cannot take another's.
func (rc *Receiver) Handler(src config.Source) http.Handler {
	if rc.Now == nil {
		rc.Now = time.Now
	}
	if rc.NewID == nil {
		rc.NewID = func() string { return uuid.Must(uuid.NewV7()).String() }
	}
	rc.Metrics.init(src.Name)
	if rc.large == nil {
		rc.large = newByteBudget(LargeBodyBudget)
	}
	refusals := newRefusalLog(rc.Log, rc.Now)
	h := rc.handle(&src, refusals)
	if rc.Config.RateLimit > 0 {
		rc.limiter.Do(func() {
			rc.rateLimiter = ratelimit.New(rate.Limit(rc.Config.RateLimit), rc.Config.RateBurst, 0, rc.Now)
		})
		h = limitRate(rc.rateLimiter, rc.Metrics, src.Name, refusals, h)
	}
	return h
}

// handle accepts a sender's webhook: read the body, authenticate it,
// persist, and only then answer 200. An event the queue already holds (the
// same message from the same source within dedup.window) is answered 200
// "duplicate" and not stored again.
//
// The body is read whole, under webhook.body_timeout, before the request
// takes one of webhook.max_concurrent's slots: a client that sends slowly
// holds its connection only, never a slot the gateway needs. A request
// whose format signs and that carries no signature is refused before its
// body is read; a zender form whose secret is wrong as soon as the secret
// field has arrived.
func (rc *Receiver) handle(src *config.Source, refusals *refusalLog) http.Handler {
	cfg, m := rc.Config, rc.Metrics
	f := formatOf(src)
	opts := DecodeOptions{UnescapeHTML: cfg.UnescapeHTML}
	busy := make(slots, cfg.MaxConcurrent)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		release := func() {}
		defer func() { release() }()
		d, rerr := rc.receive(w, r, src, f, opts, busy, &release)
		var dup *relay.DuplicateError
		var ev *relay.Event
		if d != nil {
			ev = d.ev
		}
		if rerr == nil && !d.ignored {
			defer busy.release()
			ev.ID, ev.Received, ev.Source, ev.Format = rc.NewID(), rc.Now(), src.Name, src.Format
			ev.DedupKey = d.dedupKey
			if ev.DedupKey == "" {
				ev.DedupKey = sourceDedupKey(src, ev.Type, d.id)
			}
			err := rc.Queue.Enqueue(r.Context(), ev)
			switch {
			case errors.As(err, &dup):
			case errors.Is(err, relay.ErrQueueFull):
				rerr = &reqError{status: http.StatusServiceUnavailable, result: ResultQueueFull, reason: "hookmail's queue is full; try again later", err: err}
			case err != nil:
				rerr = &reqError{status: http.StatusServiceUnavailable, result: ResultUnavailable, reason: "cannot store the event now", err: err}
			}
		} else if rerr == nil {
			busy.release()
		}
		typ := "none"
		if ev != nil {
			typ = relay.TypeLabel(ev.Type)
		}
		switch {
		case rerr != nil:
			m.received.WithLabelValues(src.Name, typ, rerr.result).Inc()
			writeError(w, r, refusals, src.Name, typ, rerr)
		case d.ignored:
			m.received.WithLabelValues(src.Name, typ, ResultIgnored).Inc()
			rc.Log.Debug("webhook with nothing to email ignored", "source", src.Name, "type", ev.Type)
			f.reply(w, "ignored", "")
		case dup != nil:
			m.received.WithLabelValues(src.Name, typ, ResultDuplicate).Inc()
			rc.Log.Info("duplicate event not queued again", "id", dup.ID, "source", src.Name, "type", ev.Type)
			f.reply(w, "duplicate", dup.ID)
		default:
			m.received.WithLabelValues(src.Name, typ, ResultQueued).Inc()
			rc.Log.Info("event queued", "id", ev.ID, "source", src.Name, "type", ev.Type, "fields", len(ev.Data))
			f.reply(w, "queued", ev.ID)
		}
	})
}

// receive reads, authenticates and decodes one request. On success (and
// not ignored) it holds a slot of busy, which the caller releases, and sets
// release to give back what it took of the large-body budget. What it
// decoded (typed but without id) may come with an error, so the metrics
// can name its type.
func (rc *Receiver) receive(w http.ResponseWriter, r *http.Request, src *config.Source, f format, opts DecodeOptions, busy slots, release *func()) (*decoded, *reqError) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return nil, &reqError{status: http.StatusMethodNotAllowed, result: ResultInvalid, reason: "only POST is accepted here"}
	}
	if rerr := f.precheck(r); rerr != nil {
		w.Header().Set("Connection", "close")
		return nil, rerr
	}
	// A large body takes from the budget as it arrives, and holds it until
	// the request ends: its decoded files stay in memory until the event
	// is stored.
	var charge func(int) bool
	if rc.large != nil && src.MaxBodyBytes > rc.Config.MaxBodyBytes {
		c := &largeCharge{budget: rc.large, small: rc.Config.MaxBodyBytes}
		charge, *release = c.grow, c.release
	}
	keys := rc.Keys(src.Name)
	var early func(string) bool
	if src.Format == config.FormatZender {
		early = func(secret string) bool { return keys.match(secret) >= 0 }
	}
	body, rerr := readBody(w, r, src.MaxBodyBytes, rc.Config.BodyTimeout, early, charge)
	if rerr != nil {
		return nil, rerr
	}
	if !busy.acquire(r.Context()) {
		return nil, errBusy
	}
	d, rerr := f.accept(&request{r: r, body: body, src: src, keys: keys, now: rc.now(), opts: opts})
	if rerr == nil && (d == nil || d.ev == nil) {
		rerr = &reqError{status: http.StatusBadRequest, result: ResultInvalid, reason: "body does not decode as a webhook"}
	}
	if rerr != nil {
		busy.release()
		return d, rerr
	}
	sanitize(d.ev)
	return d, nil
}

var errWrongSecret = &reqError{status: http.StatusUnauthorized, result: ResultUnauthorized, reason: "missing or wrong secret"}

// errBadSignature refuses a signed webhook whose signature is missing,
// malformed or wrong; it never says which, nor anything of the key.
var errBadSignature = &reqError{status: http.StatusUnauthorized, result: ResultUnauthorized, reason: "missing or wrong signature"}

func (rc *Receiver) now() time.Time {
	if rc.Now == nil {
		return time.Now()
	}
	return rc.Now()
}
