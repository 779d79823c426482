package relay

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/wneessen/go-mail"
)

// Message is one rendered email, ready for any Sender.
type Message struct {
	// EventID and Route say where the message came from, for logs.
	EventID string
	Route   string
	// Type is the event type, for metrics.
	Type string

	From    string
	To      []string
	Cc      []string
	Bcc     []string // envelope only, never a header
	Subject string
	Text    string
	HTML    string
	// Date is the event's own time.
	Date time.Time
	// MessageID is deterministic per event and route (without the angle
	// brackets), so a re-delivery after a crash is recognisable.
	MessageID string
}

// Sender delivers a rendered message. Errors are classified by Classify.
type Sender interface {
	Send(ctx context.Context, m *Message) error
}

// Build turns m into a go-mail message: From, To, Cc, Subject, Date,
// Message-ID, and a UTF-8 multipart/alternative body, text first and HTML
// last so clients prefer the HTML. Bcc goes only to the envelope.
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
	msg.Subject(m.Subject)
	msg.SetDateWithValue(m.Date)
	msg.SetMessageIDWithValue(m.MessageID)
	msg.SetUserAgent("hookmail")
	msg.SetGenHeader("X-Hookmail-Event", m.EventID)
	msg.SetBodyString(mail.TypeTextPlain, m.Text)
	msg.AddAlternativeString(mail.TypeTextHTML, m.HTML)
	return msg, nil
}

// WriteEML writes m as an RFC 5322 message, as an .eml file holds it.
func (m *Message) WriteEML(w io.Writer) error {
	msg, err := m.Build()
	if err != nil {
		return err
	}
	_, err = msg.WriteTo(w)
	return err
}
