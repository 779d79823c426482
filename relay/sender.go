package relay

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"
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

// Encode returns m as an RFC 5322 message, building it on the first call
// only, so writing it to the connection is a single write of ready bytes.
func (m *Message) Encode() ([]byte, error) {
	if m.raw != nil {
		return m.raw, nil
	}
	var b bytes.Buffer
	// Room for the parts as quoted-printable writes them (a little over
	// their size for most text) and the headers, so the buffer seldom
	// grows by copying.
	room := 2048 + len(m.Text)*5/4 + len(m.HTML)*5/4
	for _, a := range m.Attachments {
		room += encodedPartSize(len(a.Data))
	}
	b.Grow(min(room, MaxEmailBytes))
	if err := m.encodeTo(&b); err != nil {
		return nil, err
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
func SafeID(s string) string {
	i := 0
	for i < len(s) && isIDChar(s[i]) {
		i++
	}
	if i == len(s) {
		return s // as ids mostly are
	}
	b := []byte(s[:i])
	for ; i < len(s); i++ {
		switch {
		case isIDChar(s[i]):
			b = append(b, s[i])
		case i == 0 || isIDChar(s[i-1]):
			b = append(b, '-') // a run's first byte (every byte of a rune beyond ASCII is outside the set)
		}
	}
	return string(b)
}

// isIDChar says whether c is kept by SafeID.
func isIDChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}
