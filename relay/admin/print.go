package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/hookmail/hookmail/relay"
)

// ItemWriter writes a listing as `hookmail queue list` prints it, page by
// page as they are read, so a listing of any length is never held whole:
// a table (or a JSON array), then how many there were.
type ItemWriter struct {
	w      io.Writer
	json   bool
	now    time.Time
	n      int
	headed bool // the table's header is out
}

// NewItemWriter writes to w: a table, or a JSON array of ItemView with
// asJSON.
func NewItemWriter(w io.Writer, asJSON bool, now time.Time) *ItemWriter {
	return &ItemWriter{w: w, json: asJSON, now: now}
}

// Write writes a page of items. A table's columns line up within a page:
// past 1,000 items, a column's width may change from page to page.
func (p *ItemWriter) Write(items []relay.Item) error {
	if p.json {
		for i := range items {
			b, err := json.MarshalIndent(ViewItem(&items[i]), "  ", "  ")
			if err != nil {
				return err
			}
			sep := ",\n  "
			if p.n == 0 {
				sep = "[\n  "
			}
			if _, err := fmt.Fprintf(p.w, "%s%s", sep, b); err != nil {
				return err
			}
			p.n++
		}
		return nil
	}
	tw := tabwriter.NewWriter(p.w, 0, 0, 2, ' ', 0)
	if !p.headed {
		p.headed = true
		fmt.Fprintln(tw, "ID\tTYPE\tSTATE\tAGE\tATTEMPTS\tNEXT ATTEMPT\tLAST ERROR")
	}
	for _, it := range items {
		next := "-"
		switch {
		case it.State == relay.StateDead:
			next = "dead: " + clip(it.DeadReason, 40)
		case it.State == relay.StateDelivering:
			next = "now (delivering)"
		case !it.NextAttempt.After(p.now):
			next = "now"
		default:
			next = "in " + age(it.NextAttempt.Sub(p.now))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", it.Event.ID, relay.OneLine(it.Event.Type), it.State,
			age(p.now.Sub(it.Event.Received)), it.Attempts, next, clip(it.LastError, 60))
	}
	p.n += len(items)
	return tw.Flush()
}

// Close ends the listing: the JSON array, or the table's count and, when
// the listing stopped at its limit, the cursor of the rest (next).
func (p *ItemWriter) Close(next string) error {
	if p.json {
		end := "\n]\n"
		if p.n == 0 {
			end = "[]\n"
		}
		_, err := io.WriteString(p.w, end)
		return err
	}
	if !p.headed {
		if err := p.Write(nil); err != nil { // the header alone
			return err
		}
	}
	if _, err := fmt.Fprintf(p.w, "%d event(s)\n", p.n); err != nil {
		return err
	}
	if next != "" {
		_, err := fmt.Fprintf(p.w, "(more after these: --after %s; --limit 0 lists them all)\n", next)
		return err
	}
	return nil
}

// PrintDetail writes what `hookmail queue show` shows: the event, its
// history, and its email.
func PrintDetail(w io.Writer, d *Detail, now time.Time) error {
	it := d.Item
	ev := it.Event
	fmt.Fprintf(w, "id:           %s\n", ev.ID)
	fmt.Fprintf(w, "type:         %s\n", relay.OneLine(ev.Type))
	fmt.Fprintf(w, "source:       %s\n", ev.Source)
	fmt.Fprintf(w, "state:        %s\n", it.State)
	fmt.Fprintf(w, "received:     %s (%s ago)\n", ev.Received.UTC().Format(time.RFC3339), age(now.Sub(ev.Received)))
	fmt.Fprintf(w, "attempts:     %d\n", it.Attempts)
	if it.State == relay.StateDead {
		fmt.Fprintf(w, "died:         %s: %s\n", it.Died.UTC().Format(time.RFC3339), it.DeadReason)
	} else {
		fmt.Fprintf(w, "next attempt: %s\n", it.NextAttempt.UTC().Format(time.RFC3339))
	}
	if it.LastError != "" {
		fmt.Fprintf(w, "last error:   %s\n", it.LastError)
	}
	if d.Route != "" {
		fmt.Fprintf(w, "route:        %s\n", d.Route)
	}
	fmt.Fprintln(w, "\ndata:")
	for _, k := range slices.Sorted(maps.Keys(ev.Data)) {
		fmt.Fprintf(w, "  %s: %s\n", relay.OneLine(k), clip(ev.Data[k], 200))
	}
	fmt.Fprintln(w, "\nhistory:")
	fmt.Fprintf(w, "  %s  received\n", ev.Received.UTC().Format(time.RFC3339))
	for _, h := range it.History {
		fmt.Fprintf(w, "  %s  %s\n", h.At.UTC().Format(time.RFC3339), relay.OneLine(h.What))
	}
	if d.RenderError != "" {
		_, err := fmt.Fprintf(w, "\nemail: none (%s)\n", d.RenderError)
		return err
	}
	_, err := fmt.Fprintf(w, "\nemail:\n%s", d.Email)
	return err
}

// PrintStats writes what `hookmail queue stats` shows.
func PrintStats(w io.Writer, st relay.Stats, now time.Time) error {
	fmt.Fprintf(w, "waiting:    %d (%d being delivered now)\n", st.Depth, st.Delivering)
	fmt.Fprintf(w, "dead:       %d\n", st.Dead)
	oldest := "-"
	if !st.Oldest.IsZero() {
		oldest = age(now.Sub(st.Oldest)) + " ago"
	}
	fmt.Fprintf(w, "oldest:     %s\n", oldest)
	fmt.Fprintf(w, "stored:     %d bytes\n", st.Bytes)
	if len(st.ByType) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nTYPE\tWAITING\tDEAD")
	for _, t := range slices.Sorted(maps.Keys(st.ByType)) {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", t, st.ByType[t].Waiting, st.ByType[t].Dead)
	}
	return tw.Flush()
}

// age prints a duration the way an operator reads it: 45s, 12m, 3h20m, 2d4h.
func age(d time.Duration) string {
	d = max(d, 0).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

func clip(s string, n int) string { return relay.Truncate(n, relay.OneLine(s)) }
