package relay

import (
	"bytes"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"regexp"
	"strings"
	"testing"
	"time"
)

// qpByTheWriter is s as mime/quotedprintable's Writer encodes it.
func qpByTheWriter(t testing.TB, s string) string {
	var b bytes.Buffer
	w := quotedprintable.NewWriter(&b)
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// qpCases are the quoted-printable encoder's edges: line ends of each kind,
// spaces before them and at the end, "=", bytes to encode where a soft break
// is due, and lines of every length around the 76 limit.
func qpCases() []string {
	cases := []string{
		"", "a", "=", " ", "\t", "a ", "a\t", "a \n", "a\t\r\nb", "\r", "\n", "\r\n", "\n\r", "\r\r\n\n",
		"\r\xff\nx", "a\r\xffb\n", "caf\u00e9 cr\u00e8me", "<p class=\"x\">\u00e9t\u00e9</p>\n",
		"\x00\x01\x7f\x80\xff", "line one\nline two  \nline three\t\n",
	}
	for n := 70; n <= 80; n++ {
		for _, tail := range []string{"", " ", "=", "\u00e9", "\n", " \n", "ab", "= "} {
			cases = append(cases, strings.Repeat("x", n)+tail, strings.Repeat("x", n)+tail+strings.Repeat("y", 90))
		}
		cases = append(cases, strings.Repeat(" ", n), strings.Repeat("\u00e9", n), strings.Repeat("x=", n))
	}
	return cases
}

func TestAppendQPMatchesTheStandardLibrary(t *testing.T) {
	for _, s := range qpCases() {
		if got, want := string(appendQP(nil, s)), qpByTheWriter(t, s); got != want {
			t.Errorf("appendQP(%q)\n got %q\nwant %q", s, got, want)
		}
	}
	// Appending keeps what dst held.
	if got := string(appendQP([]byte("head:"), "a=b")); got != "head:a=3Db" {
		t.Errorf("appendQP onto a prefix = %q", got)
	}
}

// FuzzAppendQP holds appendQP to the standard library's bytes, and checks
// that no line is over quoted-printable's 76 characters.
func FuzzAppendQP(f *testing.F) {
	for _, s := range qpCases() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := appendQP(nil, s)
		if want := qpByTheWriter(t, s); string(got) != want {
			t.Fatalf("appendQP(%q)\n got %q\nwant %q", s, got, want)
		}
		for line := range strings.SplitSeq(string(got), "\r\n") {
			if len(line) > qpLineMax {
				t.Fatalf("line of %d characters: %q", len(line), line)
			}
		}
	})
}

func TestWriteHeaderFolds(t *testing.T) {
	for _, value := range []string{
		"short",
		strings.Repeat("word ", 60),
		"two  spaces and a trailing one ",
		strings.Repeat("x", 60) + " " + strings.Repeat("y", 60),
		headerText(strings.Repeat("a ", 5) + strings.Repeat(" ", 80) + "z"),
		headerText(strings.Repeat("x", 61) + " \u00e9"),
	} {
		var b bytes.Buffer
		writeHeader(&b, "Subject", value)
		out := b.String()
		if !strings.HasSuffix(out, "\r\n") {
			t.Fatalf("%q does not end in CRLF", out)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\r\n"), "\r\n")
		for i, line := range lines {
			if len(line) > maxHeaderLine {
				t.Errorf("line %d of %q is %d characters", i, value, len(line))
			}
			if i > 0 && strings.TrimSpace(line) == "" {
				t.Errorf("line %d of %q is spaces alone: %q", i, value, line)
			}
		}
		// Unfolding (RFC 5322 2.2.3: remove each CRLF before a space)
		// gives the value back.
		if got := strings.TrimPrefix(strings.ReplaceAll(strings.TrimSuffix(out, "\r\n"), "\r\n", ""), "Subject: "); got != value {
			t.Errorf("unfolded\n got %q\nwant %q", got, value)
		}
	}
}

// A subject of one long word (a URL, a token) is encoded into words the
// header can fold, where go-mail wrote it on one line of 150 characters;
// a subject that is not ASCII folds before its first encoded word.
func TestSubjectsFoldWithin78(t *testing.T) {
	for _, subject := range []string{
		"Code " + strings.Repeat("0123456789", 14) + " end",
		"SMS from +4915112345678: Gr\u00fc\u00dfe aus M\u00fcnchen, bis sp\u00e4ter",
	} {
		m := &Message{EventID: "e", From: "h@example.com", To: []string{"a@example.com"}, Subject: subject,
			Text: "t", HTML: "<p>t</p>", MessageID: "hookmail.e.r@example.com", Date: time.Unix(1700000000, 0),
			Attachments: []Attachment{{Name: "Gr\u00fc\u00dfe aus M\u00fcnchen, bis sp\u00e4ter.jpg", ContentType: "image/jpeg", Data: []byte("x")}}}
		e := CheckEmail(t, m, EmailWant{From: "h@example.com", To: []string{"a@example.com"}, EventID: "e",
			MessageID: "hookmail.e.r@example.com", Date: time.Unix(1700000000, 0)})
		if e.Subject != subject {
			t.Errorf("subject decodes to %q, want %q", e.Subject, subject)
		}
		for line := range strings.SplitSeq(string(e.Raw), "\r\n") {
			if len(line) > 78 {
				t.Errorf("line of %d characters: %q", len(line), line)
			}
		}
	}
}

// A file name of plain ASCII stays as it is, however long: an encoded word
// inside a quoted parameter is shown raw by strict readers (RFC 2047 5).
func TestASCIIFileNameStaysPlain(t *testing.T) {
	name := strings.Repeat("a", 80) + ".jpg"
	m := &Message{EventID: "e", From: "h@example.com", To: []string{"a@example.com"}, Subject: "s",
		Text: "t", MessageID: "hookmail.e.r@example.com", Date: time.Unix(1700000000, 0),
		Attachments: []Attachment{{Name: name, ContentType: "image/jpeg", Data: []byte("x")}}}
	raw, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	unfolded := strings.ReplaceAll(string(raw), "\r\n ", " ")
	for _, want := range []string{`filename="` + name + `"`, `name="` + name + `"`} {
		if !strings.Contains(unfolded, want) {
			t.Errorf("no %s in\n%s", want, raw)
		}
	}
}

// A From domain that is not ASCII leaves the Message-ID its "@".
func TestMessageIDKeepsItsAt(t *testing.T) {
	m := &Message{EventID: "e", From: "alerts@b\u00fccher.example", To: []string{"a@example.com"}, Subject: "s",
		Text: "t", MessageID: MessageID("e", "r", "alerts@b\u00fccher.example"), ThreadID: "t.x@b\u00fccher.example",
		Date: time.Unix(1700000000, 0)}
	raw, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"Message-ID": "<hookmail.e.r@b-cher.example>", "References": "<t.x@b-cher.example>"} {
		if got := headerOf(t, raw, name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
}

// The same message is the same bytes every time (go-mail drew a random
// boundary per build), so a re-delivery after a crash is the same email.
func TestEncodeIsDeterministic(t *testing.T) {
	build := func() []byte {
		m := &Message{EventID: "e", From: `"Relay" <h@example.com>`, To: []string{"a@example.com", "b@example.com"},
			Subject: "S", Text: "t", HTML: "<p>t</p>", MessageID: "hookmail.e.r@example.com", Date: time.Unix(1700000000, 0),
			Attachments: []Attachment{{Name: "a.jpg", ContentType: "image/jpeg", Data: []byte("\xff\xd8\xff")}}}
		raw, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	a, b := build(), build()
	if !bytes.Equal(a, b) {
		t.Errorf("two encodings differ:\n%s\n----\n%s", a, b)
	}
	// The same in every process, as after a crash: fixed by the
	// Message-ID, not seeded per run.
	_, params, err := mime.ParseMediaType(headerOf(t, a, "Content-Type"))
	if want := "=_mixed_3eaif054gwak5"; err != nil || params["boundary"] != want {
		t.Errorf("boundary %q (%v), want %q", params["boundary"], err, want)
	}
}

// headerOf is the value of the top-level header field name in raw.
func headerOf(t *testing.T, raw []byte, name string) string {
	t.Helper()
	head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	unfolded := strings.ReplaceAll(string(head), "\r\n ", " ")
	for line := range strings.SplitSeq(unfolded, "\r\n") {
		if v, ok := strings.CutPrefix(line, name+": "); ok {
			return v
		}
	}
	t.Fatalf("no %s in\n%s", name, head)
	return ""
}

func TestEncodeRefusesABadAddress(t *testing.T) {
	for field, m := range map[string]*Message{
		"from":     {From: "not an address", To: []string{"a@example.com"}},
		"to":       {From: "h@example.com", To: []string{"a@example.com", "nope"}},
		"cc":       {From: "h@example.com", Cc: []string{"<x"}},
		"bcc":      {From: "h@example.com", Bcc: []string{"@"}},
		"reply_to": {From: "h@example.com", To: []string{"a@example.com"}, ReplyTo: "x@"},
	} {
		_, err := m.Encode()
		if err == nil || !strings.HasPrefix(err.Error(), field+" ") || Classify(err) != Permanent {
			t.Errorf("%s: err = %v, want a permanent error naming %s", field, err, field)
		}
	}
}

func TestParseAddressIsCached(t *testing.T) {
	const s = `"Ops Team" <ops@example.com>`
	want, err := mail.ParseAddress(s)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		got, err := ParseAddress(s)
		if err != nil || *got != *want {
			t.Fatalf("ParseAddress = %v, %v; want %v", got, err, want)
		}
	}
	// A cached address costs the copy returned, where net/mail allocates
	// a dozen times.
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseAddress(s) }); n > 1 {
		t.Errorf("ParseAddress of a cached address: %v allocations, want at most 1", n)
	}
	for range 2 {
		if _, err := ParseAddress("not an address"); err == nil {
			t.Fatal("a bad address parsed")
		}
	}
	if addresses.Contains("not an address") {
		t.Error("a bad address was cached")
	}
}

// TestSafeIDMatchesTheRegexp holds SafeID to the regexp it replaced.
func TestSafeIDMatchesTheRegexp(t *testing.T) {
	unsafeIDChars := regexp.MustCompile(`[^A-Za-z0-9._-]+`)
	for _, s := range []string{"", "abc", "01J0-evt_1.2", "a b", "a/b/../c", "é", "<x>", "a\r\nb", "--", "a..b",
		" lead", "trail ", "b\u00fccher.example", "\xff\xfe", "x\xffy", "日本語", "a  b\t\tc"} {
		if got, want := SafeID(s), unsafeIDChars.ReplaceAllString(s, "-"); got != want {
			t.Errorf("SafeID(%q) = %q, want %q", s, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = SafeID("01J0ABCDEF.route_1-x") }); n != 0 {
		t.Errorf("SafeID of a safe id: %v allocations, want 0", n)
	}
}
