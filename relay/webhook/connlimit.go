package webhook

import (
	"net"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// ConnLimiter bounds the webhook listener's open connections, in all and
// per client IP (webhook.max_connections, webhook.max_connections_per_ip).
// Each open connection costs a goroutine and its buffers, idle keep-alive
// ones too, so without a bound many clients (or one client with many
// connections) cost memory without end and can hold what the gateway
// needs.
//
// A connection past the per-IP cap is closed at once. At the total cap an
// idle keep-alive connection is closed to make room (clients reconnect for
// their next request, as after an idle timeout); when none is idle, Accept
// waits until a connection closes, and new connections wait in the
// kernel's queue meanwhile rather than being refused. Serve the listener
// with ConnState set as the http.Server's ConnState, so it knows which
// connections are idle.
type ConnLimiter struct {
	net.Listener
	perIP  int
	slots  chan struct{}
	closed chan struct{}
	once   sync.Once

	mu   sync.Mutex
	byIP map[string]int
	idle map[net.Conn]struct{}

	open    prometheus.Gauge
	refused *prometheus.CounterVec
}

// NewConnLimiter wraps ln with the caps (perIP 0: none) and registers its
// metrics on reg.
func NewConnLimiter(ln net.Listener, total, perIP int, reg prometheus.Registerer) *ConnLimiter {
	f := promauto.With(reg)
	l := &ConnLimiter{
		Listener: ln,
		perIP:    perIP,
		slots:    make(chan struct{}, total),
		closed:   make(chan struct{}),
		byIP:     map[string]int{},
		idle:     map[net.Conn]struct{}{},
		open: f.NewGauge(prometheus.GaugeOpts{
			Name: "hookmail_webhook_connections",
			Help: "Connections open now on the webhook port.",
		}),
		refused: f.NewCounterVec(prometheus.CounterOpts{
			Name: "hookmail_webhook_connections_closed_total",
			Help: "Connections the webhook port closed to keep within its caps: per_ip (a client past webhook.max_connections_per_ip), idle (a keep-alive connection closed to make room under webhook.max_connections).",
		}, []string{"reason"}),
	}
	l.refused.WithLabelValues("per_ip")
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
		ip := clientIP(c.RemoteAddr().String())
		l.mu.Lock()
		over := l.perIP > 0 && l.byIP[ip] >= l.perIP
		if !over {
			l.byIP[ip]++
		}
		l.mu.Unlock()
		if over {
			c.Close()
			<-l.slots
			l.refused.WithLabelValues("per_ip").Inc()
			continue
		}
		l.open.Inc()
		return &limitedConn{Conn: c, l: l, ip: ip}, nil
	}
}

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

// ConnState tracks which connections are idle; set it as the
// http.Server's ConnState.
func (l *ConnLimiter) ConnState(c net.Conn, state http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if state == http.StateIdle {
		l.idle[c] = struct{}{}
	} else {
		delete(l.idle, c)
	}
}

// limitedConn gives its place back when it closes, once.
type limitedConn struct {
	net.Conn
	l    *ConnLimiter
	ip   string
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		l := c.l
		l.mu.Lock()
		if l.byIP[c.ip]--; l.byIP[c.ip] <= 0 {
			delete(l.byIP, c.ip)
		}
		delete(l.idle, c)
		l.mu.Unlock()
		l.open.Dec()
		<-l.slots
	})
	return err
}
