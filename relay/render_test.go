package relay

import (
	"bytes"
	"flag"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
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

// renderFile decodes a wire body and renders it on route as the relay would.
func renderFile(t *testing.T, r *Renderer, file string, route *config.Route) *Message {
	t.Helper()
	p, err := DecodePayload(formType, bytes.NewReader(readTestdata(t, file)), DecodeOptions{UnescapeHTML: true})
	if err != nil {
		t.Fatal(err)
	}
	ev := &Event{ID: "01900000-0000-7000-8000-000000000001", Source: SourceGateway, Type: NormalizeType(p.Type), Data: p.Data, Received: time.Unix(1645684300, 0)}
	msg, err := r.Render(ev, route, "hookmail <hookmail@relay.example>")
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func TestRenderGolden(t *testing.T) {
	r, err := NewRenderer("", manila(t))
	if err != nil {
		t.Fatal(err)
	}
	route := &config.Route{Name: "everything", To: []string{"you@example.com"}}
	for _, file := range []string{"sms.form", "whatsapp.form", "ussd.form", "notifications.form", "telegram.form", "hostile.form"} {
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

func TestRenderEscapesHTMLAndKeepsText(t *testing.T) {
	r, err := NewRenderer("", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	ev := &Event{ID: "x", Type: "sms", Received: time.Unix(0, 0), Data: map[string]string{
		"phone":   "+1\r\nBcc: victim@example.com",
		"message": "<script>alert(1)</script> & {{.ID}}\nline two 😀",
	}}
	msg, err := r.Render(ev, &config.Route{Name: "r", To: []string{"a@example.com"}}, "h <h@example.com>")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(msg.HTML, "<script>") || !strings.Contains(msg.HTML, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; {{.ID}}<br>") {
		t.Errorf("HTML part does not show the script as text:\n%s", msg.HTML)
	}
	if !strings.Contains(msg.Text, "<script>alert(1)</script> & {{.ID}}\nline two 😀") {
		t.Errorf("text part changed the message:\n%s", msg.Text)
	}
	if strings.ContainsAny(msg.Subject, "\r\n") {
		t.Errorf("subject has a line break: %q", msg.Subject)
	}
	var eml bytes.Buffer
	if err := msg.WriteEML(&eml); err != nil {
		t.Fatal(err)
	}
	parsed, err := mail.ReadMessage(&eml)
	if err != nil {
		t.Fatal(err)
	}
	if bcc := parsed.Header.Get("Bcc"); bcc != "" {
		t.Errorf("injected Bcc header: %q", bcc)
	}
}

func TestRenderTruncatesLongSubjects(t *testing.T) {
	r, err := NewRenderer("", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("ab cd ", 500)
	msg, err := r.Render(&Event{ID: "x", Type: "sms", Data: map[string]string{"message": long}}, &config.Route{Name: "r", To: []string{"a@example.com"}}, "h@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if n := len([]rune(msg.Subject)); n > maxSubjectRunes || !strings.HasSuffix(msg.Subject, "…") {
		t.Errorf("subject has %d runes (%q), want at most %d ending in …", n, msg.Subject, maxSubjectRunes)
	}
	if !strings.Contains(msg.Text, long) {
		t.Error("the text part must keep the whole message")
	}
}

func TestTemplateOverrides(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sms.subject.tmpl"), []byte(`Text from {{.Get "phone"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := NewRenderer(dir, time.UTC)
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
	_, err = NewRenderer(dir, time.UTC)
	if err == nil || !strings.Contains(err.Error(), "ussd.html.tmpl:3") {
		t.Errorf("broken override: err = %v, want it to name ussd.html.tmpl:3", err)
	}
}

func TestMessageIDIsStablePerEventAndRoute(t *testing.T) {
	a := MessageID("01900000-0000-7000-8000-000000000001", "sales team", "hookmail <h@relay.example>")
	if a != "hookmail.01900000-0000-7000-8000-000000000001.sales-team@relay.example" {
		t.Errorf("MessageID = %s", a)
	}
	if b := MessageID("01900000-0000-7000-8000-000000000001", "sales team", "hookmail <h@relay.example>"); a != b {
		t.Error("MessageID differs between calls")
	}
	if c := MessageID("01900000-0000-7000-8000-000000000001", "support", "hookmail <h@relay.example>"); a == c {
		t.Error("MessageID must differ per route")
	}
}

func TestOverrideThatParsesButCannotRunStopsStartup(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sms.subject.tmpl"), []byte(`SMS {{.Gett "phone"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := NewRenderer(dir, time.UTC)
	if err == nil || !strings.Contains(err.Error(), "sms.subject.tmpl:1") || !strings.Contains(err.Error(), "Gett") {
		t.Fatalf("err = %v, want it to name sms.subject.tmpl:1 and the bad field", err)
	}
}

func TestTemplateHelpers(t *testing.T) {
	for in, want := range map[string]string{
		"+639760713666":  "+63 976 071 3666",
		"+14155552671":   "+1 415-555-2671",
		"+4915123456789": "+49 1512 3456789",
		"120363041234":   "120363041234", // a WhatsApp group id
		"BANK":           "BANK",
		"+1":             "+1",
	} {
		if got := formatPhone(in); got != want {
			t.Errorf("phone %q = %q, want %q", in, got, want)
		}
	}
	at := time.Date(2022, 2, 24, 6, 30, 31, 0, time.UTC)
	if got := dateIn("Asia/Manila", "2006-01-02 15:04 MST", at); got != "2022-02-24 14:30 PST" {
		t.Errorf("dateIn = %q", got)
	}
	if got := dateIn("Nowhere/Else", "15:04", at); got != "06:30" {
		t.Errorf("dateIn with an unknown zone = %q", got)
	}
}
