package app

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// drain keeps taking webhooks for d after SIGTERM while /readyz answers
// 503 "shutting down", so that load balancers and Kubernetes take hookmail
// out of rotation before its port closes: the gateway never retries, and a
// webhook sent to a closed port is lost. It returns early on a second
// SIGTERM or SIGINT (an operator who wants hookmail gone now; the shutdown
// after the drain still stores what is in flight and finishes the email in
// hand), or when a server fails (its error). d <= 0 is no drain.
func (s *server) drain(d time.Duration, serveErr <-chan error) error {
	if d <= 0 {
		return nil
	}
	// Registered now, after the first signal was handed out (signal
	// delivery and Notify take the same lock), so only a later one arrives.
	again := make(chan os.Signal, 1)
	signal.Notify(again, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(again)
	s.stopping.Store(true)
	start := time.Now()
	s.log.Info("draining: /readyz answers 503 while webhooks are still taken; the port closes after the drain (a second SIGTERM or Ctrl-C ends it now)", "drain", d)
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		s.log.Info("drain over", "took", time.Since(start).Round(time.Millisecond))
	case sig := <-again:
		s.log.Info("drain cut short", "signal", sig.String(), "took", time.Since(start).Round(time.Millisecond))
	case err := <-serveErr:
		return err
	}
	return nil
}

// notReadyWhileStopping answers /readyz with 503 "shutting down" from the
// drain on, around next (the cached answer): a load balancer must see the
// change at its next probe, not up to a cache period later.
func notReadyWhileStopping(stopping *atomic.Bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if stopping.Load() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": "shutting down"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// closeWhileStopping closes each connection after its answer from the
// drain on (Connection: close). A keep-alive connection left idle is closed
// by http.Server.Shutdown at the drain's end, and a client that sends its
// next request on it at that instant gets an error rather than an answer,
// which for a POST it does not retry; closing each connection after an
// answer the client has read leaves no such connection at the end. The
// client's next request opens a new connection, which a load balancer
// sends elsewhere, or which under socket activation waits in the kernel's
// queue once this hookmail stops accepting.
func closeWhileStopping(stopping *atomic.Bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if stopping.Load() {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
}

// closeWebhookPort stops taking webhooks: it closes the listener, lets
// every connection already accepted have its request answered, and then
// shuts srv down, which closes the idle ones and waits for the rest, all
// within ctx. http.Server.Shutdown alone would close the listener and then
// drop, unanswered, a request it reads after it began: one that arrived on
// a connection accepted a moment before. Connections not yet accepted stay
// in the kernel's queue, which under socket activation outlives this
// process: the next hookmail answers them. served is closed when srv.Serve
// has returned, after which no connection is accepted any more.
func closeWebhookPort(ctx context.Context, srv *http.Server, ln io.Closer, served <-chan struct{}, busy *busyConns) error {
	ln.Close()
	select {
	case <-served:
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for busy.count() > 0 && ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
	case <-ctx.Done():
	}
	return srv.Shutdown(ctx)
}

// busyConns knows the webhook port's connections that were accepted and
// not yet answered: those whose request has not been read (new) and those
// being answered (active). Set its ConnState as the http.Server's.
type busyConns struct {
	mu   sync.Mutex
	busy map[net.Conn]struct{}
}

func newBusyConns() *busyConns { return &busyConns{busy: map[net.Conn]struct{}{}} }

// ConnState tracks c's state.
func (b *busyConns) ConnState(c net.Conn, state http.ConnState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch state {
	case http.StateNew, http.StateActive:
		b.busy[c] = struct{}{}
	default:
		delete(b.busy, c)
	}
}

func (b *busyConns) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.busy)
}
