package relay_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/webhook"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/golden")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./relay -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test ./relay -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func manila(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Asia/Manila")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// renderFile decodes a wire body and renders it on route as the workers would.
func renderFile(t *testing.T, r *relay.Renderer, file string, route *config.Route) *relay.Message {
	t.Helper()
	p, err := webhook.DecodePayload(formType, bytes.NewReader(readTestdata(t, file)), webhook.DecodeOptions{UnescapeHTML: true})
	if err != nil {
		t.Fatal(err)
	}
	ev := p.Event()
	ev.ID, ev.Received = "01900000-0000-7000-8000-000000000001", time.Unix(1645684300, 0)
	msg, err := r.Render(ev, route, "hookmail <hookmail@relay.example>")
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func TestRenderGolden(t *testing.T) {
	r, err := relay.NewRenderer("", manila(t))
	if err != nil {
		t.Fatal(err)
	}
	route := &config.Route{Name: "everything", To: []string{"you@example.com"}}
	for _, file := range wireFormFiles {
		t.Run(file, func(t *testing.T) {
			msg := renderFile(t, r, file, route)
			base := strings.TrimSuffix(file, ".form")
			golden(t, base+".subject", msg.Subject+"\n")
			golden(t, base+".txt", msg.Text)
			golden(t, base+".html", msg.HTML)
			if !msg.Date.Equal(time.Unix(1645684231, 0)) {
				t.Errorf("Date = %v, want the event's timestamp", msg.Date)
			}
		})
	}
}

func TestTemplateOverrides(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sms.subject.tmpl"), []byte(`Text from {{.Get "phone"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := relay.NewRenderer(dir, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	msg := renderFile(t, r, "sms.form", &config.Route{Name: "r", To: []string{"a@example.com"}})
	if msg.Subject != "Text from +639760713666" {
		t.Errorf("subject = %q, want the override's", msg.Subject)
	}
	if !strings.Contains(msg.Text, "Hello World!") {
		t.Error("files not overridden must keep the embedded default")
	}

	if err := os.WriteFile(filepath.Join(dir, "ussd.html.tmpl"), []byte("{{define \"title\"}}ok{{end}}\n\n{{if}}"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = relay.NewRenderer(dir, time.UTC)
	if err == nil || !strings.Contains(err.Error(), "ussd.html.tmpl:3") {
		t.Errorf("broken override: err = %v, want it to name ussd.html.tmpl:3", err)
	}
}
