package relay

import (
	"mime"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzAttachmentNames: whatever a sender names a file and its type, the
// email gets a name that is valid UTF-8, at most maxFileNameRunes, without
// directories, control, spoofing or quoting characters, and the same when
// made safe again (the MIME writer does); and a media type that parses, with
// one "/" and no parameter.
func FuzzAttachmentNames(f *testing.F) {
	for _, seed := range [][2]string{
		{"photo.jpg", "image/jpeg"}, {"../../etc/passwd", "text/plain; charset=x"}, {"a\r\nBcc: x", "multipart/mixed; boundary=x"},
		{"\u202Egnp.exe", "image"}, {"", ""}, {"..", "message/rfc822"}, {strings.Repeat("é", 200), "IMAGE/PNG"}, {"\xff\xfe", "\x00/\x00"},
		{strings.Repeat("a", 99) + " bc", ""}, {strings.Repeat("a", 99) + ".bcdefghijklm", ""},
	} {
		f.Add(seed[0], seed[1], 3)
	}
	f.Fuzz(func(t *testing.T, name, ct string, i int) {
		i = max(i%1000, 1)
		got := safeFileName(name, i, ct)
		if got == "" || !utf8.ValidString(got) || utf8.RuneCountInString(got) > maxFileNameRunes {
			t.Fatalf("safeFileName(%q) = %q", name, got)
		}
		if strings.ContainsAny(got, "/\\\"?:<>|=") || strings.ContainsFunc(got, func(r rune) bool { return unicode.IsControl(r) || isSpoofer(r) }) {
			t.Fatalf("safeFileName(%q) = %q holds a character it must not", name, got)
		}
		if again := safeFileName(got, i, ct); again != got {
			t.Fatalf("safeFileName is not stable: %q, then %q", got, again)
		}
		mt := safeMediaType(ct)
		parsed, params, err := mime.ParseMediaType(mt)
		if err != nil || parsed != mt || len(params) != 0 || strings.Count(mt, "/") != 1 {
			t.Fatalf("safeMediaType(%q) = %q (%v %v)", ct, mt, params, err)
		}
	})
}
