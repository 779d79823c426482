package main

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay/app"
	"github.com/hookmail/hookmail/relay/smtp"
)

func (c *cli) serveCmd() *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the relay: receive webhooks, queue them durably, deliver emails",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.load(config.Serve)
			if err != nil {
				return err
			}
			tuneGC(c.getenv)
			withFlags := func(cfg *config.Config) *config.Config {
				if listen != "" {
					cfg.Listen = listen
				}
				return cfg
			}
			reload := func() (*config.Config, error) {
				cfg, err := config.LoadValid(c.configFile(), c.getenv)
				if err != nil {
					return nil, err
				}
				return withFlags(cfg), nil
			}
			return app.Serve(cmd.Context(), app.Options{
				Config: withFlags(cfg), Load: reload, ConfigFile: c.configFile(),
				Log: newLogger(cfg.Log, c.stderr), Version: version,
			})
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "address to listen on, overriding the config's listen (e.g. 127.0.0.1:0)")
	return cmd
}

// serveGOGC is the garbage collector's target (GOGC) serve runs with
// unless GOGC is set. hookmail's live heap is a few MB, under Go's 4 MB
// floor, so at GOGC=100 it collected about 50 times a second while busy,
// a tenth of its CPU; at 400 the heap may grow to about 16 MB between
// collections instead (README.md, Deploying: Memory).
const serveGOGC = 400

func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(serveGOGC)
	}
}

// checkTimeout bounds check's connecting to the queue's database.
const checkTimeout = 10 * time.Second

func (c *cli) checkCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Validate the config and print it, secrets masked",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.load(config.Serve)
			if err != nil {
				return err
			}
			fmt.Fprint(c.stdout, cfg.YAML())
			for _, src := range cfg.Webhook.Sources() {
				secrets, _ := src.AllSecrets() // Validate read them already
				fmt.Fprintf(c.stderr, "source %s: %s webhooks on %s, %d key(s)\n", src.Name, src.Format, src.Path, len(secrets))
			}
			fmt.Fprintln(c.stderr, "admin page:", cfg.AdminPage())
			for _, w := range cfg.Warnings() {
				fmt.Fprintln(c.stderr, "warning:", w)
			}
			if cfg.Queue.Backend == config.BackendPostgres {
				// The URL is checked by using it: connect, and read the
				// schema's version, changing nothing.
				ctx, cancel := context.WithTimeout(cmd.Context(), checkTimeout)
				defer cancel()
				schema, err := app.PostgresSchema(ctx, cfg)
				if err != nil {
					return fmt.Errorf("queue.postgres.url: %w", err)
				}
				fmt.Fprintln(c.stderr, schema)
			}
			fmt.Fprintln(c.stderr, "config is valid")
			return nil
		},
	}
}

func (c *cli) sendTestCmd() *cobra.Command {
	var to []string
	cmd := &cobra.Command{
		Use:     "send-test",
		Short:   "Send one test email through smtp.*, printing every step and the server's replies",
		Example: "  hookmail send-test --config hookmail.yaml --to you@example.com",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.load(config.Tools)
			if err != nil {
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
			return smtp.SendTest(cmd.Context(), cfg.SMTP, to, c.stdout)
		},
	}
	cmd.Flags().StringArrayVar(&to, "to", nil, "address to send the test email to (required; repeat it for several)")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

func (c *cli) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print hookmail's version, commit and Go version",
		Args:  cobra.NoArgs,
		Run: func(*cobra.Command, []string) {
			rev := commit
			if info, ok := debug.ReadBuildInfo(); ok && rev == "" {
				for _, s := range info.Settings {
					if s.Key == "vcs.revision" {
						rev = s.Value
					}
				}
			}
			if rev == "" {
				rev = "unknown"
			}
			fmt.Fprintf(c.stdout, "hookmail %s (commit %s, %s, %s/%s)\n", version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}
