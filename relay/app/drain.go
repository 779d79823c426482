package app

import (
	"net/http"
	"os"
	"os/signal"
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
	s.draining.Store(true)
	start := time.Now()
	s.log.Info("draining: /readyz answers 503 while webhooks are still taken; the port closes after the drain (a second SIGTERM ends it now)", "drain", d)
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

// notReadyWhileDraining answers /readyz with 503 "shutting down" during the
// drain, around next (the cached answer): a load balancer must see the
// change at its next probe, not up to a cache period later.
func notReadyWhileDraining(draining *atomic.Bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": "shutting down"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// closeWhileDraining closes each connection after its answer during the
// drain (Connection: close). A keep-alive connection left idle is closed
// by http.Server.Shutdown at the drain's end, and a client that sends its
// next request on it at that instant gets an error rather than an answer,
// which for a POST it does not retry; closing each connection after an
// answer the client has read leaves no such connection at the end. The
// client's next request opens a new connection, which a load balancer
// sends elsewhere, or which under socket activation waits in the kernel's
// queue once this hookmail stops accepting.
func closeWhileDraining(draining *atomic.Bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
}
