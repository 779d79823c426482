package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/admin"
	"github.com/hookmail/hookmail/relay/app"
)

// listPage is how many items `hookmail queue list` reads at a time: the
// most the admin endpoint gives in one page (smaller in tests).
var listPage = admin.MaxPage

// queueCmd inspects and repairs the queue: through the admin endpoint of a
// running hookmail, or in the spool file of a stopped one.
func (c *cli) queueCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "List, show, retry and drop queued events and dead letters",
		Long: `queue works on the spool of the hookmail --config describes. While that
hookmail runs it talks to its admin endpoint (admin.listen: by default a
socket in spool.dir that only hookmail's user and root can open); when it is
stopped it opens the spool file itself. It never creates a spool, and says on
stderr which endpoint or file it used. queue migrate moves a stopped
hookmail's spool into Postgres, to switch queue.backend.`,
	}
	// withQueue runs f on the queue, connected for the command and closed
	// after it.
	withQueue := func(f func(cmd *cobra.Command, q admin.Queue, args []string) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			cfg, err := c.load(config.Tools)
			if err != nil {
				return err
			}
			q, err := app.ConnectQueue(cmd.Context(), cfg, newLogger(cfg.Log, c.stderr))
			if err != nil {
				return err
			}
			defer q.Close()
			fmt.Fprintln(c.stderr, "hookmail queue: using the", q.Where())
			return f(cmd, q, args)
		}
	}
	asJSON := func(v any) error {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}

	var dead, jsonOut bool
	var limit int
	var typ, after string
	list := &cobra.Command{
		Use:   "list",
		Short: "List waiting events (or dead letters with --dead): id, type, age, attempts, next attempt, last error",
		Args:  cobra.NoArgs,
		RunE: withQueue(func(cmd *cobra.Command, q admin.Queue, _ []string) error {
			f := relay.Filter{State: relay.StateWaiting, Type: typ, After: after}
			if dead {
				f.State = relay.StateDead
			}
			// Page by page, each printed as it comes: a backlog may hold
			// a million events, too many to hold at once here or in the
			// hookmail that answers.
			out := admin.NewItemWriter(c.stdout, jsonOut, time.Now())
			for left := limit; ; {
				f.Limit = listPage
				if limit > 0 {
					f.Limit = min(left, listPage)
				}
				page, err := q.List(cmd.Context(), f)
				if err != nil {
					return err
				}
				if err := out.Write(page.Items); err != nil {
					return err
				}
				left -= len(page.Items)
				if page.Next == "" || len(page.Items) == 0 || (limit > 0 && left <= 0) {
					return out.Close(page.Next)
				}
				f.After = page.Next
			}
		}),
	}
	list.Flags().BoolVar(&dead, "dead", false, "list the dead letters instead")
	list.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	list.Flags().IntVar(&limit, "limit", 100, "list at most this many (0: all)")
	list.Flags().StringVar(&typ, "type", "", "list only events of this type")
	list.Flags().StringVar(&after, "after", "", "list from after this cursor, which a listing that stopped at --limit printed")

	var showJSON bool
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one event: its fields, history, and the email it renders to now",
		Args:  cobra.ExactArgs(1),
		RunE: withQueue(func(cmd *cobra.Command, q admin.Queue, args []string) error {
			d, err := q.Show(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if showJSON {
				return asJSON(d)
			}
			return admin.PrintDetail(c.stdout, d, time.Now())
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
		RunE: withQueue(func(cmd *cobra.Command, q admin.Queue, args []string) error {
			if allDead {
				n, err := q.RequeueDead(cmd.Context(), relay.Filter{})
				if err != nil {
					return err
				}
				fmt.Fprintf(c.stdout, "%d dead letter(s) back in the queue, due now\n", n)
				return nil
			}
			if err := q.Requeue(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "%s is due now\n", args[0])
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
		RunE: withQueue(func(cmd *cobra.Command, q admin.Queue, args []string) error {
			if err := q.Drop(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "%s dropped\n", args[0])
			return nil
		}),
	}
	drop.Flags().BoolVar(&yes, "yes", false, "confirm the drop")

	var statsJSON bool
	stats := &cobra.Command{
		Use:   "stats",
		Short: "Count events by state and type, and the oldest one's age (what the metrics show)",
		Args:  cobra.NoArgs,
		RunE: withQueue(func(cmd *cobra.Command, q admin.Queue, _ []string) error {
			st, err := q.Stats(cmd.Context())
			if err != nil {
				return err
			}
			if statsJSON {
				return asJSON(admin.ViewStats(st))
			}
			return admin.PrintStats(c.stdout, st, time.Now())
		}),
	}
	stats.Flags().BoolVar(&statsJSON, "json", false, "print JSON")

	cmd.AddCommand(list, show, retry, drop, stats, c.queueMigrateCmd())
	return cmd
}
