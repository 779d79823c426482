package webhook

import (
	"context"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
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

// ipLimiter is a token bucket per client IP (webhook.rate_limit and
// webhook.rate_burst). Buckets of clients gone quiet are forgotten, so a
// scan from many addresses cannot grow it without end.
type ipLimiter struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex
	clients map[string]*client
	swept   time.Time
}

type client struct {
	lim  *rate.Limiter
	seen time.Time
}

// forgetAfter is how long a client's bucket is kept after its last request;
// by then the bucket is full again, so forgetting it changes nothing.
func (l *ipLimiter) forgetAfter() time.Duration {
	full := time.Duration(float64(l.burst) / float64(l.limit) * float64(time.Second))
	return max(full, time.Minute)
}

func newIPLimiter(perSecond float64, burst int, now func() time.Time) *ipLimiter {
	return &ipLimiter{limit: rate.Limit(perSecond), burst: burst, now: now, clients: map[string]*client{}}
}

// allow takes a token for ip; when there is none, it says how long until
// there is.
func (l *ipLimiter) allow(ip string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > l.forgetAfter() {
		for k, c := range l.clients {
			if now.Sub(c.seen) > l.forgetAfter() {
				delete(l.clients, k)
			}
		}
		l.swept = now
	}
	c := l.clients[ip]
	if c == nil {
		c = &client{lim: rate.NewLimiter(l.limit, l.burst)}
		l.clients[ip] = c
	}
	c.seen = now
	r := c.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// limitRate answers 429 with Retry-After to a client IP past its rate. The
// IP is the connection's peer: hookmail trusts no X-Forwarded-For.
func limitRate(l *ipLimiter, m *Metrics, source string, refusals *refusalLog, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ok, wait := l.allow(clientIP(r.RemoteAddr)); !ok {
			m.received.WithLabelValues(source, "none", ResultRateLimited).Inc()
			writeError(w, r, refusals, source, "none", &reqError{status: http.StatusTooManyRequests, result: ResultRateLimited,
				reason: "too many requests from this address (webhook.rate_limit)", retryAfter: strconv.Itoa(int(math.Ceil(wait.Seconds())))})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// clientIP is the IP of a host:port address, or the address itself.
func clientIP(addr string) string {
	ip, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return ip
}
