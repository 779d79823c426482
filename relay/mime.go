package relay

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"hash/fnv"
	"mime"
	"net/mail"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	lru "github.com/hashicorp/golang-lru/v2"
)

// The MIME writer. hookmail's emails have one shape (a text part, an
// optional HTML alternative, optional attachments), so they are written
// here in one pass into one buffer; go-mail's message builder, which
// hookmail used before, spent more on a delivery than the SMTP exchange
// (a header map, a buffer per part, quoted-printable byte by byte, a
// random boundary). go-mail remains the SMTP client.
//
// The layout:
//
//	text only                    text/plain
//	text + HTML                  multipart/alternative (text, HTML)
//	either, with attachments     multipart/mixed (the above, then each file)
//
// Text and HTML are UTF-8 quoted-printable (the plain fallback's text,
// base64: its size is known before encoding); files are base64.
// Boundaries begin with "=_", which neither encoding can write, so no
// content can end a part early.

// encodeTo writes m as an RFC 5322 message to b.
func (m *Message) encodeTo(b *bytes.Buffer) error {
	from, err := addressList("from", []string{m.From})
	if err != nil {
		return err
	}
	to, err := addressList("to", m.To)
	if err != nil {
		return err
	}
	cc, err := addressList("cc", m.Cc)
	if err != nil {
		return err
	}
	replyTo, err := addressList("reply_to", optional(m.ReplyTo))
	if err != nil {
		return err
	}
	if _, err := addressList("bcc", m.Bcc); err != nil {
		return err
	}

	writeHeader(b, "Date", m.Date.Format(time.RFC1123Z))
	writeHeader(b, "MIME-Version", "1.0")
	writeHeader(b, "Message-ID", "<"+headerID(m.MessageID)+">")
	writeHeader(b, "Subject", headerText(m.Subject))
	writeHeader(b, "User-Agent", "hookmail")
	writeHeader(b, "X-Hookmail-Event", headerText(m.EventID))
	writeHeader(b, "X-Mailer", "hookmail")
	writeHeader(b, "From", from)
	if to != "" {
		writeHeader(b, "To", to)
	}
	if cc != "" {
		writeHeader(b, "Cc", cc)
	}
	if replyTo != "" {
		writeHeader(b, "Reply-To", replyTo)
	}
	if m.ThreadID != "" {
		ref := "<" + headerID(m.ThreadID) + ">"
		writeHeader(b, "References", ref)
		writeHeader(b, "In-Reply-To", ref)
	}

	mixed, alt := m.boundaries()
	if len(m.Attachments) > 0 {
		writeHeader(b, "Content-Type", `multipart/mixed; boundary="`+mixed+`"`)
		b.WriteString("\r\n--" + mixed + "\r\n")
	}
	m.writeBody(b, alt)
	for i, a := range m.Attachments {
		ct := safeMediaType(a.ContentType)
		// A safe name holds no '"', '\\' or "=?"; a name that is not
		// ASCII is written as encoded words, as go-mail and most mailers
		// do, which mail clients decode in a parameter too.
		name := mime.QEncoding.Encode("UTF-8", safeFileName(a.Name, i+1, ct))
		b.WriteString("\r\n--" + mixed + "\r\n")
		writeHeader(b, "Content-Disposition", `attachment; filename="`+name+`"`)
		writeHeader(b, "Content-Transfer-Encoding", "base64")
		writeHeader(b, "Content-Type", ct+`; name="`+name+`"`)
		b.WriteString("\r\n")
		appendBase64(b, a.Data)
	}
	if len(m.Attachments) > 0 {
		b.WriteString("\r\n--" + mixed + "--\r\n")
	}
	return nil
}

// writeBody writes the Content-Type of the text (and HTML) and what
// follows it: a part's header and content, or a multipart/alternative.
func (m *Message) writeBody(b *bytes.Buffer, alt string) {
	if m.HTML == "" {
		writeText(b, "text/plain", m.Text, m.Plain != "")
		return
	}
	writeHeader(b, "Content-Type", `multipart/alternative; boundary="`+alt+`"`)
	b.WriteString("\r\n--" + alt + "\r\n")
	writeText(b, "text/plain", m.Text, false)
	b.WriteString("\r\n--" + alt + "\r\n")
	writeText(b, "text/html", m.HTML, false)
	b.WriteString("\r\n--" + alt + "--\r\n")
}

// writeText writes a UTF-8 text part: its two header fields, the blank
// line and the content, quoted-printable, or base64 when b64 is set.
func writeText(b *bytes.Buffer, mediaType, s string, b64 bool) {
	encoding := "quoted-printable"
	if b64 {
		encoding = "base64"
	}
	writeHeader(b, "Content-Transfer-Encoding", encoding)
	writeHeader(b, "Content-Type", mediaType+"; charset=UTF-8")
	b.WriteString("\r\n")
	if b64 {
		appendBase64(b, []byte(s))
	} else {
		b.Write(appendQP(b.AvailableBuffer(), s))
	}
}

// boundaries are the message's two multipart boundaries: "=_" (which
// neither quoted-printable nor base64 writes), a hash of the Message-ID,
// and which one it is, so the same message is the same bytes every time.
func (m *Message) boundaries() (mixed, alt string) {
	h := fnv.New64a()
	h.Write([]byte(m.MessageID))
	id := strconv.FormatUint(h.Sum64(), 36)
	return "=_mixed_" + id, "=_alt_" + id
}

// optional is s as a list of one, or none when s is empty.
func optional(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// addressList parses each address (a permanent error, naming the field,
// when one is not an address) and writes them as a header value: the name,
// RFC 2047-encoded when it is not ASCII, and the address in angle brackets.
func addressList(field string, addrs []string) (string, error) {
	var list strings.Builder
	for i, s := range addrs {
		a, err := ParseAddress(s)
		if err != nil {
			return "", PermanentErr(fmt.Errorf("%s %q: %w", field, s, err))
		}
		if i > 0 {
			list.WriteString(", ")
		}
		list.WriteString(a.String())
	}
	return list.String(), nil
}

// ParseAddress is net/mail's ParseAddress, cached. A delivery parsed the
// same few addresses (the From, the route's recipients) six times over,
// 3% of a drain's CPU: they come from the config, so they repeat. The
// cache is bounded, and an address that does not parse is not kept.
func ParseAddress(s string) (*mail.Address, error) {
	if a, ok := addresses.Get(s); ok {
		return &a, nil
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, err
	}
	addresses.Add(s, *a)
	return a, nil
}

// addresses holds ParseAddress's results by the text parsed. (lru.New
// fails only for a size below 1.)
var addresses, _ = lru.New[string, mail.Address](1024)

// headerID is an id (a Message-ID or a thread's, without angle brackets)
// as a header writes it: already safe, as hookmail makes them, or made so
// on each side of its last "@", which stays (RFC 5322 3.6.4 wants it). A
// From domain that is not ASCII ("bücher.example") would otherwise lose it.
func headerID(id string) string {
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' || c == '<' || c == '>' {
			if at := strings.LastIndexByte(id, '@'); at >= 0 {
				return SafeID(id[:at]) + "@" + SafeID(id[at+1:])
			}
			return SafeID(id)
		}
	}
	return id
}

// headerText is an unstructured header value (a Subject) as the header
// writes it: printable ASCII (and tabs) as it is, anything else as RFC 2047
// encoded words (mime.QEncoding's), so a CR, LF or NUL never reaches the
// wire raw.
//
// A value already holding "=?" is encoded whole, as base64 encoded-words of
// whole characters (RFC 2047 section 5): left as it is, a payload's own
// "=?UTF-8?q?=0D=0ABcc:_x@evil.example?=" would be decoded by every mail
// client into a line break and a fake header. So is one with a word too
// long to fold under RFC 5322's 78 characters a line.
func headerText(s string) string {
	if strings.Contains(s, "=?") || longestRun(s) > maxRun {
		return bWords(s)
	}
	return mime.QEncoding.Encode("UTF-8", s)
}

// maxRun is the longest stretch of a header value that writeHeader cannot
// fold that is written as it is: with "X-Hookmail-Event: " before it, 78
// characters.
const maxRun = 60

// longestRun is the length of s's longest stretch between the places
// writeHeader may fold it (before a word that follows a space).
func longestRun(s string) int {
	longest, start := 0, 0
	for i := 1; i < len(s); i++ {
		if s[i-1] == ' ' && s[i] != ' ' {
			longest = max(longest, i-start)
			start = i
		}
	}
	return max(longest, len(s)-start)
}

// bWords is s as base64 encoded-words of whole characters, each under the
// 75 characters RFC 2047 allows, separated by spaces where the header folds.
func bWords(s string) string {
	const maxChunk = 36 // bytes: 48 in base64, 60 with "=?UTF-8?b?" and "?="
	var words []string
	for s != "" {
		n := 0
		for n < len(s) {
			_, size := utf8.DecodeRuneInString(s[n:])
			if n > 0 && n+size > maxChunk {
				break
			}
			n += size
		}
		words = append(words, "=?UTF-8?b?"+base64.StdEncoding.EncodeToString([]byte(s[:n]))+"?=")
		s = s[n:]
	}
	return strings.Join(words, " ")
}

// maxHeaderLine is where a header line folds, at the last space before it
// (RFC 5322 2.1.1 asks for 78 characters at most, CRLF excluded).
const maxHeaderLine = 76

// writeHeader writes "name: value" and CRLF, folding the value at spaces
// so each line stays within maxHeaderLine where it can: before any word
// that would pass it, the first too (go-mail did the same), but never
// before an empty word, since a line of spaces alone is not a fold. The
// value must hold no CR or LF: every caller's is encoded, an address, or
// hookmail's own.
func writeHeader(b *bytes.Buffer, name, value string) {
	b.WriteString(name)
	b.WriteByte(':')
	col := len(name) + 1
	for word := range strings.SplitSeq(value, " ") {
		if word != "" && col+1+len(word) > maxHeaderLine {
			b.WriteString("\r\n ")
			col = 1
		} else {
			b.WriteByte(' ')
			col++
		}
		b.WriteString(word)
		col += len(word)
	}
	b.WriteString("\r\n")
}

// appendBase64 writes data base64-encoded in lines of 76 characters, each
// ended by CRLF.
func appendBase64(b *bytes.Buffer, data []byte) {
	const perLine = 57 // input bytes per 76-character line
	enc := base64.StdEncoding
	b.Grow(enc.EncodedLen(len(data)) + (len(data)/perLine+1)*2)
	for len(data) > 0 {
		n := min(len(data), perLine)
		b.Write(enc.AppendEncode(b.AvailableBuffer(), data[:n]))
		b.WriteString("\r\n")
		data = data[n:]
	}
}

// qpLineMax is quoted-printable's longest line (RFC 2045 6.7), CRLF
// excluded.
const qpLineMax = 76

// appendQP appends s to dst quoted-printable encoded, byte for byte as
// mime/quotedprintable's Writer (text mode) writes it and then closes:
// CR, LF and CRLF become CRLF, a space or tab before a line end is encoded,
// and soft line breaks keep each line within 76 characters. The Writer
// does this a byte at a time; this copies each run of bytes that need no
// encoding at once. TestAppendQPMatchesTheStandardLibrary and
// FuzzAppendQP hold the two to the same bytes.
func appendQP(dst []byte, s string) []byte {
	const upperhex = "0123456789ABCDEF"
	col := 0    // bytes on the current output line
	cr := false // the last line end was a CR, so an LF right after it is part of it
	encode := func(c byte) {
		if qpLineMax-1-col < 3 {
			dst = append(dst, "=\r\n"...)
			col = 0
		}
		dst = append(dst, '=', upperhex[c>>4], upperhex[c&0x0f])
		col += 3
	}
	// endLine encodes a space or tab that ends the line, as the Writer's
	// checkLastByte does.
	endLine := func() {
		if col > 0 {
			if c := dst[len(dst)-1]; c == ' ' || c == '\t' {
				dst = dst[:len(dst)-1]
				col--
				encode(c)
			}
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\n' || c == '\r':
			i++
			if cr && c == '\n' {
				cr = false
				continue
			}
			cr = c == '\r'
			endLine()
			dst = append(dst, '\r', '\n')
			col = 0
		case (c >= '!' && c <= '~' && c != '=') || c == ' ' || c == '\t':
			j := i + 1
			for j < len(s) {
				if c := s[j]; (c < '!' || c > '~' || c == '=') && c != ' ' && c != '\t' {
					break
				}
				j++
			}
			for i < j {
				if col == qpLineMax-1 {
					dst = append(dst, "=\r\n"...)
					col = 0
				}
				n := min(j-i, qpLineMax-1-col)
				dst = append(dst, s[i:i+n]...)
				col += n
				i += n
			}
			cr = false
		default:
			// The Writer leaves its CR flag as it is here, so neither
			// does this.
			encode(c)
			i++
		}
	}
	endLine()
	return dst
}
