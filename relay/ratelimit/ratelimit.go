// Package ratelimit keeps a token bucket per client address, as the
// webhook's webhook.rate_limit and the admin page's failed logins use
// one; ClientNet says which addresses count as one client. Buckets of clients gone quiet are forgotten, so a scan from many
// addresses cannot grow it without end.
package ratelimit

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter is a token bucket per key (a client address).
type Limiter struct {
	limit rate.Limit
	burst int
	// most is how many keys are kept at most (0: no bound but time):
	// past it, those whose bucket has refilled are forgotten at once.
	most int
	now  func() time.Time

	mu      sync.Mutex
	clients map[string]*client
	swept   time.Time
}

type client struct {
	lim    *rate.Limiter
	seen   time.Time // the last Take
	warned time.Time // the last refusal Warn allowed to be logged
}

// New returns a limiter of perSecond tokens a second and burst at once
// for each key, keeping at most most keys (0: no bound but time).
func New(perSecond rate.Limit, burst, most int, now func() time.Time) *Limiter {
	return &Limiter{limit: perSecond, burst: burst, most: most, now: now, clients: map[string]*client{}}
}

// forgetAfter is how long a key's bucket is kept after its last Take; by
// then the bucket is full again, so forgetting it changes nothing.
func (l *Limiter) forgetAfter() time.Duration {
	full := time.Duration(float64(l.burst) / float64(l.limit) * float64(time.Second))
	return max(full, time.Minute)
}

// Take takes a token for key. With none left it takes nothing and says
// how long until there is one; otherwise undo gives the token back (a
// login that turned out right).
func (l *Limiter) Take(key string) (undo func(), wait time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.client(key, now)
	c.seen = now
	r := c.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return nil, d
	}
	return func() { r.CancelAt(now) }, 0
}

// Warn reports whether a refusal of key may be logged: at most once every
// every for each key, so a client hammering cannot flood the log.
func (l *Limiter) Warn(key string, every time.Duration) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.client(key, now)
	if now.Sub(c.warned) < every {
		return false
	}
	c.warned = now
	return true
}

// Len is how many keys are kept now.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}

// client returns key's bucket, forgetting first those gone quiet (and, at
// the bound, those refilled). The caller holds l.mu.
func (l *Limiter) client(key string, now time.Time) *client {
	if now.Sub(l.swept) > l.forgetAfter() {
		for k, c := range l.clients {
			if now.Sub(c.seen) > l.forgetAfter() {
				delete(l.clients, k)
			}
		}
		l.swept = now
	}
	if l.most > 0 && len(l.clients) >= l.most {
		for k, c := range l.clients {
			if c.lim.TokensAt(now) >= float64(l.burst) {
				delete(l.clients, k)
			}
		}
	}
	c := l.clients[key]
	if c == nil {
		c = &client{lim: rate.NewLimiter(l.limit, l.burst)}
		l.clients[key] = c
	}
	return c
}

// ClientIP is the IP of a host:port address (a request's RemoteAddr), or
// the address itself. Behind a reverse proxy it is the proxy's: hookmail
// trusts no X-Forwarded-For.
func ClientIP(addr string) string {
	ip, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return ip
}

// ClientNet is what the per-client limits count a client address (a
// request's RemoteAddr) as: its IPv4 address, or the /64 network its IPv6
// address is in, such as "2001:db8:0:1::/64". A VPS is given a whole /64,
// and a LAN is one /64 whose hosts pick their own addresses (SLAAC), so a
// client can use another address for every connection; counted one by
// one, it would never reach a per-IP cap. Hosts of one LAN share its cap,
// as hosts behind one IPv4 NAT do. An IPv4-mapped address counts as its
// IPv4 address.
func ClientNet(addr string) string {
	ip := ClientIP(addr)
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}
