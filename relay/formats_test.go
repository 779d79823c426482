package relay

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
)

// smsFrom is an SMS as a gateway other than zender stores it: its content
// canonical, its own fields in Data.
func smsFrom(format, from, text string) *Event {
	return &Event{ID: "e-" + format, Source: format + "-phone", Format: format, Type: TypeSMS, Received: time.Unix(1700000000, 0),
		Data:    map[string]string{"deviceId": "dev-1"},
		Content: Content{From: from, To: "+15550001111", Text: text, MessageID: "m-1", Sent: time.Unix(1700000000, 0)}}
}

// TestRenderCanonicalContent: the SMS templates render another format's
// canonical content as they render zender's data fields.
func TestRenderCanonicalContent(t *testing.T) {
	r, err := NewRenderer("", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	route := &config.Route{Name: "all", To: []string{"a@example.com"}}
	msg, err := r.Render(smsFrom(FormatSMSGate, "+639760713666", "Your code is 4921 <b>"), route, "h@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != "SMS from +639760713666" || !strings.Contains(msg.Text, "Your code is 4921 <b>") ||
		!strings.Contains(msg.Text, "gateway id m-1") || !strings.Contains(msg.HTML, "Your code is 4921 &lt;b&gt;") {
		t.Errorf("subject %q\ntext:\n%s", msg.Subject, msg.Text)
	}
	report := &Event{ID: "r", Format: FormatSMSGate, Type: TypeStatus, Content: Content{To: "+15550002222", Status: "failed", Text: "RESULT_ERROR_GENERIC_FAILURE"}}
	msg, err = r.Render(report, route, "h@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != "Message to +15550002222: failed" || !strings.Contains(msg.Text, "RESULT_ERROR_GENERIC_FAILURE") {
		t.Errorf("status: subject %q\ntext:\n%s", msg.Subject, msg.Text)
	}
	mms := smsFrom(FormatSMSGate, "+1", "look")
	mms.Type = TypeMMS
	mms.Content.Attachments = []Attachment{{Name: "cat.jpg", ContentType: "image/jpeg", Data: []byte("jpeg")}, {URL: "https://media.example/2"}, {Name: "big.mp4", Note: "over the 6 MB an email may carry"}}
	msg, err = r.Render(mms, route, "h@example.com")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Attached:     cat.jpg (image/jpeg, 4 B)", "Attachment:   https://media.example/2", "Not attached: big.mp4 (over the 6 MB an email may carry)"} {
		if !strings.Contains(msg.Text, want) {
			t.Errorf("MMS text lacks %q:\n%s", want, msg.Text)
		}
	}
	if !strings.Contains(msg.HTML, `<a href="https://media.example/2"`) {
		t.Errorf("MMS HTML does not link the remote file:\n%s", msg.HTML)
	}
}

// TestThreadingAcrossGateways: one party's SMS threads together whichever
// gateway brought it and however it wrote the number; a delivery report
// on a message to that party joins the thread; and a zender SMS keeps the
// thread id it had before sources existed.
func TestThreadingAcrossGateways(t *testing.T) {
	zender := &Event{ID: "z", Source: "gateway", Type: TypeSMS, Data: map[string]string{"phone": "+63 976 071 3666", "message": "hi"}}
	twilio := smsFrom(FormatTwilio, "+639760713666", "hello")
	report := &Event{ID: "s", Source: "android", Format: FormatSMSGate, Type: TypeStatus, Content: Content{To: "+63-976-071-3666", Status: "delivered"}}
	mms := smsFrom(FormatSMSGate, "+639760713666", "")
	mms.Type = TypeMMS
	other := smsFrom(FormatTwilio, "+15550009999", "x")
	from := "hookmail@example.com"
	id := ThreadID(zender, from)
	if id == "" {
		t.Fatal("no thread for the zender SMS")
	}
	for name, ev := range map[string]*Event{"twilio": twilio, "report": report, "mms": mms} {
		if got := ThreadID(ev, from); got != id {
			t.Errorf("%s: thread %s, want %s", name, got, id)
		}
	}
	if ThreadID(other, from) == id {
		t.Error("another party shares the thread")
	}
	// Before sources the id was sha256(source "\x00" type "\x00" phone),
	// and every event's source was "gateway".
	before := &Event{ID: "b", Source: "gateway", Type: TypeSMS, Data: map[string]string{"phone": "+639760713666"}}
	sum := sha256.Sum256([]byte("gateway\x00sms\x00+639760713666"))
	if got, want := ThreadID(before, from), MessageID("thread."+hex.EncodeToString(sum[:12]), "conversation", from); got != want {
		t.Errorf("a zender SMS's thread id changed: %s, want %s", got, want)
	}
}

// TestTemplateOverridesPerFormat: templates.dir/<format>/ overrides a
// type's templates for that format only.
func TestTemplateOverridesPerFormat(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, FormatTwilio), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, FormatTwilio, "sms.subject.tmpl"), []byte(`Twilio SMS {{.Data.deviceId}} from {{.From}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := NewRenderer(dir, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	route := &config.Route{Name: "all", To: []string{"a@example.com"}}
	for format, want := range map[string]string{FormatTwilio: "Twilio SMS dev-1 from +1555", FormatSMSGate: "SMS from +1555"} {
		msg, err := r.Render(smsFrom(format, "+1555", ""), route, "h@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if msg.Subject != want {
			t.Errorf("%s: subject %q, want %q", format, msg.Subject, want)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, FormatTwilio, "mms.text.tmpl"), []byte(`{{.Nope}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewRenderer(dir, time.UTC); err == nil || !strings.Contains(err.Error(), "twilio/mms templates do not render") {
		t.Errorf("a broken per-format template: %v", err)
	}
}

// TestRouterCanonicalKeys: routes match the canonical fields the same for
// every format, and data fields whatever the case of their names.
func TestRouterCanonicalKeys(t *testing.T) {
	routes := []config.Route{
		{Name: "otp", Match: map[string]string{"text": `(?i)\bcode\b`}, To: []string{"a@x"}},
		{Name: "boss", Match: map[string]string{"from": "+63 976 071 3666"}, To: []string{"a@x"}},
		{Name: "android", Match: map[string]string{"source": "smsgate-phone"}, To: []string{"a@x"}},
		{Name: "failed", Match: map[string]string{"status": "failed"}, To: []string{"a@x"}},
		{Name: "device", Match: map[string]string{"deviceid": "dev-2"}, To: []string{"a@x"}},
		{Name: "zender", Match: map[string]string{"format": "zender"}, To: []string{"a@x"}},
		{Name: "rest", To: []string{"a@x"}},
	}
	r := NewRouter(routes)
	dev2 := smsFrom(FormatTwilio, "+1", "x")
	dev2.Data["deviceId"] = "dev-2"
	for name, tc := range map[string]struct {
		ev   *Event
		want string
	}{
		"text":       {smsFrom(FormatTwilio, "+1", "Your Code is 1"), "otp"},
		"zender msg": {&Event{Type: TypeSMS, Data: map[string]string{"phone": "+1", "message": "the code: 2"}}, "otp"},
		"from":       {smsFrom(FormatTwilio, "+639760713666", "hi"), "boss"},
		"source":     {smsFrom(FormatSMSGate, "+1", "hi"), "android"},
		"status":     {&Event{Format: FormatSMSGate, Type: TypeStatus, Content: Content{Status: "Failed"}}, "failed"},
		"data case":  {dev2, "device"},
		"format":     {&Event{Type: TypeUSSD, Data: map[string]string{"code": "*1#"}}, "zender"},
		"rest":       {smsFrom(FormatTwilio, "+1", "hi"), "rest"},
	} {
		if got := r.Match(tc.ev); got == nil || got.Name != tc.want {
			t.Errorf("%s: route %v, want %s", name, got, tc.want)
		}
	}
}
