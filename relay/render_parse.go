package relay

import (
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	texttemplate "text/template"
	"time"
	"unicode/utf8"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/templates"
)

// NewRenderer parses the embedded templates, each overridden by a file of
// the same name in overrideDir when that is set. A template that does not
// parse is an error naming its file and line; one that is not a regular
// file of at most 1 MiB, or not valid UTF-8, an error naming the file.
//
// Each of routes' own subject templates is parsed, and each template set a
// route names (template: NAME) is read from overrideDir; any that does not
// parse or exist is an error naming the route.
//
// Every template is then rendered once on a sample event (see trial), with
// DefaultRenderTimeout per render.
func NewRenderer(overrideDir string, loc *time.Location, routes ...config.Route) (*Renderer, error) {
	return newRenderer(overrideDir, loc, DefaultRenderTimeout, routes)
}

func newRenderer(overrideDir string, loc *time.Location, timeout time.Duration, routes []config.Route) (*Renderer, error) {
	// readIn reads a template from dir when it has one, else from
	// fallback.
	readIn := func(dir, name string, fallback func(string) (string, error)) (string, bool, error) {
		if dir != "" && fs.ValidPath(name) {
			path := filepath.Join(dir, name)
			b, err := config.ReadRegularFile(path, maxTemplateFileBytes)
			switch {
			case err == nil && !utf8.Valid(b):
				return "", false, fmt.Errorf("template %s: is not valid UTF-8; save it as UTF-8", path)
			case err == nil:
				return string(b), true, nil
			case !errors.Is(err, fs.ErrNotExist):
				return "", false, fmt.Errorf("template %s: %w", path, err)
			}
		}
		src, err := fallback(name)
		return src, false, err
	}
	read := func(name string) (string, error) {
		if overrideDir != "" && fs.ValidPath(name) {
			path := filepath.Join(overrideDir, name)
			b, err := config.ReadRegularFile(path, maxTemplateFileBytes)
			switch {
			case err == nil && !utf8.Valid(b):
				return "", fmt.Errorf("template %s: is not valid UTF-8; save it as UTF-8", path)
			case err == nil:
				return string(b), nil
			case !errors.Is(err, fs.ErrNotExist):
				return "", fmt.Errorf("template %s: %w", path, err)
			}
		}
		b, err := fs.ReadFile(templates.FS, name)
		return string(b), err
	}
	parseText := func(name string, read func(string) (string, error)) (*texttemplate.Template, error) {
		src, err := read(name)
		if err != nil {
			return nil, err
		}
		return texttemplate.New(name).Funcs(textFuncs).Option("missingkey=zero").Parse(src)
	}
	layoutSrc, err := read(layoutFile)
	if err != nil {
		return nil, err
	}
	layout, err := htmltemplate.New(layoutFile).Funcs(htmlFuncs).Option("missingkey=zero").Parse(layoutSrc)
	if err != nil {
		return nil, err
	}
	r := &Renderer{loc: loc, sets: map[string]*templateSet{}, subjects: map[string]*texttemplate.Template{}, timeout: timeout}
	names := slices.Concat(KnownTypes, []string{GenericTemplate, DigestTemplate})
	for _, rt := range routes {
		if rt.Template != "" && !slices.Contains(names, rt.Template) {
			names = append(names, rt.Template)
		}
		if rt.Subject != "" {
			t, err := texttemplate.New("routes." + rt.Name + ".subject").Funcs(textFuncs).Option("missingkey=zero").Parse(rt.Subject)
			if err != nil {
				return nil, fmt.Errorf("route %q: subject: %w", rt.Name, err)
			}
			r.subjects[rt.Name] = t
		}
	}
	build := func(typ string, read func(string) (string, error)) (*templateSet, error) {
		set := &templateSet{sizes: new([3]atomic.Int64)}
		var err error
		if set.subject, err = parseText(typ+".subject.tmpl", read); err != nil {
			return nil, err
		}
		if set.text, err = parseText(typ+".text.tmpl", read); err != nil {
			return nil, err
		}
		name := typ + ".html.tmpl"
		src, err := read(name)
		if err != nil {
			return nil, err
		}
		// Each type defines the same block names, so each gets its own copy
		// of the layout.
		h, err := layout.Clone()
		if err != nil {
			return nil, err
		}
		if set.html, err = h.New(name).Parse(src); err != nil {
			return nil, err
		}
		return set, nil
	}
	for _, typ := range names {
		if r.sets[typ], err = build(typ, read); err != nil {
			return nil, err
		}
	}
	// A format's own templates: templates.dir/<format>/<type>.<part>.tmpl
	// overrides the type's templates for events of that format (the rest
	// of the set comes from templates.dir, then the embedded ones).
	if overrideDir != "" {
		for _, format := range Formats {
			dir := filepath.Join(overrideDir, format)
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				continue
			}
			for _, typ := range names {
				own := false
				readOwn := func(name string) (string, error) {
					src, found, err := readIn(dir, name, read)
					own = own || found
					return src, err
				}
				set, err := build(typ, readOwn)
				if err != nil {
					return nil, err
				}
				if own {
					r.sets[format+"/"+typ] = set
				}
			}
		}
	}
	if err := r.trial(); err != nil {
		return nil, err
	}
	return r, nil
}

// trial renders a sample event of every type once, with a file of each
// kind (trialFiles), so a template that parses but cannot run (a
// misspelled method, a missing block, an HTML escaping error, a loop past
// the render timeout, output past an email's size) stops start-up, or a
// reload, instead of failing every event.
func (r *Renderer) trial() error {
	route := &config.Route{Name: "trial", To: []string{"trial@example.com"}}
	for typ := range r.sets {
		if typ == DigestTemplate {
			continue // trialled below, with a digest
		}
		// Each set once as zender's, once as another format's, whose
		// content (attachments too) is its own.
		format, bare, own := strings.Cut(typ, "/")
		formats := []string{format}
		if !own {
			bare, formats = typ, []string{FormatZender, FormatSMSGate}
		}
		data := map[string]string{}
		for _, name := range fieldOrder[bare] {
			data[name] = "1"
		}
		for _, format := range formats {
			ev := &Event{ID: "trial", Type: bare, Format: format, Data: data, Received: time.Unix(0, 0),
				Content: Content{From: "1", To: "1", Text: "1", MessageID: "1", Status: "delivered", Attachments: trialFiles}}
			if _, err := r.renderSet(r.sets[typ], ev, route, "trial@example.com", trialFiles); err != nil {
				return fmt.Errorf("%s templates do not render: %w", typ, err)
			}
		}
	}
	trialEv := &Event{ID: "trial", Type: TypeSMS, Data: map[string]string{"phone": "1", "message": "1"}, Received: time.Unix(0, 0)}
	for _, storm := range []bool{false, true} {
		if _, err := r.renderDigest([]DigestEntry{{Event: *trialEv}}, route, "trial@example.com", storm); err != nil {
			return fmt.Errorf("digest templates do not render: %w", err)
		}
	}
	for name, t := range r.subjects {
		view := &View{ID: "trial", Type: TypeSMS, Route: name, Time: time.Unix(0, 0), Data: map[string]string{"phone": "1"}}
		_, err := r.execute(t.Name(), time.Now().Add(r.timeout), maxSubjectOutput, func(w io.Writer) error { return t.Execute(w, view) })
		if err != nil && !errors.Is(err, errTooLarge) {
			return fmt.Errorf("route %q: subject does not render: %w", name, err)
		}
	}
	return nil
}

// trialFiles are the files of the trial's events, one of each kind the
// templates show: attached, linked with a note, and left out.
var trialFiles = planAttachments([]Attachment{
	{Name: "1.jpg", ContentType: "image/jpeg", Data: []byte("1")},
	{URL: "https://example.com/1", ContentType: "image/png", Note: "1"},
	{Name: "2.jpg", Data: []byte("2"), Note: "1"},
}, MaxEmailBytes)
