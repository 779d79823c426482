package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/app"
)

// queueMigrateCmd moves a stopped hookmail's spool into Postgres, so
// switching queue.backend loses nothing.
func (c *cli) queueMigrateCmd() *cobra.Command {
	var to string
	cmd := &cobra.Command{
		Use:   "migrate --to postgres",
		Short: "Move a stopped hookmail's spool (waiting events, dead letters, dedup keys, digests) into Postgres",
		Long: `migrate moves everything the spool in spool.dir holds into the Postgres queue
queue.postgres.url names, whatever queue.backend says: waiting events with
their attempts and history, dead letters, dedup keys still in their window,
and the events digest routes collected. Stop hookmail first: the spool must
not change while it is read. A record Postgres holds already is not stored
again, so the command can be run again after a failure or Ctrl-C, and a
second run moves nothing, until hookmail runs on Postgres: what it has
delivered since is gone from the database, and a run then would store it
and email it again. The spool file is only read: delete it yourself once
hookmail runs on Postgres.`,
		Example: "  systemctl stop hookmail\n  hookmail queue migrate --to postgres --config /etc/hookmail/hookmail.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to != config.BackendPostgres {
				return fmt.Errorf("--to %q: the spool can be migrated to postgres only (--to postgres)", to)
			}
			cfg, err := c.load(config.Tools)
			if err != nil {
				return err
			}
			m, err := app.OpenMigration(cmd.Context(), cfg, newLogger(cfg.Log, c.stderr))
			if err != nil {
				return err
			}
			defer m.Close()
			fmt.Fprintf(c.stderr, "hookmail queue migrate: from the %s (only read) to the %s\n", m.From, m.To)
			pp := &progressPrinter{w: c.stderr, every: time.Second, printed: time.Now()}
			p, err := relay.Migrate(cmd.Context(), m.Source, m.Target, pp.update)
			if err != nil {
				fmt.Fprintln(c.stderr, "before the failure:", summary(p))
				return fmt.Errorf("%w; what was moved stays in Postgres, and running the command again moves the rest", err)
			}
			pp.update(p)
			fmt.Fprintln(c.stdout, summary(p))
			fmt.Fprintf(c.stdout, "the %s is left as it was: set queue.backend to postgres, start hookmail, check the queue (hookmail queue stats), then delete the file\n", m.From)
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the backend to move the spool into: postgres")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

// summary counts what a migration moved and what it found there already.
func summary(p relay.MigrationProgress) string {
	counts := func(c relay.MigrationCounts) string {
		return fmt.Sprintf("%d waiting, %d dead, %d dedup keys, %d digest entries", c.Waiting, c.Dead, c.DedupKeys, c.DigestEntries)
	}
	return fmt.Sprintf("moved %s; already there: %s", counts(p.Moved), counts(p.There()))
}

// progressPrinter prints a migration's progress: a line for each kind of
// record when it is done, and one at most every so often while a kind
// takes long.
type progressPrinter struct {
	w     io.Writer
	every time.Duration
	// last is the latest progress, shown the one printed last, at printed.
	last, shown relay.MigrationProgress
	printed     time.Time
}

func (pp *progressPrinter) update(p relay.MigrationProgress) {
	switch {
	case pp.last.Kind != "" && p.Kind != pp.last.Kind && pp.last != pp.shown:
		pp.print(pp.last) // its kind is done
	case p.Kind != "" && p.Read.Of(p.Kind) > 0 && time.Since(pp.printed) >= pp.every:
		pp.print(p)
	}
	pp.last = p
}

func (pp *progressPrinter) print(p relay.MigrationProgress) {
	k := p.Kind
	fmt.Fprintf(pp.w, "%s: %d of %d read, %d moved, %d already there\n", k, p.Read.Of(k), p.Total.Of(k), p.Moved.Of(k), p.There().Of(k))
	pp.shown, pp.printed = p, time.Now()
}
