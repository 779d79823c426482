package relay_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/webhook"
)

// repeatTo repeats unit to n bytes at most.
func repeatTo(unit string, n int) string { return strings.Repeat(unit, n/len(unit)) }

// TestHostileEventEmailFitsTheCap posts webhook bodies of about 1 MiB
// (webhook.max_body_bytes' default) built to blow the email up: `"` is
// &#34; in HTML, and the phone shows in the title twice, the facts, the
// text part and the subject (a 12 MB email before MaxEmailBytes); invalid
// bytes come back as U+FFFD, three bytes that quoted-printable makes nine.
// The encoded email must stay within MaxEmailBytes, falling back to plain
// text where it has to, and keep every field whole.
func TestHostileEventEmailFitsTheCap(t *testing.T) {
	r, err := relay.NewRenderer("", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	route := &config.Route{Name: "r", To: []string{"a@example.com"}, Cc: []string{"c@example.com"}}
	form := func(fields ...string) (string, string) {
		body := "secret=" + testSecret + "&type=sms"
		for i := 0; i < len(fields); i += 2 {
			body += "&data%5B" + fields[i] + "%5D=" + fields[i+1] // raw: the decoder takes them so
		}
		return formType, body
	}
	jsonBody := func(fields ...string) (string, string) {
		body := `{"secret":"` + testSecret + `","type":"sms","data":{`
		for i := 0; i < len(fields); i += 2 {
			body += fmt.Sprintf("%q:\"%s\",", fields[i], fields[i+1]) // raw bytes inside the quotes
		}
		return "application/json", strings.TrimSuffix(body, ",") + "}}"
	}
	invalid := repeatTo("\xff", 174_000) // 522,000 bytes once the JSON decoder repairs each byte
	tests := []struct {
		name      string
		ct, body  string
		wantPlain bool
	}{
		{"quotes in phone and message", "", "", true},
		{"invalid bytes the form repair doubles", "", "", true},
		{"invalid bytes the JSON decoder triples", "", "", true},
		{"512 KiB of plain ASCII", "", "", false},
	}
	tests[0].ct, tests[0].body = form("phone", repeatTo(`"`, 520_000), "message", repeatTo(`"`, 520_000))
	tests[1].ct, tests[1].body = form("phone", repeatTo("\xffa", 520_000), "message", repeatTo("\xffa", 520_000))
	tests[2].ct, tests[2].body = jsonBody("phone", invalid, "message", invalid, "device", invalid, "sim", invalid, "id", invalid, "rid", invalid)
	tests[3].ct, tests[3].body = form("phone", "%2B14155552671", "message", repeatTo("abc+", 512<<10))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.body) > 1<<20 {
				t.Fatalf("body of %d bytes, over the default webhook.max_body_bytes", len(tt.body))
			}
			p, err := webhook.DecodePayload(tt.ct, strings.NewReader(tt.body), webhook.DecodeOptions{UnescapeHTML: true})
			if err != nil {
				t.Fatal(err)
			}
			ev := &relay.Event{ID: "01900000-0000-7000-8000-000000000001", Source: webhook.SourceGateway, Type: p.Type, Data: p.Data, Received: time.Unix(0, 0)}
			msg, err := r.Render(ev, route, "hookmail <h@example.com>")
			if err != nil {
				t.Fatal(err)
			}
			raw, err := msg.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if len(raw) > relay.MaxEmailBytes {
				t.Errorf("email of %d bytes, over MaxEmailBytes (%d)", len(raw), relay.MaxEmailBytes)
			}
			if got := msg.Plain != ""; got != tt.wantPlain {
				t.Errorf("plain fallback %v (%q), want %v", got, msg.Plain, tt.wantPlain)
			}
			e := relay.CheckEmail(t, msg, relay.EmailWant{From: "h@example.com", To: route.To, Cc: route.Cc, EventID: ev.ID,
				MessageID: relay.MessageID(ev.ID, route.Name, "hookmail <h@example.com>"), Date: ev.Time()})
			if !tt.wantPlain {
				if !strings.Contains(e.Text, ev.Data["message"]) {
					t.Error("the text part lacks the message")
				}
				return
			}
			if !strings.HasPrefix(e.Text, "hookmail could not make this email with its templates (") {
				t.Errorf("the fallback does not start with why:\n%.300s", e.Text)
			}
			for name, value := range ev.Data {
				if !strings.Contains(e.Text, "\n"+name+": "+value+"\n") {
					t.Errorf("the text part lacks the %s field (%d bytes)", name, len(value))
				}
			}
		})
	}
}

// TestPlainFallbackFitsTheWorstEvent: the largest event a webhook within
// config.MaxWebhookBodyBytes can bring, bounded from above: values of three
// times the body (the JSON decoder turns each invalid byte into a
// three-byte U+FFFD; the form decoder's repair at most doubles a value),
// each field three times webhook.MaxFieldBytes, and webhook.MaxFields names
// of three times webhook.MaxNameBytes.
// Its plain fallback still fits in MaxEmailBytes, so Render never has to
// refuse an event from a webhook.
func TestPlainFallbackFitsTheWorstEvent(t *testing.T) {
	r, err := relay.NewRenderer("", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	data := map[string]string{}
	name := func(i int) string {
		n := fmt.Sprintf("%04d", i)
		return n + repeatTo("é", 3*webhook.MaxNameBytes-len(n))
	}
	values := 3 * config.MaxWebhookBodyBytes
	for i, big := range []string{"phone", "message", "device", "sim"} {
		v := repeatTo(`"😀`, min(3*webhook.MaxFieldBytes, values))
		values -= len(v)
		data[big] = v
		delete(data, name(i))
	}
	for i := len(data); i < webhook.MaxFields; i++ {
		data[name(i)] = ""
	}
	if len(data) != webhook.MaxFields || values > 3*webhook.MaxFieldBytes {
		t.Fatalf("built %d fields, %d bytes of values left over", len(data), values)
	}
	ev := &relay.Event{ID: "01900000-0000-7000-8000-000000000001", Type: relay.TypeSMS, Data: data, Received: time.Unix(0, 0)}
	route := &config.Route{Name: "everything", To: []string{"Operations <ops@example.com>", "support@example.com"}, Cc: []string{"lead@example.com"}, ReplyTo: "support@example.com"}
	msg, err := r.Render(ev, route, "hookmail <hookmail@relay.example>")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := msg.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if msg.Plain == "" || len(raw) > relay.MaxEmailBytes {
		t.Fatalf("plain %q, email of %d bytes; want the plain fallback within %d", msg.Plain, len(raw), relay.MaxEmailBytes)
	}
	t.Logf("the worst event's email: %d bytes, %d under the cap", len(raw), relay.MaxEmailBytes-len(raw))
}

// TestDigestOverTheCapGoesAsText: a digest of many events whose HTML part
// would take it over MaxEmailBytes goes as its text part alone, every
// event listed.
func TestDigestOverTheCapGoesAsText(t *testing.T) {
	r, err := relay.NewRenderer("", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	const n = 5000
	entries := make([]relay.DigestEntry, n)
	for i := range entries {
		entries[i].Event = relay.Event{ID: fmt.Sprintf("ev-%04d", i), Type: relay.TypeSMS, Received: time.Unix(int64(i), 0),
			Data: map[string]string{"phone": repeatTo(`"`, 100), "message": repeatTo(`"`, 400)}}
	}
	route := &config.Route{Name: "digest", To: []string{"a@example.com"}}
	msg, err := r.RenderDigest(entries, route, "h@example.com")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := msg.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if msg.Plain == "" || msg.HTML != "" || len(raw) > relay.MaxEmailBytes {
		t.Fatalf("plain %q, HTML %d bytes, email %d bytes; want the text part alone within %d", msg.Plain, len(msg.HTML), len(raw), relay.MaxEmailBytes)
	}
	e := relay.CheckEmail(t, msg, relay.EmailWant{From: "h@example.com", To: route.To, EventID: msg.EventID, MessageID: msg.MessageID})
	if !strings.Contains(e.Text, fmt.Sprintf("\n%d. ", n)) {
		t.Errorf("the text part does not list event %d", n)
	}
}
