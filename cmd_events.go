package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/webhook"
)

// eventFlags describe the event render and route work on.
type eventFlags struct {
	typ, bodyFile               string
	fields                      []string
	source, format, contentType string
	headers                     []string
}

func (f *eventFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.typ, "type", "", "event type (sms, mms, status, whatsapp, ussd, notification, or any other)")
	cmd.Flags().StringArrayVar(&f.fields, "field", nil, "data field as name=value (repeatable)")
	cmd.Flags().StringVar(&f.bodyFile, "body", "", "file holding a raw webhook body; - reads stdin")
	cmd.Flags().StringVar(&f.format, "format", "", "decode --body in this format: "+strings.Join(config.SourceFormats, ", ")+" (default zender, or --source's)")
	cmd.Flags().StringVar(&f.source, "source", "", "the webhook source (webhook.sources[].name) the event comes from: its format and name")
	cmd.Flags().StringVar(&f.contentType, "content-type", "", "the body's Content-Type (default: JSON when it starts with {, else a form)")
	cmd.Flags().StringArrayVar(&f.headers, "header", nil, `a request header the format reads, as "Name: value" (repeatable), e.g. "X-Event-Type: message.phone.received"`)
}

// preview loads the config (no webhook secret needed: nothing is
// received) and builds the event the flags describe, with the rules that
// would route and render it.
func (c *cli) preview(f *eventFlags) (*relay.Rules, *relay.Event, error) {
	cfg, err := c.load(config.Tools)
	if err != nil {
		return nil, nil, err
	}
	ev, err := c.previewEvent(cfg, f)
	if err != nil {
		return nil, nil, err
	}
	rules, err := relay.NewRules(cfg)
	return rules, ev, err
}

// previewEvent builds the event render and route show, from a raw body
// decoded as the receiver decodes it, and the flags.
func (c *cli) previewEvent(cfg *config.Config, f *eventFlags) (*relay.Event, error) {
	src, err := f.sourceOf(cfg)
	if err != nil {
		return nil, err
	}
	ev := &relay.Event{Source: src.Name, Format: src.Format, Data: map[string]string{}}
	if f.bodyFile != "" {
		var body []byte
		var err error
		if f.bodyFile == "-" {
			body, err = io.ReadAll(c.stdin)
		} else {
			body, err = os.ReadFile(f.bodyFile)
		}
		if err != nil {
			return nil, err
		}
		body = bytes.TrimSpace(body)
		contentType := f.contentType
		if contentType == "" {
			contentType = "application/x-www-form-urlencoded"
			if len(body) > 0 && body[0] == '{' {
				contentType = "application/json"
			}
		}
		header := http.Header{}
		for _, h := range f.headers {
			name, value, ok := strings.Cut(h, ":")
			if !ok || strings.TrimSpace(name) == "" {
				return nil, fmt.Errorf("--header %q: write it as \"Name: value\"", h)
			}
			header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
		}
		ev, err = webhook.Preview(src, contentType, header, body, webhook.DecodeOptions{UnescapeHTML: cfg.Webhook.UnescapeHTML})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.bodyFile, err)
		}
	}
	ev.ID, ev.Received = "preview", time.Now()
	if ev.Data == nil {
		ev.Data = map[string]string{}
	}
	for _, field := range f.fields {
		name, value, ok := strings.Cut(field, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--field %q: write it as name=value", field)
		}
		ev.Data[name] = value
	}
	if f.typ != "" {
		ev.Type = relay.NormalizeType(f.typ)
	}
	if ev.Type == "" {
		return nil, errors.New("no event type: give --type, or a --body that has one")
	}
	return ev, nil
}

// sourceOf is the source the flags name: --source's, or one of --format
// (default zender) named after it.
func (f *eventFlags) sourceOf(cfg *config.Config) (config.Source, error) {
	src, err := webhook.PreviewSource(cfg, f.source, f.format)
	if err != nil {
		return src, fmt.Errorf("--%w", err) // "--source ..." or "--format ..."
	}
	return src, nil
}

func (c *cli) renderCmd() *cobra.Command {
	var ef eventFlags
	cmd := &cobra.Command{
		Use:   "render",
		Short: "Print the email an event would become, as an .eml, sending nothing",
		Example: `  hookmail render --type sms --field phone=+639760713666 --field message="Hello World!"
  hookmail render --body sms-body.txt
  hookmail render --format twilio --body twilio-body.txt
  hookmail render --source android --body smsgate-mms.json`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			rules, ev, err := c.preview(&ef)
			if err != nil {
				return err
			}
			route := rules.Router.Match(ev)
			if route == nil {
				return fmt.Errorf("no route takes a %q event: hookmail would move it to the dead letters (add a route without match as a catch-all)", ev.Type)
			}
			msg, err := rules.Renderer.Render(ev, route, rules.Config.SMTP.From)
			if err != nil {
				return err
			}
			return msg.WriteEML(c.stdout)
		},
	}
	ef.add(cmd)
	return cmd
}

// routeCmd prints the routes an event would take, sending nothing.
func (c *cli) routeCmd() *cobra.Command {
	var ef eventFlags
	cmd := &cobra.Command{
		Use:   "route",
		Short: "Print which routes an event would take and who would get the email, sending nothing",
		Example: `  hookmail route --type sms --field sim=2 --field message="Your OTP is 1234"
  hookmail route --config hookmail.yaml --body sms-body.txt`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			rules, ev, err := c.preview(&ef)
			if err != nil {
				return err
			}
			routes := rules.Router.Routes(ev)
			if len(routes) == 0 {
				fmt.Fprintf(c.stdout, "no route takes this %s event: it would go to the dead letters (reason \"no route\"); add a route without match as a catch-all\n", ev.Type)
				return nil
			}
			for _, rt := range routes {
				c.printRoute(rt, ev, rules.Config.SMTP.From)
			}
			return nil
		},
	}
	ef.add(cmd)
	return cmd
}

// printRoute says what route rt does with ev.
func (c *cli) printRoute(rt *config.Route, ev *relay.Event, from string) {
	w := c.stdout
	if rt.Drop {
		fmt.Fprintf(w, "route %s: dropped (drop: true), no email\n", rt.Name)
		return
	}
	if d := rt.Digest; d != nil {
		fmt.Fprintf(w, "route %s: collected for a digest (every %s, or %d events)\n", rt.Name, d.Every, d.Max())
	} else if s := rt.Storm; s != nil {
		fmt.Fprintf(w, "route %s: email; past %d of one conversation in %s, the rest of the window in one digest (storm)\n", rt.Name, s.Threshold, s.Window)
	} else {
		fmt.Fprintf(w, "route %s: email\n", rt.Name)
	}
	for _, l := range []struct {
		name  string
		addrs []string
	}{{"to", rt.To}, {"cc", rt.Cc}, {"bcc", rt.Bcc}} {
		if len(l.addrs) > 0 {
			fmt.Fprintf(w, "  %-4s %s\n", l.name+":", strings.Join(l.addrs, ", "))
		}
	}
	if rt.ReplyTo != "" {
		fmt.Fprintf(w, "  reply-to: %s\n", rt.ReplyTo)
	}
	if r, ok := rt.PaceRate(); ok {
		fmt.Fprintf(w, "  rate: %s, one email every %s at most\n", r, r.Every())
	}
	if rt.Priority > 0 {
		fmt.Fprintf(w, "  priority: %d, before older emails of lower routes when emails wait\n", rt.Priority)
	}
	if id := relay.ThreadID(ev, from); rt.Threaded() && rt.Digest == nil && id != "" {
		fmt.Fprintf(w, "  thread: <%s>\n", id)
	}
}
