package web

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/webhook"
)

// takeView is what the routes do with an event, as `hookmail route`
// prints it, and the email it becomes, as `hookmail render` prints it.
type takeView struct {
	Routes []routeTake
	// Route is the route whose email Email is: the first that emails the
	// event (none when every route that takes it drops it).
	Route string
	Email *relay.Message
	// EmailErr says why the email could not be made.
	EmailErr string
	// Frame is the address of the email's HTML part, for a sandboxed frame.
	Frame string
}

// routeTake is one route that takes an event, and what it does with it.
type routeTake struct {
	Name        string
	Drop        bool
	Every       string // the digest's window, "" when the route emails each event
	Max         int
	To, Cc, Bcc []string
	ReplyTo     string
	// Thread is the conversation's id, when the route threads its emails.
	Thread string
}

// take routes ev by rules and renders its email, sending nothing.
func take(rules *relay.Rules, ev *relay.Event) takeView {
	var v takeView
	from := rules.Config.SMTP.From
	for _, rt := range rules.Router.Routes(ev) {
		t := routeTake{Name: rt.Name, Drop: rt.Drop, To: rt.To, Cc: rt.Cc, Bcc: rt.Bcc, ReplyTo: rt.ReplyTo}
		if d := rt.Digest; d != nil {
			t.Every, t.Max = d.Every.String(), d.Max()
		}
		if id := relay.ThreadID(ev, from); !rt.Drop && rt.Threaded() && rt.Digest == nil {
			t.Thread = id
		}
		v.Routes = append(v.Routes, t)
	}
	rt := rules.Router.Match(ev)
	if rt == nil {
		return v
	}
	v.Route = rt.Name
	msg, err := rules.Renderer.Render(ev, rt, from)
	if err != nil {
		v.EmailErr = err.Error()
		return v
	}
	v.Email = msg
	return v
}

// routesView is the routes page: the routes in force, and the form to try
// an event on them.
type routesView struct {
	Routes  []routeRow
	Sources []string
	Formats []string
	Form    tryInput
	// Tried is set once an event was tried: the event, what the routes do
	// with it, or why it could not be made.
	Tried    bool
	Event    *relay.Event
	Fields   []field
	Take     takeView
	TryError string
}

// routeRow is one route of the config.
type routeRow struct {
	*config.Route
	Match []field
}

// tryInput is the try form's fields.
type tryInput struct {
	Source, Format, Type, Fields, Body, ContentType, Headers string
}

func (s *server) routesPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "routes", "Routes", s.routesData(tryInput{}))
}

func (s *server) routesData(in tryInput) routesView {
	cfg := s.Rules().Config
	v := routesView{Form: in, Formats: config.SourceFormats}
	for i := range cfg.Routes {
		row := routeRow{Route: &cfg.Routes[i]}
		for k, val := range cfg.Routes[i].Match {
			row.Match = append(row.Match, field{k, val})
		}
		slices.SortFunc(row.Match, func(a, b field) int { return strings.Compare(a.Name, b.Name) })
		v.Routes = append(v.Routes, row)
	}
	for _, src := range cfg.Webhook.Sources() {
		v.Sources = append(v.Sources, src.Name)
	}
	return v
}

// try shows what the routes in force do with the event the form
// describes, and the email it becomes, sending nothing.
func (s *server) try(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	in := tryInput{Source: f.Get("source"), Format: f.Get("format"), Type: f.Get("type"), Fields: f.Get("fields"),
		Body: f.Get("body"), ContentType: f.Get("content_type"), Headers: f.Get("headers")}
	rules := s.Rules()
	v := s.routesData(in)
	v.Tried = true
	ev, err := s.tryEvent(rules.Config, in)
	if err != nil {
		v.TryError = err.Error()
		s.render(w, r, http.StatusUnprocessableEntity, "routes", "Routes", v)
		return
	}
	v.Event = ev
	for _, name := range ev.FieldNames() {
		v.Fields = append(v.Fields, field{name, ev.Data[name]})
	}
	v.Take = take(rules, ev)
	if v.Take.Email != nil && v.Take.Email.HTML != "" {
		v.Take.Frame = "/previews/" + s.sessions.keepPreview(sessionOf(r), v.Take.Email.HTML) + "/email.html"
	}
	s.render(w, r, http.StatusOK, "routes", "Routes", v)
}

// tryEvent builds the event the try form describes, as `hookmail route`
// builds it from its flags: a raw body decoded as its source's format
// decodes it, then the fields and the type on top.
func (s *server) tryEvent(cfg *config.Config, in tryInput) (*relay.Event, error) {
	src, err := webhook.PreviewSource(cfg, in.Source, in.Format)
	if err != nil {
		return nil, err
	}
	ev := &relay.Event{Source: src.Name, Format: src.Format}
	if body := strings.TrimSpace(in.Body); body != "" {
		contentType := strings.TrimSpace(in.ContentType)
		if contentType == "" {
			contentType = "application/x-www-form-urlencoded"
			if body[0] == '{' {
				contentType = "application/json"
			}
		}
		header := http.Header{}
		for line := range strings.Lines(in.Headers) {
			if strings.TrimSpace(line) == "" {
				continue
			}
			name, value, ok := strings.Cut(line, ":")
			if !ok || strings.TrimSpace(name) == "" {
				return nil, fmt.Errorf("headers: write each as \"Name: value\", not %q", strings.TrimSpace(line))
			}
			header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
		}
		ev, err = webhook.Preview(src, contentType, header, []byte(body), webhook.DecodeOptions{UnescapeHTML: cfg.Webhook.UnescapeHTML})
		if err != nil {
			return nil, fmt.Errorf("body: %w", err)
		}
	}
	ev.ID, ev.Received = "preview", s.Now()
	if ev.Data == nil {
		ev.Data = map[string]string{}
	}
	for line := range strings.Lines(in.Fields) {
		line = strings.TrimRight(line, "\r\n")
		if strings.TrimSpace(line) == "" {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if name = strings.TrimSpace(name); !ok || name == "" {
			return nil, fmt.Errorf("fields: write each as name=value, not %q", line)
		}
		ev.Data[name] = value
	}
	if t := strings.TrimSpace(in.Type); t != "" {
		ev.Type = relay.NormalizeType(t)
	}
	if ev.Type == "" {
		return nil, errors.New("no event type: give a type, or a raw body that has one")
	}
	return ev, nil
}

// previewEmail is the HTML of an email the try form rendered, for its
// sandboxed frame: kept with the session that tried it.
func (s *server) previewEmail(w http.ResponseWriter, r *http.Request) {
	html, ok := s.sessions.preview(sessionOf(r), r.PathValue("id"))
	if !ok {
		http.Error(w, "this preview is gone; try the event again", http.StatusNotFound)
		return
	}
	frameHeaders(w)
	_, _ = w.Write([]byte(html))
}
