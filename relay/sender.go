package relay

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wneessen/go-mail"
)

// Message is one rendered email, ready for any Sender.
type Message struct {
	// EventID and Route say where the message came from, for logs.
	EventID string
	Route   string

	From    string
	To      []string
	Cc      []string
	Bcc     []string // envelope only, never a header
	Subject string
	Text    string
	// HTML is empty in the plain fallback, which has a text part only.
	HTML string
	// Plain, when set, says why this is the plain fallback instead of what
	// the templates make: every field of the event once, in a text part
	// (see Renderer.Render).
	Plain string
	// Attachments are the files the email carries, each with its bytes,
	// a name and a media type (see planAttachments); the text and HTML
	// name them.
	Attachments []Attachment
	// Date is the event's own time.
	Date time.Time
	// MessageID is deterministic per event and route (without the angle
	// brackets), so a re-delivery after a crash is recognisable.
	MessageID string

	// ThreadID, when set, is the conversation's id (without angle
	// brackets): References and In-Reply-To name it, so mail clients show
	// the conversation as one thread.
	ThreadID string
	// ReplyTo sets the Reply-To header.
	ReplyTo string
	// Envelope, when set, limits the SMTP recipients to these addresses
	// (a retry for the recipients a server deferred); the headers still
	// name everyone.
	Envelope []string

	// raw caches Encode's result.
	raw []byte

	// Receipt is filled in by a Sender that succeeded: the mail server's
	// reply to the data ("250 2.0.0 Ok: queued as …"), or where the outbox
	// wrote the file. The delivery log line carries it.
	Receipt string
}

// Sender delivers a rendered message. Errors are classified by Classify;
// a message delivered to some recipients and deferred (4xx) for the others
// is a *PartialError.
type Sender interface {
	Send(ctx context.Context, m *Message) error
}

// PartialError is a message the server took for some recipients and
// refused for now (4xx) for the others, listed in Later: the retry sends it
// to those only.
type PartialError struct {
	Later []string
	Err   error
}

func (e *PartialError) Error() string {
	return fmt.Sprintf("sent, but %d recipient(s) refused for now: %v", len(e.Later), e.Err)
}

func (e *PartialError) Unwrap() error { return e.Err }

// Build turns m into a go-mail message: From, To, Cc, Subject, Date,
// Message-ID, and a UTF-8 multipart/alternative body, text first and HTML
// last so clients prefer the HTML (the plain fallback has the text part
// alone). Attachments make it multipart/mixed: that body, then each file,
// base64. Bcc goes only to the envelope.
func (m *Message) Build() (*mail.Msg, error) {
	msg := mail.NewMsg(mail.WithNoDefaultUserAgent())
	if err := msg.From(m.From); err != nil {
		return nil, PermanentErr(fmt.Errorf("from %q: %w", m.From, err))
	}
	if len(m.To) > 0 {
		if err := msg.To(m.To...); err != nil {
			return nil, PermanentErr(fmt.Errorf("to: %w", err))
		}
	}
	if len(m.Cc) > 0 {
		if err := msg.Cc(m.Cc...); err != nil {
			return nil, PermanentErr(fmt.Errorf("cc: %w", err))
		}
	}
	if len(m.Bcc) > 0 {
		if err := msg.Bcc(m.Bcc...); err != nil {
			return nil, PermanentErr(fmt.Errorf("bcc: %w", err))
		}
	}
	msg.Subject(subjectHeader(m.Subject))
	msg.SetDateWithValue(m.Date)
	msg.SetMessageIDWithValue(m.MessageID)
	if m.ThreadID != "" {
		msg.SetGenHeader(mail.HeaderReferences, "<"+m.ThreadID+">")
		msg.SetGenHeader(mail.HeaderInReplyTo, "<"+m.ThreadID+">")
	}
	if m.ReplyTo != "" {
		if err := msg.ReplyTo(m.ReplyTo); err != nil {
			return nil, PermanentErr(fmt.Errorf("reply_to: %w", err))
		}
	}
	msg.SetUserAgent("hookmail")
	msg.SetGenHeader("X-Hookmail-Event", m.EventID)
	if m.Plain != "" {
		// base64, whose size is known before encoding (4/3, plus a line
		// break every 76), where quoted-printable triples non-ASCII text.
		msg.SetBodyString(mail.TypeTextPlain, m.Text, mail.WithPartEncoding(mail.EncodingB64))
	} else {
		msg.SetBodyString(mail.TypeTextPlain, m.Text)
	}
	if m.HTML != "" {
		msg.AddAlternativeString(mail.TypeTextHTML, m.HTML)
	}
	for i, a := range m.Attachments {
		// Made safe again here: go-mail writes the type as it is given.
		ct := safeMediaType(a.ContentType)
		msg.AttachReadSeeker(safeFileName(a.Name, i+1, ct), bytes.NewReader(a.Data),
			mail.WithFileContentType(mail.ContentType(ct)), mail.WithFileEncoding(mail.EncodingB64))
	}
	return msg, nil
}

// subjectHeader is the Subject as go-mail should write it. go-mail
// RFC 2047-encodes every generic header value through mime.WordEncoder, so
// a CR, LF or NUL never reaches the wire raw; but the encoder leaves a
// value of printable ASCII as it is, and a payload's own
// "=?UTF-8?q?=0D=0ABcc:_x@evil.example?=" would then go out raw and be
// decoded by every mail client into a line break and a fake header.
// A subject holding "=?" is therefore encoded here, whole, as base64
// encoded-words of whole characters (RFC 2047 section 5), which go-mail
// passes through unchanged and folds between words.
func subjectHeader(s string) string {
	if !strings.Contains(s, "=?") {
		return s
	}
	const maxChunk = 45 // bytes: 60 in base64, 72 with "=?UTF-8?b?" and "?=", under the 75 allowed
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

// Encode returns m as an RFC 5322 message, building it on the first call
// only, so writing it to the connection is a single write of ready bytes.
func (m *Message) Encode() ([]byte, error) {
	if m.raw != nil {
		return m.raw, nil
	}
	msg, err := m.Build()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	// Room for the parts as quoted-printable writes them (a little over
	// their size for most text) and the headers, so the buffer seldom
	// grows by copying.
	room := 2048 + len(m.Text)*5/4 + len(m.HTML)*5/4
	for _, a := range m.Attachments {
		room += len(a.Data)*4/3 + 256
	}
	b.Grow(min(room, MaxEmailBytes))
	if _, err := msg.WriteTo(&b); err != nil {
		return nil, PermanentErr(fmt.Errorf("encode: %w", err))
	}
	m.raw = b.Bytes()
	return m.raw, nil
}

// WriteEML writes m as an RFC 5322 message, as an .eml file holds it.
func (m *Message) WriteEML(w io.Writer) error {
	raw, err := m.Encode()
	if err != nil {
		return err
	}
	_, err = w.Write(raw)
	return err
}

// SafeID makes s safe in a Message-ID or a file name: each run of other
// characters than letters, digits, ".", "_" and "-" becomes one "-".
func SafeID(s string) string { return unsafeIDChars.ReplaceAllString(s, "-") }
