package relay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hookmail/hookmail/relay"
)

func multipartFields(t *testing.T, fields [][2]string) (string, string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for _, f := range fields {
		if err := w.WriteField(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return w.FormDataContentType(), b.String()
}

// hostileForm is a form body with the right secret, PHP-style keys
// (brackets percent-encoded) and every value percent-encoded.
func hostileForm(typ string, fields map[string]string) string {
	vals := url.Values{"secret": {testSecret}, "type": {typ}}
	for k, v := range fields {
		vals.Set("data["+k+"]", v)
	}
	return vals.Encode()
}

const injected = "x\rBcc: cr@evil.example\nBcc: lf@evil.example\r\nBcc: crlf@evil.example\r\nX-Injected: yes\r\n\r\n<script>alert(1)</script>"

// typeInjected fits in MaxTypeBytes after any type.
const typeInjected = "\rBcc: a@e.example\nBcc: b@e.example\r\nX-I: 1\r\n\r\n"

// wireFields are a real event's fields for each type the platform sends,
// plus an unknown one.
var wireFields = map[string]map[string]string{
	"sms":           {"id": "2", "rid": "10593", "sim": "1", "device": "dev", "phone": "+639760713666", "message": "Hello World!", "timestamp": "1645684231"},
	"whatsapp":      {"id": "2", "wid": "+639760713666", "phone": "+639760666713", "message": "hi", "attachment": "0", "timestamp": "1645684231"},
	"ussd":          {"id": "98", "sim": "1", "device": "dev", "code": "*143#", "response": "Sorry!", "timestamp": "1645684231"},
	"notifications": {"id": "77", "device": "dev", "package": "com.facebook.katana", "title": "Facebook", "content": "Someone commented", "timestamp": "1645684231"},
	"telegram":      {"id": "5", "phone": "+15550001111", "message": "hi there", "timestamp": "1645684231"},
}

func withField(typ, name, value string) map[string]string {
	f := map[string]string{}
	for k, v := range wireFields[typ] {
		f[k] = v
	}
	f[name] = value
	return f
}

type hostileCase struct {
	name        string
	contentType string // form when empty
	body        string
	wantStatus  int
	wantReason  string                             // in the reply of a refused body
	check       func(t *testing.T, e *relay.Email) // more checks on a rendered email
}

func crlfCases() []hostileCase {
	var cases []hostileCase
	for _, typ := range slices.Sorted(func(yield func(string) bool) {
		for k := range wireFields {
			if !yield(k) {
				return
			}
		}
	}) {
		cases = append(cases, hostileCase{name: typ + " CRLF in type", body: hostileForm(typ+typeInjected, wireFields[typ]), wantStatus: 200})
		all := map[string]string{}
		for _, name := range slices.Sorted(func(yield func(string) bool) {
			for k := range wireFields[typ] {
				if !yield(k) {
					return
				}
			}
		}) {
			cases = append(cases, hostileCase{name: typ + " CRLF in " + name, body: hostileForm(typ, withField(typ, name, wireFields[typ][name]+injected)), wantStatus: 200})
			all[name] = wireFields[typ][name] + injected
		}
		cases = append(cases, hostileCase{name: typ + " CRLF in every field and a key", body: hostileForm(typ+typeInjected, all) + "&data%5Bk%0D%0ABcc%3A+key%40evil.example%5D=1", wantStatus: 200})
	}
	return cases
}

func contains(parts ...string) func(t *testing.T, e *relay.Email) {
	return func(t *testing.T, e *relay.Email) {
		t.Helper()
		for i := 0; i+1 < len(parts); i += 2 {
			var in string
			switch parts[i] {
			case "html":
				in = e.HTML
			case "text":
				in = e.Text
			case "subject":
				in = e.Subject
			}
			if !strings.Contains(in, parts[i+1]) {
				t.Errorf("%s part does not contain %q:\n%.3000s", parts[i], parts[i+1], in)
			}
		}
	}
}

func hostileCases(t *testing.T) []hostileCase {
	mp := func(fields [][2]string) (string, string) { return multipartFields(t, fields) }
	mpCRLFType, mpCRLF := mp([][2]string{{"secret", testSecret}, {"type", "sms"}, {"data[phone]", "+1" + injected}, {"data[message]", injected}})
	many := func(n int, key func(i int) string) string {
		var b strings.Builder
		b.WriteString(hostileForm("sms", nil))
		for i := range n {
			fmt.Fprintf(&b, "&%s=1", key(i))
		}
		return b.String()
	}
	jsonBody := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// The body is read whole before it is decoded, so 10,000 parts (over
	// 1 MiB) meet webhook.max_body_bytes first, and 2,000 (within it) meet
	// the field limit.
	parts := func(n int) [][2]string {
		p := [][2]string{{"secret", testSecret}, {"type", "sms"}}
		for i := range n {
			p = append(p, [2]string{fmt.Sprintf("data[k%d]", i), "1"})
		}
		return p
	}
	mpManyType, mpMany := mp(parts(2000))
	mpHugeType, mpHuge := mp(parts(10000))
	hundredK := strings.Repeat("9", 100<<10)
	emojiK := strings.Repeat("😀 ", 25<<10)

	cases := crlfCases()
	cases = append(cases, []hostileCase{
		{name: "script in message", body: hostileForm("sms", withField("sms", "message", "<script>alert(1)</script>")), wantStatus: 200,
			check: contains("html", "&lt;script&gt;alert(1)&lt;/script&gt;", "text", "<script>alert(1)</script>")},
		{name: "script in phone reaches title, subject and facts", body: hostileForm("sms", withField("sms", "phone", "<script>alert(1)</script>")), wantStatus: 200,
			check: contains("html", "<title>SMS from &lt;script&gt;alert(1)&lt;/script&gt;</title>", "subject", "SMS from <script>alert(1)</script>")},
		{name: "entity-escaped script unescaped once, escaped again", body: hostileForm("whatsapp", withField("whatsapp", "message", "&lt;script&gt;alert(1)&lt;/script&gt;")), wantStatus: 200,
			check: contains("html", "&lt;script&gt;alert(1)&lt;/script&gt;", "text", "<script>alert(1)</script>")},
		{name: "img onerror in title", body: hostileForm("notifications", withField("notifications", "title", "<img src=x onerror=alert(1)>")), wantStatus: 200,
			check: contains("html", "&lt;img src=x onerror=alert(1)&gt;")},
		{name: "img onerror in an unknown type and key", body: hostileForm("<img src=x onerror=alert(1)>", map[string]string{"<img src=x onerror=alert(1)>": "<img src=x onerror=alert(1)>"}), wantStatus: 200,
			check: contains("html", "&lt;img src=x onerror=alert(1)&gt;")},
		{name: "attribute breakout in attachment", body: hostileForm("whatsapp", withField("whatsapp", "attachment", `https://x.example/" onmouseover="alert(1)`)), wantStatus: 200,
			check: contains("html", `href="https://x.example/%22%20onmouseover=%22alert%281%29"`)},
		{name: "javascript URL in attachment", body: hostileForm("whatsapp", withField("whatsapp", "attachment", "javascript:alert(1)")), wantStatus: 200,
			check: contains("html", `href="#ZgotmplZ"`)},
		{name: "template syntax in fields", body: hostileForm("notifications", withField("notifications", "content", `{{.}} {{template "x"}} {{.ID}}`)), wantStatus: 200,
			check: contains("text", `{{.}} {{template "x"}} {{.ID}}`, "html", `{{.}} {{template &#34;x&#34;}} {{.ID}}`, "subject", `Facebook: {{.}} {{template "x"}} {{.ID}}`)},
		{name: "template syntax in type", body: hostileForm(`{{template "x"}}`, map[string]string{"message": "{{.}}"}), wantStatus: 200,
			check: contains("subject", `{{template "x"}} event: {{.}}`)},
		{name: "NUL bytes", body: hostileForm("sms\x00", withField("sms", "phone", "+1\x00555\x00")) + "&data%5Bmessage%5D=a%00b&data%5Bk%00%5D=%00", wantStatus: 200,
			check: func(t *testing.T, e *relay.Email) {
				if bytes.Contains(e.Raw, []byte{0}) || strings.Contains(e.Text+e.HTML, "\x00") {
					t.Error("a NUL byte reached the email")
				}
				contains("subject", "SMS from +1555: ab", "html", "<title>SMS from &#43;1555</title>")(t, e)
			}},
		{name: "invalid UTF-8", body: "secret=" + testSecret + "&type=sms&data%5Bphone%5D=%2B1%FF%FE&data%5Bmessage%5D=caf%E9+%C0%AF%ED%A0%80&data%5Bk%FF%5D=%FF", wantStatus: 200,
			check: func(t *testing.T, e *relay.Email) {
				if !utf8.ValidString(e.Text) || !utf8.ValidString(e.HTML) {
					t.Error("a part is not valid UTF-8")
				}
				contains("subject", "SMS from +1\uFFFD: caf\uFFFD \uFFFD")(t, e)
			}},
		{name: "control characters", body: hostileForm("sms", withField("sms", "phone", "+1\x1b[31m\x07\x7f\u0085\u2028\u2029\t\v\f5")), wantStatus: 200,
			check: contains("subject", "SMS from +1 [31m 5:")},
		{name: "encoded-word in a subject-bound field", body: hostileForm("sms", withField("sms", "message", "=?UTF-8?q?=0D=0ABcc:_x@evil.example?= =?utf-8?b?DQpCY2M6IHlAZXZpbC5leGFtcGxl?=")), wantStatus: 200,
			check: contains("subject", "SMS from +639760713666: =?UTF-8?q?=0D=0ABcc:_x@evil.example?= =?utf-8?b?DQpCY2M6IHlAZXZpbC5leGFtcGxl?=")},
		{name: "encoded-word markers between emoji", body: hostileForm("sms", withField("sms", "phone", strings.Repeat("=?😀é", 40))), wantStatus: 200,
			check: contains("subject", "SMS from =?😀é=?😀é")},
		{name: "100 KB subject-bound ASCII field", body: hostileForm("sms", withField("sms", "phone", hundredK)), wantStatus: 200,
			check: contains("text", hundredK)},
		{name: "100 KB subject-bound emoji field", body: hostileForm("sms", withField("sms", "message", emojiK)), wantStatus: 200,
			check: contains("subject", "SMS from +639760713666: 😀 😀")},
		{name: "timestamp past year 9999", body: hostileForm("sms", withField("sms", "timestamp", "9223372036854775807")), wantStatus: 200},
		{name: "multipart CRLF", contentType: mpCRLFType, body: mpCRLF, wantStatus: 200},
		{name: "JSON CRLF, NUL and script", contentType: "application/json", wantStatus: 200,
			body:  jsonBody(map[string]any{"secret": testSecret, "type": "sms" + typeInjected, "data": map[string]any{"phone": "+1" + injected, "message": "a\u0000" + injected, "n": map[string]any{"k\r\nBcc: x@evil.example": 1}}}),
			check: contains("html", "&lt;script&gt;")},

		{name: "1 MB single field within the body limit", body: hostileForm("sms", withField("sms", "message", strings.Repeat("A", 1_000_000))),
			wantStatus: 413, wantReason: "field too large: a value may hold at most 524288 bytes"},
		{name: "body over max_body_bytes", body: hostileForm("sms", withField("sms", "message", strings.Repeat("A", 1<<20))),
			wantStatus: 413, wantReason: "webhook.max_body_bytes"},
		{name: "10,000 keys", body: many(10000, func(i int) string { return fmt.Sprintf("data%%5Bk%d%%5D", i) }),
			wantStatus: 413, wantReason: "too many fields: a body may carry at most 1000"},
		{name: "10,000 times the same key", body: many(10000, func(int) string { return "data%5Ba%5D" }),
			wantStatus: 413, wantReason: "too many fields"},
		{name: "2,000 multipart parts", contentType: mpManyType, body: mpMany,
			wantStatus: 413, wantReason: "too many fields"},
		{name: "10,000 multipart parts", contentType: mpHugeType, body: mpHuge,
			wantStatus: 413, wantReason: "webhook.max_body_bytes"},
		{name: "10,000 JSON keys", contentType: "application/json", body: jsonBody(map[string]any{"secret": testSecret, "type": "sms", "data": func() map[string]int {
			m := map[string]int{}
			for i := range 10000 {
				m[fmt.Sprint(i)] = i
			}
			return m
		}()}), wantStatus: 413, wantReason: "too many fields"},
		{name: "keys nested 100 deep", body: hostileForm("sms", nil) + "&data" + strings.Repeat("%5Ba%5D", 100) + "=1",
			wantStatus: 413, wantReason: "field nested too deep: field names may nest at most 8 levels"},
		{name: "JSON nested 100 deep", contentType: "application/json", body: `{"secret":"` + testSecret + `","type":"sms","data":` + strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100) + "}",
			wantStatus: 413, wantReason: "nested too deep"},
		{name: "type over 64 bytes", body: hostileForm(strings.Repeat("t", 65), nil),
			wantStatus: 413, wantReason: "type may hold at most 64 bytes"},
		{name: "field name over 256 bytes", body: hostileForm("sms", map[string]string{strings.Repeat("n", 257): "1"}),
			wantStatus: 413, wantReason: "a field name may hold at most 256 bytes"},
	}...)
	return cases
}

// TestHostileInput posts each hostile body to the real receiver on a
// queue. A refused body must get its status and leave nothing queued; an
// accepted one is delivered by the workers' own path to the outbox, and
// the email is checked header by header and part by part.
func TestHostileInput(t *testing.T) {
	cfg := testConfig(t)
	received := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	env := newTestEnv(t, cfg, withClock(func() time.Time { return received }))
	ctx := context.Background()
	for _, tc := range hostileCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			ct := tc.contentType
			if ct == "" {
				ct = formType
			}
			rec := post(t, env.handler, ct, tc.body)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status = %d, want %d; body %.300s", rec.Code, tc.wantStatus, rec.Body)
			}
			if strings.Contains(rec.Body.String(), testSecret) {
				t.Errorf("reply echoes the secret")
			}
			if len(rec.Body.String()) > 200 {
				t.Errorf("reply is %d bytes; it must not quote the body", rec.Body.Len())
			}
			if tc.wantStatus != http.StatusOK {
				if !strings.Contains(rec.Body.String(), tc.wantReason) {
					t.Errorf("reply %s, want it to name %q", rec.Body, tc.wantReason)
				}
				if st, err := env.queue.Stats(ctx); err != nil || st.Depth != 0 {
					t.Errorf("queue depth %d (%v) after a refused body, want 0", st.Depth, err)
				}
				return
			}
			var resp struct{ ID string }
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
				t.Fatal(err)
			}
			leaseCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			lease, err := env.queue.Lease(leaseCtx)
			if err != nil || lease.Item.Event.ID != resp.ID {
				t.Fatalf("lease: %v (%+v), want event %s", err, lease, resp.ID)
			}
			ev := lease.Item.Event
			rules := env.workers.Rules()
			route := rules.Router.Match(&ev)
			msg, err := rules.Renderer.Render(&ev, route, cfg.SMTP.From)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			from, _ := mail.ParseAddress(cfg.SMTP.From)
			e := relay.CheckEmail(t, msg, relay.EmailWant{
				From: from.Address, To: route.To, Cc: route.Cc, EventID: ev.ID,
				MessageID: relay.MessageID(ev.ID, route.Name, cfg.SMTP.From), Date: ev.Time(),
			})
			if tc.check != nil {
				tc.check(t, e)
			}
			// The workers' own path writes the same bytes to the outbox.
			env.workers.Deliver(ctx, lease)
			if st, err := env.queue.Stats(ctx); err != nil || st.Depth != 0 || st.Dead != 0 {
				t.Errorf("queue %+v (%v) after the delivery, want it empty", st, err)
			}
			files, _ := filepath.Glob(filepath.Join(cfg.Outbox.Dir, ev.ID+".*.eml"))
			if len(files) != 1 {
				t.Fatalf("outbox holds %v for %s, want one email", files, ev.ID)
			}
			written, err := os.ReadFile(files[0])
			if err != nil {
				t.Fatal(err)
			}
			// The same bytes, boundaries included: they are fixed per
			// message, so a re-delivery is the same email.
			if !bytes.Equal(written, e.Raw) {
				t.Errorf("outbox email differs from the checked one:\n%s\n---\n%s", written, e.Raw)
			}
		})
	}
}
