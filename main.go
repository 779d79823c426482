// Command hookmail relays SMS-gateway webhooks to email.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	_ "time/tzdata" // timezone works on hosts and images without zoneinfo

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
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "hookmail:", err)
		os.Exit(1)
	}
}

// cli is what every command runs with: the OS pieces run was given and the
// --config flag.
type cli struct {
	getenv         func(string) string
	stdin          io.Reader
	stdout, stderr io.Writer
	configFlag     string
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	c := &cli{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "hookmail",
		Short:         "hookmail relays SMS-gateway webhooks to email",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetContext(ctx)
	root.PersistentFlags().StringVar(&c.configFlag, "config", "", "config file (default: $HOOKMAIL_CONFIG, then ./hookmail.yaml if present)")
	root.AddCommand(c.serveCmd(), c.checkCmd(), c.renderCmd(), c.routeCmd(), c.sendTestCmd(), c.queueCmd(), c.versionCmd())
	return root.Execute()
}

// configFile picks --config, then $HOOKMAIL_CONFIG, then ./hookmail.yaml
// when it exists; "" means defaults and env only.
func (c *cli) configFile() string {
	if c.configFlag != "" {
		return c.configFlag
	}
	if p := c.getenv("HOOKMAIL_CONFIG"); p != "" {
		return p
	}
	if _, err := os.Stat("hookmail.yaml"); err == nil {
		return "hookmail.yaml"
	}
	return ""
}

// errInvalidConfig is returned after the problems have been printed.
var errInvalidConfig = errors.New("the config is invalid (problems listed above)")

// load loads and validates the config for use, and prints every problem
// it has, one a line.
func (c *cli) load(use config.Use) (*config.Config, error) {
	cfg, err := config.LoadValidFor(use, c.configFile(), c.getenv)
	if err != nil {
		fmt.Fprintln(c.stderr, "config problems:")
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintln(c.stderr, "  -", line)
		}
		return nil, errInvalidConfig
	}
	return cfg, nil
}

func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level)) // Validate checked it
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(relay.LazyAttrs(slog.NewJSONHandler(w, opts)))
	}
	return slog.New(relay.LazyAttrs(slog.NewTextHandler(w, opts)))
}
