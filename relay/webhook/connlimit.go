package webhook

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/hookmail/hookmail/relay/ratelimit"
)

// ConnLimiter bounds the webhook listener's open connections, in all and
// per client IP (webhook.max_connections, webhook.max_connections_per_ip);
// an IPv6 client's IP is its /64 (see ratelimit.ClientNet).
// Each open connection costs a goroutine and its buffers, idle keep-alive
// ones too, so without a bound many clients (or one client with many
// connections) cost memory without end and can hold what the gateway
// needs.
//
// At the per-IP cap, a new connection takes the place of that IP's
// connection that has waited longest on its client, if it has waited at
// least minStall since the client last sent a byte (or connected): one
// that drips its request or sends nothing. Failing that, an idle
// keep-alive connection takes its turn after minIdle. A connection whose request has arrived whole and is being
// answered is never closed, however long its handler takes. When none
// qualifies, the new connection is closed at once. So clients sharing an
// address (one NAT, one host) with a slow or stalled one still get in,
// and the IP never holds more than its cap.
//
// At the total cap an idle keep-alive connection is closed to make room
// (clients reconnect for their next request, as after an idle timeout);
// when none is idle, Accept waits until a connection closes, and new
// connections wait in the kernel's queue meanwhile rather than being
// refused.
//
// Serve the listener with the http.Server's ConnState set to ConnState
// (so it knows which connections are idle), its ConnContext set to
// ConnContext and its handler wrapped in Handler (so it knows which
// requests have arrived whole).
type ConnLimiter struct {
	net.Listener
	perIP  int
	slots  chan struct{}
	closed chan struct{}
	once   sync.Once
	epoch  time.Time // connections' clocks count from here, monotonic

	mu   sync.Mutex
	byIP map[string]map[*limitedConn]struct{}
	idle map[net.Conn]struct{}

	open    prometheus.Gauge
	refused *prometheus.CounterVec
}

// minStall is how long a connection must have waited on its client before
// a new connection from its IP may take its place at the per-IP cap. A
// client that is sending its request does not pause that long between
// segments short of a lost packet (Linux retransmits after 200 ms at the
// least), so a request on its way is left alone; a client dripping a byte
// every 2 s, as in the attack this answers, is stalled for longer than
// this half the time, and the one stalled longest goes first.
const minStall = time.Second

// minIdle is how long an idle keep-alive connection must have been idle
// before a new connection from its IP may take its place: a client
// reusing one sends at once, but a close that crosses its request on the
// wire loses that request, and a gateway never sends it again.
const minIdle = 10 * time.Second

// NewConnLimiter wraps ln with the caps (perIP 0: none) and registers its
// metrics on reg.
func NewConnLimiter(ln net.Listener, total, perIP int, reg prometheus.Registerer) *ConnLimiter {
	f := promauto.With(reg)
	l := &ConnLimiter{
		Listener: ln,
		perIP:    perIP,
		slots:    make(chan struct{}, total),
		closed:   make(chan struct{}),
		epoch:    time.Now(),
		byIP:     map[string]map[*limitedConn]struct{}{},
		idle:     map[net.Conn]struct{}{},
		open: f.NewGauge(prometheus.GaugeOpts{
			Name: "hookmail_webhook_connections",
			Help: "Connections open now on the webhook port.",
		}),
		refused: f.NewCounterVec(prometheus.CounterOpts{
			Name: "hookmail_webhook_connections_closed_total",
			Help: "Connections the webhook port closed to keep within its caps: per_ip (a new connection past webhook.max_connections_per_ip), stalled (a connection of that IP waiting on its client, closed to make room for a new one), idle (a keep-alive connection closed to make room under webhook.max_connections).",
		}, []string{"reason"}),
	}
	l.refused.WithLabelValues("per_ip")
	l.refused.WithLabelValues("stalled")
	l.refused.WithLabelValues("idle")
	return l
}

// Accept returns the next connection within the caps.
func (l *ConnLimiter) Accept() (net.Conn, error) {
	for {
		select {
		case l.slots <- struct{}{}:
		default:
			l.closeIdle()
			select { // waits for a connection to close
			case l.slots <- struct{}{}:
			case <-l.closed:
				return nil, net.ErrClosed
			}
		}
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.slots
			return nil, err
		}
		lc := &limitedConn{Conn: c, l: l, ip: ratelimit.ClientNet(c.RemoteAddr().String())}
		lc.lastRead.Store(l.now())
		over, victim := l.admit(lc)
		if victim != nil {
			victim.Close()
			l.refused.WithLabelValues("stalled").Inc()
		}
		if over {
			c.Close()
			<-l.slots
			l.refused.WithLabelValues("per_ip").Inc()
			continue
		}
		l.open.Inc()
		return lc, nil
	}
}

// admit counts c in its IP's connections. At the per-IP cap it takes the
// place of victim, the IP's connection waiting on its client longest (at
// least minStall in a request, minIdle between requests) whose request is
// not being answered; with no such connection, c is over and not counted.
func (l *ConnLimiter) admit(c *limitedConn) (over bool, victim *limitedConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	conns := l.byIP[c.ip]
	if conns == nil {
		conns = map[*limitedConn]struct{}{}
		l.byIP[c.ip] = conns
	}
	if l.perIP > 0 && len(conns) >= l.perIP {
		// A connection stalled in a request (or before its first) goes
		// first; an idle keep-alive one only after minIdle, since its
		// client may be sending its next request on it as it is closed.
		now := l.now()
		var idle *limitedConn
		stalledSince, idleSince := now-int64(minStall), now-int64(minIdle)
		for o := range conns {
			if o.state.Load() != connWaiting {
				continue
			}
			t := o.lastRead.Load()
			if _, ok := l.idle[o]; ok {
				if t <= idleSince {
					idle, idleSince = o, t
				}
			} else if t <= stalledSince {
				victim, stalledSince = o, t
			}
		}
		if victim == nil {
			victim = idle
		}
		// Its request may have arrived whole since: then it stays.
		if victim == nil || !victim.state.CompareAndSwap(connWaiting, connEvicted) {
			return true, nil
		}
		delete(conns, victim) // its Close finds it gone
		delete(l.idle, victim)
	}
	conns[c] = struct{}{}
	return false, victim
}

// now is the time on the limiter's monotonic clock.
func (l *ConnLimiter) now() int64 { return int64(time.Since(l.epoch)) }

// Close closes the listener; an Accept waiting for room returns.
func (l *ConnLimiter) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// closeIdle closes one idle keep-alive connection, if there is one.
func (l *ConnLimiter) closeIdle() {
	l.mu.Lock()
	var victim net.Conn
	for c := range l.idle {
		victim = c
		delete(l.idle, c)
		break
	}
	l.mu.Unlock()
	if victim != nil {
		l.refused.WithLabelValues("idle").Inc()
		victim.Close()
	}
}

// ConnState tracks which connections are idle, and when a request has been
// answered; set it as the http.Server's ConnState.
func (l *ConnLimiter) ConnState(c net.Conn, state http.ConnState) {
	if lc, ok := c.(*limitedConn); ok && state != http.StateActive {
		lc.state.CompareAndSwap(connAnswering, connWaiting)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if state == http.StateIdle {
		l.idle[c] = struct{}{}
	} else {
		delete(l.idle, c)
	}
}

type connKey struct{}

// ConnContext remembers a request's connection for Handler; set it as the
// http.Server's ConnContext.
func (l *ConnLimiter) ConnContext(ctx context.Context, c net.Conn) context.Context {
	if lc, ok := c.(*limitedConn); ok {
		return context.WithValue(ctx, connKey{}, lc)
	}
	return ctx
}

// Handler marks each request's connection as being answered once the
// request has arrived whole (at once for a request without a body, else
// when its body has been read to its end), so that no new connection
// takes its place however long h takes to answer it.
func (l *ConnLimiter) Handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if lc, ok := r.Context().Value(connKey{}).(*limitedConn); ok {
			if r.Body == nil || r.Body == http.NoBody {
				lc.state.CompareAndSwap(connWaiting, connAnswering)
			} else {
				r.Body = &arrivedBody{ReadCloser: r.Body, c: lc}
			}
		}
		h.ServeHTTP(w, r)
	})
}

// arrivedBody marks its connection as being answered when it has been
// read to its end. If the connection was chosen to make room first, the
// end is an error instead, so the request is not acted on: its client
// sees the connection close, never an event taken without an answer.
type arrivedBody struct {
	io.ReadCloser
	c *limitedConn
}

func (b *arrivedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.c.state.CompareAndSwap(connWaiting, connAnswering) && b.c.state.Load() == connEvicted {
		return n, net.ErrClosed
	}
	return n, err
}

// limitedConn gives its place back when it closes, once, and knows when
// its client last sent something.
type limitedConn struct {
	net.Conn
	l    *ConnLimiter
	ip   string
	once sync.Once
	// lastRead is when a Read last returned bytes (or the connection was
	// accepted), on l's clock.
	lastRead atomic.Int64
	// state: connWaiting, connAnswering (the request has arrived whole and
	// is being answered) or connEvicted (chosen to make room).
	state atomic.Int32
}

const (
	connWaiting int32 = iota
	connAnswering
	connEvicted
)

func (c *limitedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.lastRead.Store(c.l.now())
	}
	return n, err
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		l := c.l
		l.mu.Lock()
		if conns := l.byIP[c.ip]; conns != nil {
			if delete(conns, c); len(conns) == 0 {
				delete(l.byIP, c.ip)
			}
		}
		delete(l.idle, c)
		l.mu.Unlock()
		l.open.Dec()
		<-l.slots
	})
	return err
}
