// Command hookmail relays SMS-gateway webhooks to email.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // timezone works on hosts and images without zoneinfo

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

// Set at build time with -ldflags "-X main.version=… -X main.commit=…".
var (
	version = "dev"
	commit  = ""
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "hookmail:", err)
		os.Exit(1)
	}
}

// errInvalidConfig is returned after the problems have been printed.
var errInvalidConfig = errors.New("the config is invalid (problems listed above)")

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var configPath string
	root := &cobra.Command{
		Use:           "hookmail",
		Short:         "hookmail relays SMS-gateway webhooks to email",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetContext(ctx)
	root.PersistentFlags().StringVar(&configPath, "config", "", "config file (default: $HOOKMAIL_CONFIG, then ./hookmail.yaml if present)")
	configFile := func() string { return resolveConfigPath(configPath, getenv) }
	loadConfig := func() (*config.Config, error) { return config.Load(configFile(), getenv) }
	// serve, its reloads and check report every problem in one pass.
	loadValidConfig := func() (*config.Config, error) { return config.LoadValid(configFile(), getenv) }
	root.AddCommand(
		serveCmd(loadValidConfig, configFile, stderr),
		checkCmd(loadValidConfig, stdout, stderr),
		renderCmd(loadConfig, stdout),
		routeCmd(loadConfig, stdout),
		sendTestCmd(loadConfig, stdout),
		queueCmd(loadConfig, stdout),
		versionCmd(stdout),
	)
	return root.Execute()
}

// resolveConfigPath picks --config, then $HOOKMAIL_CONFIG, then
// ./hookmail.yaml when it exists; "" means defaults and env only.
func resolveConfigPath(flag string, getenv func(string) string) string {
	if flag != "" {
		return flag
	}
	if p := getenv("HOOKMAIL_CONFIG"); p != "" {
		return p
	}
	if _, err := os.Stat("hookmail.yaml"); err == nil {
		return "hookmail.yaml"
	}
	return ""
}

// printProblems lists every problem in err, one a line.
func printProblems(w io.Writer, err error) {
	fmt.Fprintln(w, "config problems:")
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintln(w, "  -", line)
	}
}

// loadValid calls loadValidConfig and prints every problem it reports.
func loadValid(loadValidConfig func() (*config.Config, error), stderr io.Writer) (*config.Config, error) {
	cfg, err := loadValidConfig()
	if err != nil {
		printProblems(stderr, err)
		return nil, errInvalidConfig
	}
	return cfg, nil
}

func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level)) // Validate checked it
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func serveCmd(loadValidConfig func() (*config.Config, error), configFile func() string, stderr io.Writer) *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the relay: receive webhooks, queue them durably, deliver emails",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadValid(loadValidConfig, stderr)
			if err != nil {
				return err
			}
			withFlags := func(c *config.Config) *config.Config {
				if listen != "" {
					c.Listen = listen
				}
				return c
			}
			reload := func() (*config.Config, error) {
				c, err := loadValidConfig()
				if err != nil {
					return nil, err
				}
				return withFlags(c), nil
			}
			return serve(cmd.Context(), withFlags(cfg), reload, configFile(), newLogger(cfg.Log, stderr))
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "address to listen on, overriding the config's listen (e.g. 127.0.0.1:0)")
	return cmd
}

// shutdownTimeout bounds how long in-flight webhook requests may take to
// finish after SIGTERM.
const shutdownTimeout = 15 * time.Second

func serve(ctx context.Context, cfg *config.Config, load func() (*config.Config, error), configFile string, log *slog.Logger) error {
	for _, w := range cfg.Warnings() {
		log.Warn("config: " + w)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	spool, err := interruptible(ctx, func() (*relay.Spool, error) {
		return relay.OpenSpool(cfg.Spool.Dir, time.Now,
			relay.WithLimits(cfg.Spool.MaxEvents, cfg.Spool.MaxBytes), relay.WithDedupWindow(cfg.Dedup.Window))
	})
	if errors.Is(err, errInterrupted) {
		log.Info("stopped during start-up, before taking any webhook")
		return nil
	}
	if err != nil {
		return err
	}
	defer func() {
		if err := spool.Close(); err != nil {
			log.Error("closing the spool", "err", err)
		}
	}()
	sender, err := newSender(cfg, log, reg)
	if err != nil {
		return err
	}
	if c, ok := sender.(interface{ Close() }); ok {
		defer c.Close() // after the workers stop: QUIT the idle SMTP connections
	}
	// New trial-renders every template, which a broken override can make
	// take long.
	r, err := interruptible(ctx, func() (*relay.Relay, error) { return relay.New(cfg, log, reg, spool, sender) })
	if errors.Is(err, errInterrupted) {
		log.Info("stopped during start-up, before taking any webhook")
		return nil
	}
	if err != nil {
		return err
	}
	// Both addresses are bound before either serves, so a taken admin port
	// stops the start before any webhook is taken.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w (set listen, or serve --listen, to a free address such as :8080; is another hookmail running?)", err)
	}
	conns := relay.NewConnLimiter(ln, cfg.Webhook.MaxConnections, cfg.Webhook.MaxConnectionsPerIP, reg)
	var adminLn net.Listener
	if cfg.Admin.Enabled() {
		if adminLn, err = relay.ListenAdmin(cfg); err != nil {
			ln.Close()
			return err
		}
	}
	srv := &http.Server{
		Handler:           r.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ConnState:         conns.ConnState,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 2)
	go func() { serveErr <- srv.Serve(conns) }()
	if adminLn != nil {
		admin := &http.Server{
			Handler:           r.AdminHandler(),
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		go func() {
			if err := admin.Serve(adminLn); !errors.Is(err, http.ErrServerClosed) {
				serveErr <- fmt.Errorf("admin: %w", err)
			}
		}()
		defer admin.Close()
		log.Info("admin endpoint listening", "addr", adminLn.Addr().String())
	}

	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	workDone := make(chan struct{})
	go func() {
		defer close(workDone)
		_ = r.Run(workCtx)
	}()
	delivery := "outbox " + cfg.Outbox.Dir
	if cfg.SMTP.Host != "" {
		delivery = fmt.Sprintf("smtp %s:%d (%s)", cfg.SMTP.Host, cfg.SMTP.Port, cfg.SMTP.TLS)
	}
	log.Info("hookmail listening", "addr", ln.Addr().String(), "webhook", cfg.Webhook.Path,
		"spool", cfg.Spool.Dir, "delivery", delivery, "workers", cfg.SMTP.Workers, "version", version)

	// Reload on SIGHUP and when the config file or a template changes: a
	// config that does not load, validate or render is logged and the one
	// in force stays. Reloads run one at a time on their own goroutine, so
	// a reload that hangs (a template whose trial render never ends) never
	// keeps SIGTERM from stopping hookmail; triggers that come meanwhile
	// make one more reload after it.
	reloads := make(chan string, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case trigger := <-reloads:
				reload(r, load, trigger, log)
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
	if err := config.Watch(watchCtx, configFile, cfg.Templates.Dir, func() { requestReload("file change") }); err != nil {
		log.Warn("cannot watch the config file and templates for changes; reload with SIGHUP", "err", err)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
wait:
	for {
		select {
		case <-ctx.Done():
			err = nil
			break wait
		case err = <-serveErr:
			err = fmt.Errorf("http server: %w", err)
			break wait
		case <-hup:
			requestReload("SIGHUP")
		}
	}
	// Reverse order: stop taking webhooks (letting in-flight ones be stored),
	// then let each worker finish the email in hand, then close the spool.
	log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if serr := srv.Shutdown(shutCtx); serr != nil {
		log.Error("http shutdown", "err", serr)
	}
	stopWork()
	<-workDone
	log.Info("stopped")
	return err
}

// reload loads the config anew and swaps it in, or logs why it is refused.
func reload(r *relay.Relay, load func() (*config.Config, error), trigger string, log *slog.Logger) {
	next, err := load()
	if err == nil {
		var restart []string
		if restart, err = r.Reload(next); err == nil {
			log.Info("config reloaded", "trigger", trigger)
			if len(restart) > 0 {
				log.Warn("config reloaded, but these changes take effect only after a restart", "keys", strings.Join(restart, ", "))
			}
			return
		}
	}
	r.ReloadFailed()
	log.Error("config reload refused; the previous config stays in force", "trigger", trigger, "err", err)
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

// newSender delivers by SMTP when smtp.host is set, else to the outbox.
func newSender(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) (relay.Sender, error) {
	if cfg.SMTP.Host == "" {
		return relay.NewOutbox(cfg.Outbox.Dir)
	}
	return relay.NewSMTPSender(cfg.SMTP, log, reg)
}

func checkCmd(loadValidConfig func() (*config.Config, error), stdout, stderr io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Validate the config and print it, secrets masked",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := loadValid(loadValidConfig, stderr)
			if err != nil {
				return err
			}
			fmt.Fprint(stdout, cfg.YAML())
			for _, w := range cfg.Warnings() {
				fmt.Fprintln(stderr, "warning:", w)
			}
			fmt.Fprintln(stderr, "config is valid")
			return nil
		},
	}
}

func renderCmd(load func() (*config.Config, error), stdout io.Writer) *cobra.Command {
	var ef eventFlags
	cmd := &cobra.Command{
		Use:   "render",
		Short: "Print the email an event would become, as an .eml, sending nothing",
		Example: `  hookmail render --type sms --field phone=+639760713666 --field message="Hello World!"
  hookmail render --body sms-body.txt`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			if err := renderValidate(cfg); err != nil {
				return err
			}
			ev, err := previewEvent(cfg, ef.typ, ef.bodyFile, ef.fields)
			if err != nil {
				return err
			}
			renderer, err := relay.NewRenderer(cfg.Templates.Dir, cfg.Location(), cfg.Routes...)
			if err != nil {
				return fmt.Errorf("templates: %w", err)
			}
			route := relay.NewRouter(cfg.Routes).Match(ev)
			if route == nil {
				return fmt.Errorf("no route takes a %q event: hookmail would move it to the dead letters (add a route without match as a catch-all)", ev.Type)
			}
			msg, err := renderer.Render(ev, route, cfg.SMTP.From)
			if err != nil {
				return err
			}
			return msg.WriteEML(stdout)
		},
	}
	ef.add(cmd)
	return cmd
}

// eventFlags describe the event render and route work on.
type eventFlags struct {
	typ, bodyFile string
	fields        []string
}

func (f *eventFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.typ, "type", "", "event type (sms, whatsapp, ussd, notification, or any other)")
	cmd.Flags().StringArrayVar(&f.fields, "field", nil, "data field as name=value (repeatable)")
	cmd.Flags().StringVar(&f.bodyFile, "body", "", "file holding a raw webhook body (form or JSON); - reads stdin")
}

// routeCmd prints the routes an event would take, sending nothing.
func routeCmd(load func() (*config.Config, error), stdout io.Writer) *cobra.Command {
	var ef eventFlags
	cmd := &cobra.Command{
		Use:   "route",
		Short: "Print which routes an event would take and who would get the email, sending nothing",
		Example: `  hookmail route --type sms --field sim=2 --field message="Your OTP is 1234"
  hookmail route --config hookmail.yaml --body sms-body.txt`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := load()
			if err == nil {
				err = renderValidate(cfg)
			}
			if err != nil {
				return err
			}
			ev, err := previewEvent(cfg, ef.typ, ef.bodyFile, ef.fields)
			if err != nil {
				return err
			}
			routes := relay.NewRouter(cfg.Routes).Routes(ev)
			if len(routes) == 0 {
				fmt.Fprintf(stdout, "no route takes this %s event: it would go to the dead letters (reason \"no route\"); add a route without match as a catch-all\n", ev.Type)
				return nil
			}
			for _, rt := range routes {
				if rt.Drop {
					fmt.Fprintf(stdout, "route %s: dropped (drop: true), no email\n", rt.Name)
					continue
				}
				if d := rt.Digest; d != nil {
					fmt.Fprintf(stdout, "route %s: collected for a digest (every %s, or %d events)\n", rt.Name, d.Every, d.Max())
				} else {
					fmt.Fprintf(stdout, "route %s: email\n", rt.Name)
				}
				for _, l := range []struct {
					name  string
					addrs []string
				}{{"to", rt.To}, {"cc", rt.Cc}, {"bcc", rt.Bcc}} {
					if len(l.addrs) > 0 {
						fmt.Fprintf(stdout, "  %-4s %s\n", l.name+":", strings.Join(l.addrs, ", "))
					}
				}
				if rt.ReplyTo != "" {
					fmt.Fprintf(stdout, "  reply-to: %s\n", rt.ReplyTo)
				}
				if id := relay.ThreadID(ev, cfg.SMTP.From); rt.Threaded() && rt.Digest == nil && id != "" {
					fmt.Fprintf(stdout, "  thread: <%s>\n", id)
				}
			}
			return nil
		},
	}
	ef.add(cmd)
	return cmd
}

// renderValidate checks the config as serve would, except for the webhook
// secret: rendering receives nothing, so it needs none.
func renderValidate(cfg *config.Config) error {
	var kept []error
	if err := cfg.Validate(); err != nil {
		joined, _ := err.(interface{ Unwrap() []error })
		for _, e := range joined.Unwrap() {
			var p *config.Problem
			if errors.As(e, &p) && strings.HasPrefix(p.Key, "webhook.secrets") {
				continue
			}
			kept = append(kept, e)
		}
	}
	return errors.Join(kept...)
}

// previewEvent builds the event render shows, from a raw body and/or flags.
func previewEvent(cfg *config.Config, typ, bodyFile string, fields []string) (*relay.Event, error) {
	ev := &relay.Event{ID: "preview", Source: relay.SourceGateway, Data: map[string]string{}, Received: time.Now()}
	if bodyFile != "" {
		var body []byte
		var err error
		if bodyFile == "-" {
			body, err = io.ReadAll(os.Stdin)
		} else {
			body, err = os.ReadFile(bodyFile)
		}
		if err != nil {
			return nil, err
		}
		contentType := "application/x-www-form-urlencoded"
		if trimmed := bytes.TrimSpace(body); len(trimmed) > 0 && trimmed[0] == '{' {
			contentType = "application/json"
		}
		p, err := relay.DecodePayload(contentType, bytes.NewReader(bytes.TrimSpace(body)), relay.DecodeOptions{UnescapeHTML: cfg.Webhook.UnescapeHTML})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", bodyFile, err)
		}
		ev.Type, ev.Data = relay.NormalizeType(p.Type), p.Data
	}
	for _, f := range fields {
		name, value, ok := strings.Cut(f, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--field %q: write it as name=value", f)
		}
		ev.Data[name] = value
	}
	if typ != "" {
		ev.Type = relay.NormalizeType(typ)
	}
	if ev.Type == "" {
		return nil, errors.New("no event type: give --type, or a --body that has one")
	}
	return ev, nil
}

func sendTestCmd(load func() (*config.Config, error), stdout io.Writer) *cobra.Command {
	var to []string
	cmd := &cobra.Command{
		Use:     "send-test",
		Short:   "Send one test email through smtp.*, printing every step and the server's replies",
		Example: "  hookmail send-test --config hookmail.yaml --to you@example.com",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			if err := renderValidate(cfg); err != nil {
				return err
			}
			if cfg.SMTP.Host == "" {
				return errors.New("smtp.host is empty: set it (and smtp.port, smtp.tls) to the mail server to test")
			}
			for _, addr := range to {
				if _, err := mail.ParseAddress(addr); err != nil {
					return fmt.Errorf("--to %q is not an email address", addr)
				}
			}
			return relay.SendTest(cmd.Context(), cfg.SMTP, to, stdout)
		},
	}
	cmd.Flags().StringArrayVar(&to, "to", nil, "address to send the test email to (required; repeat it for several)")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

// queueCmd inspects and repairs the queue: through the admin endpoint of a
// running hookmail, or in the spool file of a stopped one.
func queueCmd(load func() (*config.Config, error), stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "List, show, retry and drop queued events and dead letters",
		Long: `queue works on the spool of the hookmail --config describes. While that
hookmail runs it talks to its admin endpoint (admin.listen: by default a
socket in spool.dir that only hookmail's user and root can open); when it is
stopped it opens the spool file itself. It never creates a spool, and says on
stderr which endpoint or file it used.`,
	}
	connect := func(c *cobra.Command) (relay.QueueAdmin, error) {
		cfg, err := load()
		if err == nil {
			err = renderValidate(cfg)
		}
		if err != nil {
			printProblems(c.ErrOrStderr(), err)
			return nil, errInvalidConfig
		}
		q, err := relay.ConnectAdmin(c.Context(), cfg)
		if err == nil {
			fmt.Fprintln(c.ErrOrStderr(), "hookmail queue: using the", q.Where())
		}
		return q, err
	}
	// withQueue runs f on the queue, connected for the command and closed
	// after it.
	withQueue := func(f func(c *cobra.Command, q relay.QueueAdmin, args []string) error) func(*cobra.Command, []string) error {
		return func(c *cobra.Command, args []string) error {
			q, err := connect(c)
			if err != nil {
				return err
			}
			defer q.Close()
			return f(c, q, args)
		}
	}
	asJSON := func(v any) error {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}

	var dead, jsonOut bool
	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List waiting events (or dead letters with --dead): id, type, age, attempts, next attempt, last error",
		Args:  cobra.NoArgs,
		RunE: withQueue(func(c *cobra.Command, q relay.QueueAdmin, _ []string) error {
			state := relay.StateWaiting
			if dead {
				state = relay.StateDead
			}
			items, err := q.List(c.Context(), state, limit)
			if err != nil {
				return err
			}
			if jsonOut {
				if items == nil {
					items = []relay.Item{}
				}
				return asJSON(items)
			}
			if err := relay.PrintItems(stdout, items, time.Now()); err != nil {
				return err
			}
			if limit > 0 && len(items) == limit {
				if st, err := q.Stats(c.Context()); err == nil {
					total := st.Depth
					if dead {
						total = st.Dead
					}
					if total > limit {
						fmt.Fprintf(stdout, "(the first %d of %d; --limit 0 lists them all)\n", limit, total)
					}
				}
			}
			return nil
		}),
	}
	list.Flags().BoolVar(&dead, "dead", false, "list the dead letters instead")
	list.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	list.Flags().IntVar(&limit, "limit", 100, "list at most this many (0: all)")

	var showJSON bool
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one event: its fields, history, and the email it renders to now",
		Args:  cobra.ExactArgs(1),
		RunE: withQueue(func(c *cobra.Command, q relay.QueueAdmin, args []string) error {
			d, err := q.Show(c.Context(), args[0])
			if err != nil {
				return err
			}
			if showJSON {
				return asJSON(d)
			}
			return relay.PrintDetail(stdout, d, time.Now())
		}),
	}
	show.Flags().BoolVar(&showJSON, "json", false, "print JSON")

	var allDead bool
	retry := &cobra.Command{
		Use:   "retry ID | --all-dead",
		Short: "Make an event (waiting or dead) due now, or every dead letter with --all-dead",
		Args: func(_ *cobra.Command, args []string) error {
			if (allDead && len(args) == 0) || (!allDead && len(args) == 1) {
				return nil
			}
			return errors.New("give one event ID, or --all-dead alone")
		},
		RunE: withQueue(func(c *cobra.Command, q relay.QueueAdmin, args []string) error {
			if allDead {
				n, err := q.RequeueDead(c.Context())
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "%d dead letter(s) back in the queue, due now\n", n)
				return nil
			}
			if err := q.Requeue(c.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s is due now\n", args[0])
			return nil
		}),
	}
	retry.Flags().BoolVar(&allDead, "all-dead", false, "requeue every dead letter")

	var yes bool
	drop := &cobra.Command{
		Use:   "drop ID --yes",
		Short: "Delete an event or dead letter for good (no email is sent)",
		Args:  cobra.ExactArgs(1),
		PreRunE: func(_ *cobra.Command, args []string) error {
			if !yes {
				return fmt.Errorf("drop deletes %s for good and no email about it is sent; add --yes to confirm", args[0])
			}
			return nil
		},
		RunE: withQueue(func(c *cobra.Command, q relay.QueueAdmin, args []string) error {
			if err := q.Drop(c.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s dropped\n", args[0])
			return nil
		}),
	}
	drop.Flags().BoolVar(&yes, "yes", false, "confirm the drop")

	var statsJSON bool
	stats := &cobra.Command{
		Use:   "stats",
		Short: "Count events by state and type, and the oldest one's age (what the metrics show)",
		Args:  cobra.NoArgs,
		RunE: withQueue(func(c *cobra.Command, q relay.QueueAdmin, _ []string) error {
			st, err := q.Stats(c.Context())
			if err != nil {
				return err
			}
			if statsJSON {
				return asJSON(st)
			}
			return relay.PrintStats(stdout, st, time.Now())
		}),
	}
	stats.Flags().BoolVar(&statsJSON, "json", false, "print JSON")

	cmd.AddCommand(list, show, retry, drop, stats)
	return cmd
}

func versionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print hookmail's version, commit and Go version",
		Args:  cobra.NoArgs,
		Run: func(*cobra.Command, []string) {
			c := commit
			if info, ok := debug.ReadBuildInfo(); ok && c == "" {
				for _, s := range info.Settings {
					if s.Key == "vcs.revision" {
						c = s.Value
					}
				}
			}
			if c == "" {
				c = "unknown"
			}
			fmt.Fprintf(stdout, "hookmail %s (commit %s, %s, %s/%s)\n", version, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}
