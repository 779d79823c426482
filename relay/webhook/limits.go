package webhook

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/hookmail/hookmail/relay/ratelimit"
)

// slotWait is how long a webhook request waits for one of
// webhook.max_concurrent slots before it is answered 503.
const slotWait = time.Second

// slots bounds the webhook requests decoded and stored at once. A request
// takes one only after its whole body has arrived (see readBody), so a
// client that sends slowly holds a connection, never a slot.
type slots chan struct{}

// acquire takes a slot, waiting up to slotWait; it reports false when none
// freed in time or the request ended. A taken slot is given back with
// release.
func (s slots) acquire(ctx context.Context) bool {
	select {
	case s <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(slotWait)
	defer t.Stop()
	select {
	case s <- struct{}{}:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

func (s slots) release() { <-s }

var errBusy = &reqError{status: http.StatusServiceUnavailable, result: ResultBusy, retryAfter: "1",
	reason: "too many requests at once (webhook.max_concurrent); try again in a second"}

// limitRate answers 429 with Retry-After to a client IP (an IPv6 /64)
// past its rate. The IP is the connection's peer: hookmail trusts no
// X-Forwarded-For.
func limitRate(l *ratelimit.Limiter, m *Metrics, source string, refusals *refusalLog, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, wait := l.Take(ratelimit.ClientNet(r.RemoteAddr)); wait > 0 {
			m.received.WithLabelValues(source, "none", ResultRateLimited).Inc()
			writeError(w, r, refusals, source, "none", &reqError{status: http.StatusTooManyRequests, result: ResultRateLimited,
				reason: "too many requests from this address (webhook.rate_limit)", retryAfter: strconv.Itoa(int(math.Ceil(wait.Seconds())))})
			return
		}
		next.ServeHTTP(w, r)
	})
}
