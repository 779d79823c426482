package relay

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// The email checker is exported, in a test file, so that the external
// tests (package relay_test) check their emails with the same one.

// Email is a complete rendered email, as the SMTP sender writes it to DATA
// (Message.Encode), taken apart again.
type Email struct {
	Raw     []byte
	Header  mail.Header
	Subject string // decoded
	Text    string
	HTML    string
	// Files are the attachments, in order.
	Files []EmailFile
}

// EmailWant is what the headers that do not come from the payload must be.
type EmailWant struct {
	From      string
	To, Cc    []string
	MessageID string
	EventID   string
	Date      time.Time
}

// headerName is a header field name as RFC 5322 allows it.
var headerName = regexp.MustCompile(`^[!-9;-~]+:`)

// allowedHeaders are the only header fields hookmail writes: anything else
// (a Bcc, an X-Injected) came from a payload.
var allowedHeaders = []string{"Content-Type", "Date", "In-Reply-To", "References", "From", "Message-Id", "Mime-Version", "Subject", "To", "User-Agent", "X-Hookmail-Event", "X-Mailer"}

// CheckEmail builds msg as the SMTP sender would, parses it with net/mail
// and checks it header by header, then its text and HTML parts.
func CheckEmail(t *testing.T, msg *Message, want EmailWant) *Email {
	t.Helper()
	raw, err := msg.Encode()
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	e := &Email{Raw: raw}

	// The header block, byte by byte: CRLF line ends only, each line a
	// field or the fold of one, nothing over RFC 5322's 998 bytes.
	head, _, ok := bytes.Cut(e.Raw, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("no end of header:\n%.2000s", e.Raw)
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

	m, err := mail.ReadMessage(bytes.NewReader(e.Raw))
	if err != nil {
		t.Fatalf("net/mail cannot read the email: %v\n%.2000s", err, e.Raw)
	}
	e.Header = m.Header
	wantNames := slices.Clone(allowedHeaders)
	if len(want.Cc) > 0 {
		wantNames = append(wantNames, "Cc")
	}
	if msg.Plain != "" && len(msg.Attachments) == 0 {
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

	if from, err := mail.ParseAddress(m.Header.Get("From")); err != nil || from.Address != want.From {
		t.Errorf("From = %q (%v), want %s", m.Header.Get("From"), err, want.From)
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
	checkAddrs("To", want.To)
	checkAddrs("Cc", want.Cc)

	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Errorf("Subject %q does not decode: %v", m.Header.Get("Subject"), err)
	}
	e.Subject = subject
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
	} else if !want.Date.IsZero() && !date.Equal(want.Date.Truncate(time.Second)) {
		t.Errorf("Date = %v, want %v", date, want.Date)
	}
	if got := m.Header.Get("Message-Id"); got != "<"+want.MessageID+">" {
		t.Errorf("Message-ID = %q, want <%s>", got, want.MessageID)
	}
	if got := m.Header.Get("X-Hookmail-Event"); got != want.EventID {
		t.Errorf("X-Hookmail-Event = %q, want %s", got, want.EventID)
	}
	if got := m.Header.Get("Mime-Version"); got != "1.0" {
		t.Errorf("MIME-Version = %q", got)
	}

	body := io.Reader(m.Body)
	mediaType, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if len(msg.Attachments) > 0 {
		// multipart/mixed: the body, then each file.
		if err != nil || mediaType != "multipart/mixed" || params["boundary"] == "" {
			t.Fatalf("Content-Type = %q (%v), want multipart/mixed with a boundary", m.Header.Get("Content-Type"), err)
		}
		mr := multipart.NewReader(m.Body, params["boundary"])
		first, err := mr.NextPart()
		if err != nil {
			t.Fatalf("no first part: %v", err)
		}
		mediaType, params, err = mime.ParseMediaType(first.Header.Get("Content-Type"))
		body = first
		if msg.Plain != "" {
			body = base64.NewDecoder(base64.StdEncoding, first)
			if first.Header.Get("Content-Transfer-Encoding") != "base64" {
				t.Errorf("plain fallback's text part: Content-Transfer-Encoding %q, want base64", first.Header.Get("Content-Transfer-Encoding"))
			}
		}
		b, _ := io.ReadAll(body) // the files follow it in the same reader
		body = bytes.NewReader(b)
		for {
			part, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("body does not split into its parts: %v", err)
			}
			e.Files = append(e.Files, readFile(t, part))
		}
		if len(e.Files) != len(msg.Attachments) {
			t.Errorf("%d files in the email, want %d", len(e.Files), len(msg.Attachments))
		}
	}
	if msg.Plain != "" {
		// The plain fallback: one base64 text part.
		if err != nil || mediaType != "text/plain" || params["charset"] != "UTF-8" || len(msg.Attachments) == 0 && m.Header.Get("Content-Transfer-Encoding") != "base64" {
			t.Fatalf("plain fallback: Content-Type %q, Content-Transfer-Encoding %q; want base64 text/plain; charset=UTF-8", m.Header.Get("Content-Type"), m.Header.Get("Content-Transfer-Encoding"))
		}
		if len(msg.Attachments) == 0 {
			body = base64.NewDecoder(base64.StdEncoding, body)
		}
		b, err := io.ReadAll(body)
		if err != nil {
			t.Fatalf("plain fallback body: %v", err)
		}
		e.Text = string(b)
		if !strings.Contains(e.Text, msg.Plain) {
			t.Errorf("plain fallback does not say why (%q)", msg.Plain)
		}
		return e
	}
	if err != nil || mediaType != "multipart/alternative" || params["boundary"] == "" {
		t.Fatalf("Content-Type = %q (%v), want multipart/alternative with a boundary", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(body, params["boundary"])
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
			e.Text = string(b)
		case "text/html":
			e.HTML = string(b)
		default:
			t.Errorf("unexpected part %q", part.Header.Get("Content-Type"))
		}
	}
	if e.Text == "" || e.HTML == "" {
		t.Fatalf("want a text and an HTML part; text %d bytes, HTML %d bytes", len(e.Text), len(e.HTML))
	}
	lower := strings.ToLower(e.HTML)
	for _, tag := range []string{"<script", "<img", "<iframe", "<svg", `="javascript:`} {
		if strings.Contains(lower, tag) {
			i := strings.Index(lower, tag)
			t.Errorf("HTML part holds a raw %s: …%s…", tag, e.HTML[max(i-80, 0):min(i+80, len(e.HTML))])
		}
	}
	return e
}

// EmailFile is one attachment of an Email, decoded.
type EmailFile struct {
	Name, ContentType string
	Data              []byte
}

// readFile reads one attachment part: base64, "attachment" with a file
// name, the same name in its Content-Type, a media type without
// parameters but the name.
func readFile(t *testing.T, part *multipart.Part) EmailFile {
	t.Helper()
	disp, dparams, err := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
	if err != nil || disp != "attachment" {
		t.Errorf("Content-Disposition %q (%v), want attachment", part.Header.Get("Content-Disposition"), err)
	}
	ct, cparams, err := mime.ParseMediaType(part.Header.Get("Content-Type"))
	if err != nil {
		t.Errorf("Content-Type %q: %v", part.Header.Get("Content-Type"), err)
	}
	if len(cparams) != 1 || cparams["name"] != dparams["filename"] {
		t.Errorf("Content-Type %q, Content-Disposition %q: want the same name in both, and no other parameter", part.Header.Get("Content-Type"), part.Header.Get("Content-Disposition"))
	}
	if enc := part.Header.Get("Content-Transfer-Encoding"); enc != "base64" {
		t.Errorf("file %q: Content-Transfer-Encoding %q, want base64", dparams["filename"], enc)
	}
	name, err := new(mime.WordDecoder).DecodeHeader(dparams["filename"])
	if err != nil {
		t.Errorf("file name %q does not decode: %v", dparams["filename"], err)
	}
	b, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, part))
	if err != nil {
		t.Errorf("file %q: %v", name, err)
	}
	return EmailFile{Name: name, ContentType: ct, Data: b}
}
