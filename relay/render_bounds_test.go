package relay

import (
	"errors"
	htmltemplate "html/template"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	texttemplate "text/template"
	"time"
	"unicode/utf8"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/templates"
)

// hangingTemplates builds templates that never finish on their own: each
// waits in {{hang}} until the test ends. For the renderer that is the same
// as a template that loops without end ({{range 1000000000}} nested), but
// it keeps no CPU busy for the rest of the test run.
type hangingTemplates struct {
	t       *testing.T
	release chan struct{}
}

func newHangingTemplates(t *testing.T) *hangingTemplates {
	h := &hangingTemplates{t: t, release: make(chan struct{})}
	t.Cleanup(func() { close(h.release) })
	return h
}

func (h *hangingTemplates) hang() string { <-h.release; return "" }

func (h *hangingTemplates) text(name, src string) *texttemplate.Template {
	h.t.Helper()
	return texttemplate.Must(texttemplate.New(name).Funcs(textFuncs).Funcs(texttemplate.FuncMap{"hang": h.hang}).Parse(src))
}

// html is a type's HTML template inside the default layout, its body src.
func (h *hangingTemplates) html(name, body string) *htmltemplate.Template {
	h.t.Helper()
	layout, err := fs.ReadFile(templates.FS, layoutFile)
	if err != nil {
		h.t.Fatal(err)
	}
	l := htmltemplate.Must(htmltemplate.New(layoutFile).Funcs(htmlFuncs).Funcs(htmltemplate.FuncMap{"hang": h.hang}).Parse(string(layout)))
	return htmltemplate.Must(l.New(name).Parse(`{{define "title"}}t{{end}}{{define "facts"}}{{end}}{{define "body"}}` + body + `{{end}}`))
}

// TestTemplateThatHangsIsRefused: a template that does not finish within
// the render timeout is refused by the trial render that start-up and
// reload run, naming its file, and the trial returns at the timeout.
func TestTemplateThatHangsIsRefused(t *testing.T) {
	// Far above what a real template takes on a loaded machine under
	// -race, so only the hanging one times out.
	const timeout = time.Second
	routes := []config.Route{{Name: "audit", To: []string{"a@example.com"}, Subject: "Audit {{.ID}}"}}
	tests := []struct {
		name string
		swap func(r *Renderer, h *hangingTemplates)
		want string
	}{
		{"sms subject", func(r *Renderer, h *hangingTemplates) {
			r.sets[TypeSMS].subject = h.text("sms.subject.tmpl", `SMS {{hang}}`)
		}, "sms templates do not render: render subject: sms.subject.tmpl: did not finish rendering within 1s"},
		{"sms text", func(r *Renderer, h *hangingTemplates) {
			r.sets[TypeSMS].text = h.text("sms.text.tmpl", `{{range 10}}{{hang}}{{end}}`)
		}, "sms templates do not render: render text: sms.text.tmpl: did not finish rendering within 1s"},
		{"whatsapp html", func(r *Renderer, h *hangingTemplates) {
			r.sets[TypeWhatsApp].html = h.html("whatsapp.html.tmpl", `{{hang}}`)
		}, "whatsapp templates do not render: render html: whatsapp.html.tmpl (in layout.html.tmpl): did not finish rendering within 1s"},
		{"digest text", func(r *Renderer, h *hangingTemplates) {
			r.sets[DigestTemplate].text = h.text("digest.text.tmpl", `{{range .Events}}{{hang}}{{end}}`)
		}, "digest templates do not render: digest: render text: digest.text.tmpl: did not finish rendering within 1s"},
		{"a route's subject", func(r *Renderer, h *hangingTemplates) {
			r.subjects["audit"] = h.text("routes.audit.subject", `Audit {{hang}}`)
		}, `route "audit": subject does not render: routes.audit.subject: did not finish rendering within 1s`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := newRenderer("", time.UTC, timeout, routes)
			if err != nil {
				t.Fatal(err)
			}
			tt.swap(r, newHangingTemplates(t))
			err = r.trial()
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) || !errors.Is(err, errTimedOut) {
				t.Fatalf("trial() = %v\nwant %s…", err, tt.want)
			}
		})
	}
}

// TestEventThatHangsItsTemplateFallsBack: a template that hangs only on
// some events passes the trial; such an event's render gives up at the
// timeout and falls back to the plain rendering, which names the template
// and keeps every field; the next event renders with the templates.
func TestEventThatHangsItsTemplateFallsBack(t *testing.T) {
	r, err := newRenderer("", time.UTC, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := newHangingTemplates(t)
	r.sets[TypeSMS].text = h.text("sms.text.tmpl", `{{if eq (.Get "message") "hang"}}{{hang}}{{end}}SMS {{.Get "message"}}`)
	if err := r.trial(); err != nil {
		t.Fatalf("trial: %v", err)
	}
	route := &config.Route{Name: "r", To: []string{"a@example.com"}}
	ev := &Event{ID: "a", Type: TypeSMS, Data: map[string]string{"message": "hang", "phone": "+14155552671"}}
	msg, err := r.Render(ev, route, "h@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(msg.Plain, "sms.text.tmpl: did not finish rendering within 1s") || msg.HTML != "" {
		t.Errorf("Plain = %q, HTML %d bytes; want the plain fallback naming sms.text.tmpl", msg.Plain, len(msg.HTML))
	}
	if msg.Subject != "SMS from +14155552671" {
		t.Errorf("subject %q, want the one the subject template made", msg.Subject)
	}
	e := CheckEmail(t, msg, EmailWant{From: "h@example.com", To: route.To, EventID: "a", MessageID: MessageID("a", "r", "h@example.com")})
	for _, want := range []string{"message: hang\n", "phone: +14155552671\n"} {
		if !strings.Contains(e.Text, want) {
			t.Errorf("fallback text lacks %q:\n%s", want, e.Text)
		}
	}
	msg, err = r.Render(&Event{ID: "b", Type: TypeSMS, Data: map[string]string{"message": "hi"}}, route, "h@example.com")
	if err != nil || msg.Text != "SMS hi" || msg.Plain != "" {
		t.Fatalf("the next event: %v, text %q, plain %q", err, msg.Text, msg.Plain)
	}
}

// writeTemplates writes files into a new templates.dir.
func writeTemplates(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// endless writes 500 bytes a turn for a billion turns: 500 GB unbounded.
const endless = `{{range 1000000000}}{{printf "%0500d" 0}}{{end}}`

// TestTemplateThatWritesWithoutEndIsRefused: output stops at the bound
// (text/template stops at the first write error), and the trial refuses
// the template, naming its file.
func TestTemplateThatWritesWithoutEndIsRefused(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"text", map[string]string{"sms.text.tmpl": endless},
			"sms templates do not render: render text: sms.text.tmpl: writes more than 10000000 bytes, more than an email may hold"},
		{"html", map[string]string{"ussd.html.tmpl": `{{define "title"}}t{{end}}{{define "facts"}}{{end}}{{define "body"}}` + endless + `{{end}}`},
			"ussd templates do not render: render html: ussd.html.tmpl (in layout.html.tmpl): writes more than"},
		{"digest html", map[string]string{"digest.html.tmpl": `{{define "title"}}t{{end}}{{define "facts"}}{{end}}{{define "body"}}` + endless + `{{end}}`},
			"digest templates do not render: digest: render html: digest.html.tmpl (in layout.html.tmpl): writes more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewRenderer(writeTemplates(t, tt.files), time.UTC)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) || !errors.Is(err, errTooLarge) {
				t.Fatalf("NewRenderer = %v\nwant %s…", err, tt.want)
			}
		})
	}

	t.Run("subject is cut, not refused", func(t *testing.T) {
		r, err := NewRenderer(writeTemplates(t, map[string]string{"sms.subject.tmpl": endless}), time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := r.Render(&Event{ID: "x", Type: TypeSMS}, &config.Route{Name: "r", To: []string{"a@example.com"}}, "h@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if n := utf8.RuneCountInString(msg.Subject); n != maxSubjectRunes {
			t.Errorf("subject of %d runes, want %d", n, maxSubjectRunes)
		}
	})
}

// TestTemplateFilesMustBeUTF8RegularFiles: a template file that is not
// valid UTF-8, not a regular file (a FIFO would block the read for ever)
// or over 1 MiB is refused, naming the file.
func TestTemplateFilesMustBeUTF8RegularFiles(t *testing.T) {
	tests := []struct {
		name string
		make func(path string) error
		want string
	}{
		{"not UTF-8", func(p string) error { return os.WriteFile(p, []byte("SMS from {{.Get \"phone\"}} \xff\xfe"), 0o600) },
			"is not valid UTF-8; save it as UTF-8"},
		{"latin-1", func(p string) error { return os.WriteFile(p, []byte("Caf\xe9 {{.ID}}"), 0o600) },
			"is not valid UTF-8; save it as UTF-8"},
		{"fifo", func(p string) error { return syscall.Mkfifo(p, 0o600) },
			"is a named pipe (FIFO), not a regular file"},
		{"too large", func(p string) error { return os.WriteFile(p, []byte(strings.Repeat("x", 1<<20+1)), 0o600) },
			"is larger than 1 MiB, the most it may hold"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "sms.subject.tmpl")
			if err := tt.make(path); err != nil {
				t.Fatal(err)
			}
			_, err := NewRenderer(dir, time.UTC)
			if want := "template " + path + ": " + tt.want; err == nil || err.Error() != want {
				t.Fatalf("NewRenderer = %v\nwant %s", err, want)
			}
		})
	}
}
