package relay

import (
	"fmt"
	htmltemplate "html/template"
	"regexp"
	"strings"
	"sync"
	texttemplate "text/template"
	"time"
	"unicode"
	"unicode/utf8"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/nyaruka/phonenumbers"
)

// The helpers every template may call, documented in README.md.

// dateLayout is how the date helper writes a time.
const dateLayout = "Mon, 2 Jan 2006 15:04:05 MST"

var sharedFuncs = map[string]any{
	"date":     func(t time.Time) string { return t.Format(dateLayout) },
	"dateIn":   dateIn,
	"phone":    formatPhone,
	"lines":    splitLines,
	"truncate": Truncate,
	"oneline":  OneLine,
	"facts":    facts,
	"add":      func(a, b int) int { return a + b },
	"size":     formatSize,
}

var textFuncs = texttemplate.FuncMap(sharedFuncs)
var htmlFuncs = htmltemplate.FuncMap(sharedFuncs)

var newlines = regexp.MustCompile(`\r\n|\r|\n`)

// dateIn formats t with a Go layout in the named zone: dateIn
// "Europe/Berlin" "2006-01-02 15:04" .Time. An unknown zone keeps t's own.
func dateIn(zone, layout string, t time.Time) string {
	if loc := zoneNamed(zone); loc != nil {
		t = t.In(loc)
	}
	return t.Format(layout)
}

// zones caches time.LoadLocation, which reads the zone's file on every
// call: a template calls dateIn once per email.
var zones sync.Map // zone name → *time.Location, nil for an unknown zone

func zoneNamed(name string) *time.Location {
	if loc, ok := zones.Load(name); ok {
		return loc.(*time.Location)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		loc = nil
	}
	zones.Store(name, loc)
	return loc
}

// formatPhone writes an international number the way people read it
// (+63 976 071 3666), with libphonenumber's rules for its country. Anything
// else (a WhatsApp group id, a short code, a name) comes back as it is, but
// for the invisible characters that could make it read as another (see
// isSpoofer).
func formatPhone(s string) string {
	s = stripSpoofers(s)
	if !strings.HasPrefix(s, "+") {
		return s
	}
	if f, ok := phones.Get(s); ok {
		return f
	}
	f := s
	if n, err := phonenumbers.Parse(s, ""); err == nil && phonenumbers.IsPossibleNumber(n) {
		f = phonenumbers.Format(n, phonenumbers.INTERNATIONAL)
	}
	phones.Add(s, f)
	return f
}

// phones caches formatPhone: libphonenumber's parsing runs dozens of
// regular expressions, a sixth of a delivery's CPU when it ran per email,
// while the numbers that write to one hookmail are few and repeat. The
// cache is bounded, so a flood of distinct numbers costs what it did.
// (lru.New fails only for a size below 1.)
var phones, _ = lru.New[string, string](4096)

// splitLines lets HTML templates put a <br> between lines while
// html/template still escapes each line.
func splitLines(s string) []string { return newlines.Split(s, -1) }

// Truncate shortens s to n runes, marking the cut with an ellipsis.
func Truncate(n int, s string) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:max(n-1, 0)]) + "…"
}

// OneLine folds all white space and control characters into single
// spaces and drops the invisible ones that could spoof (see isSpoofer), so
// a field fits a subject or a label's line and reads as what it is.
func OneLine(s string) string {
	return strings.Join(strings.FieldsFunc(stripSpoofers(s), func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}), " ")
}

// isSpoofer reports whether r changes how the text around it displays
// while staying invisible itself: the bidirectional controls (U+061C ALM,
// U+200E LRM, U+200F RLM, U+202A-U+202E embeddings and overrides,
// U+2066-U+2069 isolates), which make "\u202Egnp.exe" read "exe.png", and
// the zero-width characters (U+200B, U+2060-U+2064, U+FEFF, U+180E), which
// make two different strings look the same. U+200C and U+200D (ZWNJ, ZWJ)
// are not among them: Persian and Indic scripts and emoji sequences need
// them.
func isSpoofer(r rune) bool {
	switch {
	case unicode.Is(unicode.Bidi_Control, r):
		return true
	case r == '\u200B', r == '\uFEFF', r == '\u180E', r >= '\u2060' && r <= '\u2064':
		return true
	}
	return false
}

// stripSpoofers drops the characters isSpoofer names. It is for what a
// reader judges an email by (who wrote it, what it is about); a message
// itself keeps them, since right-to-left text uses LRM and RLM, and the
// HTML part isolates it in a dir="auto" block instead.
func stripSpoofers(s string) string {
	if !strings.ContainsFunc(s, isSpoofer) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isSpoofer(r) {
			return -1
		}
		return r
	}, s)
}

// subjectLine makes a rendered subject template one readable header line,
// whatever the fields held: valid UTF-8 (the decoder repairs payloads, but
// an override template or `hookmail render --field` may not), no line
// breaks, control or spoofing characters, at most maxSubjectRunes.
func subjectLine(s string) string {
	return Truncate(maxSubjectRunes, OneLine(strings.ToValidUTF8(s, "\uFFFD")))
}

// facts pairs labels with values, leaving out empty values and the
// spoofing characters of each (a value is a name, a number, an id):
// facts "From" .phone "SIM" .sim.
func facts(kv ...string) []Field {
	var out []Field
	for i := 0; i+1 < len(kv); i += 2 {
		if v := stripSpoofers(kv[i+1]); v != "" {
			out = append(out, Field{Name: kv[i], Value: v})
		}
	}
	return out
}

// formatSize writes a file size as people read it: 512 B, 14 KB, 2.3 MB.
func formatSize(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1000*1000:
		return fmt.Sprintf("%.0f KB", float64(n)/1000)
	}
	return fmt.Sprintf("%.1f MB", float64(n)/1000/1000)
}
