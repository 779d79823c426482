package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFS embed.FS

// staticFiles serves the style sheet and the script. They change with
// hookmail's version only, so browsers ask again at most hourly.
func staticFiles() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r) // no listing of the files
			return
		}
		w.Header().Set("Cache-Control", "max-age=3600")
		files.ServeHTTP(w, r)
	})
}

// templates are the pages, each parsed with the layout, by name.
type templates map[string]*template.Template

// parseTemplates parses every page with layout.html. A page file defines
// "main"; a file whose name starts with "_" is a part the pages include.
func parseTemplates(funcs template.FuncMap) (templates, error) {
	parts, err := fs.Glob(templateFiles, "templates/_*.html")
	if err != nil {
		return nil, err
	}
	pages, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := templates{}
	for _, p := range pages {
		name := strings.TrimSuffix(path.Base(p), ".html")
		if name == "layout" || strings.HasPrefix(name, "_") {
			continue
		}
		files := append([]string{"templates/layout.html", p}, parts...)
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFiles, files...)
		if err != nil {
			return nil, err
		}
		out[name] = t
	}
	return out, nil
}

// layout is what the layout shows around every page.
type layout struct {
	Title string
	// Nav names the page of the navigation that is this one.
	Nav string
	// CSRF is the session's token for the page's forms; empty when
	// logged out.
	CSRF string
	// Done says what an action just did.
	Done string
	Page any
}

// render writes the page name with data, its navigation entry the same.
func (s *server) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	s.renderPage(w, r, status, name, name, title, data)
}

// renderNav writes the page name with data as the navigation's entry nav.
func (s *server) renderNav(w http.ResponseWriter, r *http.Request, name, nav, title string, data any) {
	s.renderPage(w, r, http.StatusOK, name, nav, title, data)
}

// renderPage writes the page name with data, or a plain 500 when it does
// not render (a bug: the test of every page would fail).
func (s *server) renderPage(w http.ResponseWriter, r *http.Request, status int, name, nav, title string, data any) {
	l := layout{Title: title, Nav: nav, Page: data, Done: doneMessage(r)}
	if sess := sessionOf(r); sess != nil {
		l.CSRF = sess.csrf
	}
	var buf bytes.Buffer
	if err := s.pages[name].ExecuteTemplate(&buf, "layout.html", l); err != nil {
		s.Log.Error("admin page: a page does not render", "page", name, "err", err)
		http.Error(w, "the page does not render; see hookmail's log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// renderPart writes one template of a page alone: the overview's
// refresh.
func (s *server) renderPart(w http.ResponseWriter, page, part string, data any) {
	var buf bytes.Buffer
	if err := s.pages[page].ExecuteTemplate(&buf, part, data); err != nil {
		s.Log.Error("admin page: a part does not render", "part", part, "err", err)
		http.Error(w, "the part does not render; see hookmail's log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = buf.WriteTo(w)
}

// fail answers a page saying what went wrong, with status.
func (s *server) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	s.render(w, r, status, "error", http.StatusText(status), msg)
}

// failErr answers an error of the queue: its kind decides the status; an
// internal one is logged, and the page says to look there.
func (s *server) failErr(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := errorStatus(err)
	if status == http.StatusInternalServerError {
		s.Log.Error("admin page: the queue failed", "path", r.URL.Path, "err", err)
	}
	s.fail(w, r, status, msg)
}

// doneMessages are what an action's redirect says it did: fixed texts, so
// nothing from the address is shown as the page's own words.
var doneMessages = map[string]string{
	"requeued": "Requeued: the event is due now.",
	"dropped":  "Dropped for good.",
	"bulk":     "dead letter(s) requeued: due now.",
}

func doneMessage(r *http.Request) string {
	q := r.URL.Query()
	msg := doneMessages[q.Get("done")]
	if q.Get("done") == "bulk" {
		var n int
		if _, err := fmt.Sscan(q.Get("n"), &n); err != nil {
			return ""
		}
		msg = fmt.Sprint(n, " ", msg)
	}
	return msg
}

// funcs are the templates' helpers. Times show in the config's timezone.
func (s *server) funcs() template.FuncMap {
	return template.FuncMap{
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "–"
			}
			return t.In(s.Rules().Config.Location()).Format("2006-01-02 15:04:05 MST")
		},
		"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"ago": func(t time.Time) string {
			if t.IsZero() {
				return "–"
			}
			return relative(s.Now().Sub(t))
		},
		"short": func(n int, v string) string {
			r := []rune(v)
			if len(r) <= n {
				return v
			}
			return string(r[:n]) + "…"
		},
		// tail is the end of an id: event ids are UUIDv7, whose first
		// characters are the time, alike for the events of a minute.
		"tail": func(n int, v string) string {
			r := []rune(v)
			if len(r) <= n {
				return v
			}
			return "…" + string(r[len(r)-n:])
		},
		"bytes": func(n int64) string {
			switch {
			case n >= 1<<30:
				return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
			case n >= 1<<20:
				return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
			case n >= 1<<10:
				return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
			}
			return fmt.Sprintf("%d B", n)
		},
	}
}

// relative says how long ago d was ("5m ago"), or how long until it is
// ("in 30s") when it is negative.
func relative(d time.Duration) string {
	later := d < 0
	if later {
		d = -d
	}
	var s string
	switch {
	case d < time.Second:
		return "now"
	case d < time.Minute:
		s = fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		s = fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		s = fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		s = fmt.Sprintf("%dd", int(d.Hours()/24))
	}
	if later {
		return "in " + s
	}
	return s + " ago"
}
