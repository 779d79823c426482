package relay

import (
	"bytes"
	"fmt"
	htmltemplate "html/template"
	"net/mail"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
)

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

// TestHTMLFuncsReturnNoTrustedTypes: html/template escapes every field
// only because no helper hands it a value marked safe. A helper returning
// template.HTML (or JS, URL, CSS, ...) would put payload text into the
// HTML part unescaped.
func TestHTMLFuncsReturnNoTrustedTypes(t *testing.T) {
	trusted := []reflect.Type{
		reflect.TypeFor[htmltemplate.HTML](), reflect.TypeFor[htmltemplate.HTMLAttr](), reflect.TypeFor[htmltemplate.JS](),
		reflect.TypeFor[htmltemplate.JSStr](), reflect.TypeFor[htmltemplate.URL](), reflect.TypeFor[htmltemplate.CSS](),
		reflect.TypeFor[htmltemplate.Srcset](),
	}
	var check func(name string, typ reflect.Type)
	check = func(name string, typ reflect.Type) {
		if slices.Contains(trusted, typ) {
			t.Errorf("template func %s returns %v, which html/template does not escape", name, typ)
		}
		switch typ.Kind() {
		case reflect.Slice, reflect.Array, reflect.Pointer, reflect.Map:
			check(name, typ.Elem())
		case reflect.Struct:
			for f := range typ.Fields() {
				check(name, f.Type)
			}
		}
	}
	for name, fn := range htmlFuncs {
		typ := reflect.TypeOf(fn)
		for out := range typ.Outs() {
			check(name, out)
		}
	}
}

// TestPhoneFormatsOnce: a number seen before is not parsed again (the
// parse allocates dozens of times and ran once per email), a bad number
// is cached as it is, and the cache stays bounded.
func TestPhoneFormatsOnce(t *testing.T) {
	for _, in := range []string{"+639760713666", "+1"} {
		want := formatPhone(in)
		if allocs := testing.AllocsPerRun(100, func() {
			if got := formatPhone(in); got != want {
				t.Fatalf("phone %q = %q, then %q", in, want, got)
			}
		}); allocs > 0 {
			t.Errorf("phone %q: %.0f allocations a call once seen, want 0", in, allocs)
		}
	}
	for i := range 10000 {
		formatPhone(fmt.Sprintf("+1415555%04d", i))
	}
	if n := phones.Len(); n > 4096 {
		t.Errorf("the phone cache holds %d numbers, want at most 4096", n)
	}
}
