package relay

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	htmltemplate "html/template"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hookmail/hookmail/config"
)

// email is a complete rendered email, as the SMTP sender writes it to DATA
// (Message.Build, then WriteTo), taken apart again.
type email struct {
	raw     []byte
	header  mail.Header
	subject string // decoded
	text    string
	html    string
}

// emailWant is what the headers that do not come from the payload must be.
type emailWant struct {
	from      string
	to, cc    []string
	messageID string
	eventID   string
	date      time.Time
}

var boundaryRe = regexp.MustCompile(`boundary=[0-9A-Za-z'()+_,./:=?-]+`)

// headerName is a header field name as RFC 5322 allows it.
var headerName = regexp.MustCompile(`^[!-9;-~]+:`)

// allowedHeaders are the only header fields hookmail writes: anything else
// (a Bcc, an X-Injected) came from a payload.
var allowedHeaders = []string{"Content-Type", "Date", "In-Reply-To", "References", "From", "Message-Id", "Mime-Version", "Subject", "To", "User-Agent", "X-Hookmail-Event", "X-Mailer"}

// checkEmail builds msg as the SMTP sender would, parses it with net/mail
// and checks it header by header, then its text and HTML parts.
func checkEmail(t *testing.T, msg *Message, want emailWant) *email {
	t.Helper()
	built, err := msg.Build()
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	var raw bytes.Buffer
	if _, err := built.WriteTo(&raw); err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	e := &email{raw: raw.Bytes()}

	// The header block, byte by byte: CRLF line ends only, each line a
	// field or the fold of one, nothing over RFC 5322's 998 bytes.
	head, _, ok := bytes.Cut(e.raw, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("no end of header:\n%.2000s", e.raw)
	}
	if bytes.ContainsAny(head, "\x00") {
		t.Errorf("NUL in the header block")
	}
	for i, line := range strings.Split(string(head), "\r\n") {
		switch {
		case strings.ContainsAny(line, "\r\n"):
			t.Errorf("header line %d has a bare CR or LF: %q", i, line)
		case len(line) > 998:
			t.Errorf("header line %d is %d bytes, over RFC 5322's 998", i, len(line))
		case line != "" && (line[0] == ' ' || line[0] == '\t'):
			if i == 0 {
				t.Errorf("header starts with a fold: %q", line)
			}
		case !headerName.MatchString(line):
			t.Errorf("header line %d is neither a field nor a fold: %q", i, line)
		}
	}

	m, err := mail.ReadMessage(bytes.NewReader(e.raw))
	if err != nil {
		t.Fatalf("net/mail cannot read the email: %v\n%.2000s", err, e.raw)
	}
	e.header = m.Header
	wantNames := slices.Clone(allowedHeaders)
	if len(want.cc) > 0 {
		wantNames = append(wantNames, "Cc")
	}
	if msg.Plain != "" {
		wantNames = append(wantNames, "Content-Transfer-Encoding") // one part, no multipart
	}
	for name, vs := range m.Header {
		if !slices.Contains(wantNames, name) {
			t.Errorf("unexpected header %s: %q", name, vs)
		}
		if len(vs) != 1 {
			t.Errorf("header %s appears %d times", name, len(vs))
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n\x00") {
				t.Errorf("header %s holds CR, LF or NUL: %q", name, v)
			}
		}
	}
	for _, name := range wantNames {
		if name == "In-Reply-To" || name == "References" {
			continue // only on threaded routes, for events naming a conversation
		}
		if m.Header.Get(name) == "" {
			t.Errorf("header %s missing", name)
		}
	}

	if from, err := mail.ParseAddress(m.Header.Get("From")); err != nil || from.Address != want.from {
		t.Errorf("From = %q (%v), want %s", m.Header.Get("From"), err, want.from)
	}
	checkAddrs := func(name string, want []string) {
		t.Helper()
		if len(want) == 0 {
			return
		}
		list, err := m.Header.AddressList(name)
		if err != nil {
			t.Errorf("%s = %q: %v", name, m.Header.Get(name), err)
			return
		}
		var got []string
		for _, a := range list {
			got = append(got, a.Address)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	checkAddrs("To", want.to)
	checkAddrs("Cc", want.cc)

	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Errorf("Subject %q does not decode: %v", m.Header.Get("Subject"), err)
	}
	e.subject = subject
	if !utf8.ValidString(subject) {
		t.Errorf("Subject is not valid UTF-8: %q", subject)
	}
	if i := strings.IndexFunc(subject, unicode.IsControl); i >= 0 {
		t.Errorf("Subject holds a control character at %d: %q", i, subject)
	}
	if n := utf8.RuneCountInString(subject); n > maxSubjectRunes {
		t.Errorf("Subject has %d runes, over %d", n, maxSubjectRunes)
	}
	if subject != msg.Subject {
		t.Errorf("Subject on the wire %q, rendered %q", subject, msg.Subject)
	}

	if date, err := m.Header.Date(); err != nil {
		t.Errorf("Date %q: %v", m.Header.Get("Date"), err)
	} else if !want.date.IsZero() && !date.Equal(want.date.Truncate(time.Second)) {
		t.Errorf("Date = %v, want %v", date, want.date)
	}
	if got := m.Header.Get("Message-Id"); got != "<"+want.messageID+">" {
		t.Errorf("Message-ID = %q, want <%s>", got, want.messageID)
	}
	if got := m.Header.Get("X-Hookmail-Event"); got != want.eventID {
		t.Errorf("X-Hookmail-Event = %q, want %s", got, want.eventID)
	}
	if got := m.Header.Get("Mime-Version"); got != "1.0" {
		t.Errorf("MIME-Version = %q", got)
	}

	mediaType, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if msg.Plain != "" {
		// The plain fallback: one base64 text part.
		if err != nil || mediaType != "text/plain" || params["charset"] != "UTF-8" || m.Header.Get("Content-Transfer-Encoding") != "base64" {
			t.Fatalf("plain fallback: Content-Type %q, Content-Transfer-Encoding %q; want base64 text/plain; charset=UTF-8", m.Header.Get("Content-Type"), m.Header.Get("Content-Transfer-Encoding"))
		}
		b, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, m.Body))
		if err != nil {
			t.Fatalf("plain fallback body: %v", err)
		}
		e.text = string(b)
		if !strings.Contains(e.text, msg.Plain) {
			t.Errorf("plain fallback does not say why (%q)", msg.Plain)
		}
		return e
	}
	if err != nil || mediaType != "multipart/alternative" || params["boundary"] == "" {
		t.Fatalf("Content-Type = %q (%v), want multipart/alternative with a boundary", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("body does not split into its parts: %v", err)
		}
		var body io.Reader = part // quoted-printable is undone by NextPart
		if strings.EqualFold(part.Header.Get("Content-Transfer-Encoding"), "base64") {
			body = base64.NewDecoder(base64.StdEncoding, part)
		}
		b, err := io.ReadAll(body)
		if err != nil {
			t.Fatalf("part %s: %v", part.Header.Get("Content-Type"), err)
		}
		switch ct, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type")); ct {
		case "text/plain":
			e.text = string(b)
		case "text/html":
			e.html = string(b)
		default:
			t.Errorf("unexpected part %q", part.Header.Get("Content-Type"))
		}
	}
	if e.text == "" || e.html == "" {
		t.Fatalf("want a text and an HTML part; text %d bytes, HTML %d bytes", len(e.text), len(e.html))
	}
	lower := strings.ToLower(e.html)
	for _, tag := range []string{"<script", "<img", "<iframe", "<svg", `="javascript:`} {
		if strings.Contains(lower, tag) {
			i := strings.Index(lower, tag)
			t.Errorf("HTML part holds a raw %s: …%s…", tag, e.html[max(i-80, 0):min(i+80, len(e.html))])
		}
	}
	return e
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
	wantReason  string                       // in the reply of a refused body
	check       func(t *testing.T, e *email) // more checks on a rendered email
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

func contains(parts ...string) func(t *testing.T, e *email) {
	return func(t *testing.T, e *email) {
		t.Helper()
		for i := 0; i+1 < len(parts); i += 2 {
			var in string
			switch parts[i] {
			case "html":
				in = e.html
			case "text":
				in = e.text
			case "subject":
				in = e.subject
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
			check: func(t *testing.T, e *email) {
				if bytes.Contains(e.raw, []byte{0}) || strings.Contains(e.text+e.html, "\x00") {
					t.Error("a NUL byte reached the email")
				}
				contains("subject", "SMS from +1555: ab", "html", "<title>SMS from &#43;1555</title>")(t, e)
			}},
		{name: "invalid UTF-8", body: "secret=" + testSecret + "&type=sms&data%5Bphone%5D=%2B1%FF%FE&data%5Bmessage%5D=caf%E9+%C0%AF%ED%A0%80&data%5Bk%FF%5D=%FF", wantStatus: 200,
			check: func(t *testing.T, e *email) {
				if !utf8.ValidString(e.text) || !utf8.ValidString(e.html) {
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

// TestHostileInput posts each hostile body to the real handler on a real
// spool. A refused body must get its status and leave nothing queued; an
// accepted one is delivered by the relay's own worker path to the outbox,
// and the email is checked header by header and part by part.
func TestHostileInput(t *testing.T) {
	env := newTestEnv(t, testConfig(t))
	received := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	env.relay.now = func() time.Time { return received }
	h := env.relay.Handler()
	ctx := context.Background()
	for _, tc := range hostileCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			ct := tc.contentType
			if ct == "" {
				ct = formType
			}
			rec := post(t, h, ct, tc.body)
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
				if st, err := env.spool.Stats(ctx); err != nil || st.Depth != 0 {
					t.Errorf("spool depth %d (%v) after a refused body, want 0", st.Depth, err)
				}
				return
			}
			var resp struct{ ID string }
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
				t.Fatal(err)
			}
			leaseCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			it, err := env.spool.Lease(leaseCtx)
			if err != nil || it.Event.ID != resp.ID {
				t.Fatalf("lease: %v (%+v), want event %s", err, it, resp.ID)
			}
			ev := it.Event
			l := env.relay.live.Load()
			route := l.router.Match(&ev)
			msg, err := l.renderer.Render(&ev, route, env.cfg.SMTP.From)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			from, _ := mail.ParseAddress(env.cfg.SMTP.From)
			e := checkEmail(t, msg, emailWant{
				from: from.Address, to: route.To, cc: route.Cc, eventID: ev.ID,
				messageID: MessageID(ev.ID, route.Name, env.cfg.SMTP.From), date: ev.Time(),
			})
			if tc.check != nil {
				tc.check(t, e)
			}
			// The relay's own path writes the same bytes to the outbox.
			env.relay.deliver(ctx, it)
			env.relay.acks.Wait()
			files, _ := filepath.Glob(filepath.Join(env.cfg.Outbox.Dir, ev.ID+".*.eml"))
			if len(files) != 1 {
				t.Fatalf("outbox holds %v for %s, want one email", files, ev.ID)
			}
			written, err := os.ReadFile(files[0])
			if err != nil {
				t.Fatal(err)
			}
			// Equal but for the random multipart boundary.
			outHead, _, _ := bytes.Cut(written, []byte("\r\n\r\n"))
			checkedHead, _, _ := bytes.Cut(e.raw, []byte("\r\n\r\n"))
			if a, b := boundaryRe.ReplaceAll(outHead, nil), boundaryRe.ReplaceAll(checkedHead, nil); !bytes.Equal(a, b) {
				t.Errorf("outbox header differs from the checked one:\n%s\n---\n%s", a, b)
			}
		})
	}
}

// TestEventTimeIgnoresTimestampsPastYear9999: past it the Date header would
// not parse, so the event shows when hookmail received it.
func TestEventTimeIgnoresTimestampsPastYear9999(t *testing.T) {
	received := time.Unix(1645684300, 0)
	for ts, want := range map[string]time.Time{
		"1645684231":          time.Unix(1645684231, 0),
		"253402214399":        time.Unix(253402214399, 0),
		"253402214400":        received,
		"9223372036854775807": received,
		"-1":                  received,
		"0":                   received,
	} {
		ev := &Event{Data: map[string]string{"timestamp": ts}, Received: received}
		if got := ev.Time(); !got.Equal(want) {
			t.Errorf("timestamp %s: Time = %v, want %v", ts, got, want)
		}
	}
	r, err := NewRenderer("", time.FixedZone("+14", 14*3600))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := r.Render(&Event{ID: "x", Type: "sms", Data: map[string]string{"timestamp": "253402214399"}}, &config.Route{Name: "r", To: []string{"a@example.com"}}, "h@example.com")
	if err != nil {
		t.Fatal(err)
	}
	checkEmail(t, msg, emailWant{from: "h@example.com", to: []string{"a@example.com"}, eventID: "x", messageID: "hookmail.x.r@example.com", date: time.Unix(253402214399, 0)})
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
