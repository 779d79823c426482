// Package app runs hookmail: from a config it builds the queue backend,
// the sender, the workers and the listeners, serves until told to stop,
// reloads when asked, and shuts down in order. The CLI calls Serve; the
// parts it wires are the core (relay) and its seams (relay/spool,
// relay/webhook, relay/smtp, relay/outbox, relay/admin, relay/media).
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/admin"
	"github.com/hookmail/hookmail/relay/media"
	"github.com/hookmail/hookmail/relay/webhook"
)

// Options are what Serve runs on.
type Options struct {
	// Config is the validated config to start with.
	Config *config.Config
	// Load loads and validates the config anew, for reloads.
	Load func() (*config.Config, error)
	// ConfigFile is watched for changes ("" when there is none).
	ConfigFile string
	Log        *slog.Logger
	// Version is logged at start.
	Version string
	// Registry holds hookmail's metrics (default: a new one). Tools that
	// document or check the metrics pass their own.
	Registry Registry
}

// Registry is where hookmail's metrics are registered and gathered from.
type Registry interface {
	prometheus.Registerer
	prometheus.Gatherer
}

// ShutdownTimeout bounds how long in-flight webhook requests may take to
// be answered once the drain is over. A service manager's stop timeout must
// allow shutdown.drain + ShutdownTimeout + smtp.timeout (the email in
// hand) before it sends SIGKILL.
const ShutdownTimeout = 15 * time.Second

// server is one running hookmail.
type server struct {
	opts    Options
	cfg     *config.Config // as started: what only a restart changes
	log     *slog.Logger
	reg     Registry
	backend *Backend
	workers *relay.Workers
	// keys are each source's keys in force, by source name; a reload
	// swaps them.
	keys    atomic.Pointer[map[string]webhook.Keys]
	reloads reloadMetrics
	// drainFor is shutdown.drain as last loaded (it reloads: the value in
	// force when SIGTERM comes counts); stopping is set from the drain on.
	drainFor atomic.Int64
	stopping atomic.Bool
}

// Serve runs hookmail until ctx ends, then drains (shutdown.drain: /readyz
// answers 503 while webhooks are still taken, so load balancers stop
// sending), stops taking webhooks, lets each worker finish the email in
// hand, and closes the queue: nothing it accepted is lost. SIGTERM (ctx)
// stops it at once even while a start-up step or a reload hangs.
func Serve(ctx context.Context, o Options) error {
	cfg, log := o.Config, o.Log
	for _, w := range cfg.Warnings() {
		log.Warn("config: " + w)
	}
	reg := o.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// The webhook port is bound first, before the queue opens: from then on
	// the kernel holds the gateway's connections until hookmail serves them
	// (as under socket activation), instead of refusing them while the queue
	// opens (the gateway never retries). Opening the spool is quick after a
	// clean stop, but reads the whole file after a crash; connecting to
	// Postgres may take up to its timeout.
	ln, from, err := webhookListener(cfg, log)
	if err != nil {
		return err
	}
	defer ln.Close() // if the start fails; run closes it otherwise

	backend, err := interruptible(ctx, func() (*Backend, error) { return OpenBackend(cfg, log, false) })
	if errors.Is(err, errInterrupted) {
		log.Info("stopped during start-up, before taking any webhook")
		return nil
	}
	if err != nil {
		return err
	}
	defer func() {
		if err := backend.Close(); err != nil {
			log.Error("closing the queue", "err", err)
		}
	}()
	if err := backend.Check(cfg); err != nil {
		return err
	}
	sender, closeSender, err := NewSender(cfg, log, reg)
	if err != nil {
		return err
	}
	defer closeSender() // after the workers stop: QUIT the idle SMTP connections
	// NewRules trial-renders every template, which a broken override can
	// make take long.
	rules, err := interruptible(ctx, func() (*relay.Rules, error) { return relay.NewRules(cfg) })
	if errors.Is(err, errInterrupted) {
		log.Info("stopped during start-up, before taking any webhook")
		return nil
	}
	if err != nil {
		return err
	}
	// The sources' keys, read again: a secrets_file may have gone since
	// the config was validated, and a source without keys refuses all.
	if _, err := sourceKeys(cfg, nil, nil); err != nil {
		return err
	}
	return newServer(o, reg, rules, backend, sender).run(ctx, ln, from)
}

// newServer wires the workers and the receiver's secrets on backend.
func newServer(o Options, reg Registry, rules *relay.Rules, backend *Backend, sender relay.Sender) *server {
	s := &server{opts: o, cfg: o.Config, log: o.Log, reg: reg, backend: backend, reloads: newReloadMetrics(reg)}
	s.workers = relay.NewWorkers(rules, backend.Queue, backend.Scope(), backend.Digests, backend.Pace, sender, media.NewFetcher(reg), o.Log, reg)
	keys, _ := sourceKeys(o.Config, nil, nil) // Serve read every secrets_file just before
	s.keys.Store(&keys)
	s.drainFor.Store(int64(o.Config.Shutdown.Drain))
	s.reloads.succeeded(time.Now(), "start")
	return s
}

// run binds the admin listener, serves webhooks on ln (which from says
// how hookmail got) and the admin endpoint, and shuts down when ctx ends.
func (s *server) run(ctx context.Context, ln net.Listener, from string) error {
	cfg, log, backend := s.cfg, s.log, s.backend
	// Both addresses are bound before either serves, so a taken admin port
	// stops the start before any webhook is taken.
	var err error
	conns := webhook.NewConnLimiter(ln, cfg.Webhook.MaxConnections, cfg.Webhook.MaxConnectionsPerIP, s.reg)
	var adminLn net.Listener
	if cfg.Admin.Enabled() {
		if adminLn, err = admin.Listen(cfg); err != nil {
			ln.Close()
			return err
		}
	}
	srv := NewHTTPServer(conns.Handler(s.handler(backend.Queue)), log)
	srv.ConnContext = conns.ConnContext
	busy := newBusyConns()
	srv.ConnState = func(c net.Conn, state http.ConnState) {
		conns.ConnState(c, state)
		busy.ConnState(c, state)
	}
	serveErr := make(chan error, 2)
	served := make(chan struct{})
	go func() {
		defer close(served)
		serveErr <- srv.Serve(conns)
	}()
	if adminLn != nil {
		h, err := s.adminHandler()
		if err != nil {
			ln.Close()
			adminLn.Close()
			return err
		}
		adminSrv := NewHTTPServer(h, log)
		adminSrv.WriteTimeout = 2 * time.Minute // a long listing
		go func() {
			if err := adminSrv.Serve(adminLn); !errors.Is(err, http.ErrServerClosed) {
				serveErr <- fmt.Errorf("admin: %w", err)
			}
		}()
		defer adminSrv.Close()
		log.Info("admin endpoint listening", "addr", adminLn.Addr().String())
		if cfg.Admin.Token != "" {
			log.Info("admin page: log in with admin.token", "url", "http://"+adminLn.Addr().String()+"/")
		}
	}

	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	workDone := make(chan struct{})
	go func() {
		defer close(workDone)
		_ = s.workers.Run(workCtx)
	}()
	delivery := "outbox " + cfg.Outbox.Dir
	if cfg.SMTP.Host != "" {
		delivery = fmt.Sprintf("smtp %s:%d (%s)", cfg.SMTP.Host, cfg.SMTP.Port, cfg.SMTP.TLS)
	}
	log.Info("hookmail listening", "addr", ln.Addr().String(), "socket", from, "webhook", cfg.Webhook.Path,
		"queue", backend.Where, "delivery", delivery, "workers", cfg.SMTP.Workers, "version", s.opts.Version)

	err = s.serveUntilDone(ctx, serveErr)
	if err == nil {
		err = s.drain(time.Duration(s.drainFor.Load()), serveErr)
	}
	// Reverse order: stop taking webhooks (answering those accepted), then
	// let each worker finish the email in hand; the caller closes the
	// queue.
	s.stopping.Store(true)
	log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	if serr := closeWebhookPort(shutCtx, srv, conns, served, busy); serr != nil {
		log.Error("http shutdown", "err", serr)
	}
	stopWork()
	<-workDone
	log.Info("stopped")
	return err
}

// serveUntilDone reloads on SIGHUP and when the config file or a template
// changes, until ctx ends or a server fails. Reloads run one at a time on
// their own goroutine, so a reload that hangs (a template whose trial
// render never ends) never keeps SIGTERM from stopping hookmail; triggers
// that come meanwhile make one more reload after it.
func (s *server) serveUntilDone(ctx context.Context, serveErr <-chan error) error {
	reloads := make(chan string, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case trigger := <-reloads:
				s.reload(trigger)
			}
		}
	}()
	requestReload := func(trigger string) {
		select {
		case reloads <- trigger:
		default: // one is pending already, and will read the files as they are then
		}
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	if err := config.Watch(watchCtx, s.opts.ConfigFile, s.cfg.Templates.Dir, func() { requestReload("file change") }); err != nil {
		s.log.Warn("cannot watch the config file and templates for changes; reload with SIGHUP", "err", err)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-serveErr:
			return fmt.Errorf("http server: %w", err)
		case <-hup:
			requestReload("SIGHUP")
		}
	}
}

// errInterrupted is interruptible's error when ctx ended first.
var errInterrupted = errors.New("interrupted")

// interruptible runs a start-up step but returns errInterrupted as soon as
// ctx ends, so SIGTERM stops hookmail at once even while a step hangs. A
// step left running is abandoned: the process is about to exit, and with
// it go whatever the step holds.
func interruptible[T any](ctx context.Context, step func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := step()
		done <- result{v, err}
	}()
	select {
	case res := <-done:
		return res.v, res.err
	case <-ctx.Done():
		var zero T
		return zero, errInterrupted
	}
}

// sourceKeys reads the keys of every source in cfg. A source that was in
// force before (old) but is not in cfg keeps its keys: its path is served
// until a restart.
//
// formats are the formats the running handlers read, by source: a source
// whose format a reload changed keeps its old keys until the restart that
// serves the new format (nil at start).
func sourceKeys(cfg *config.Config, old map[string]webhook.Keys, formats map[string]string) (map[string]webhook.Keys, error) {
	keys := map[string]webhook.Keys{}
	for name, k := range old {
		keys[name] = k
	}
	for _, src := range cfg.Webhook.Sources() {
		if format, ok := formats[src.Name]; ok && format != src.Format {
			continue // its handler reads the old format until a restart: keep the old keys
		}
		secrets, err := src.AllSecrets()
		if err != nil {
			return nil, err
		}
		keys[src.Name] = webhook.NewKeys(secrets)
	}
	return keys, nil
}
