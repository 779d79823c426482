package relay

import (
	"strconv"
	"strings"
	"time"

	"github.com/hookmail/hookmail/config"
)

// Formats of webhook bodies hookmail reads (a source's
// webhook.sources[].format), as the config names them.
const (
	FormatZender  = config.FormatZender
	FormatSMSGate = config.FormatSMSGate
	FormatTwilio  = config.FormatTwilio
	FormatTextbee = config.FormatTextbee
	FormatHTTPSMS = config.FormatHTTPSMS
)

// Formats lists every format, for config validation and metric labels.
var Formats = config.SourceFormats

// Content is the canonical shape every format maps into: who sent what to
// whom, when, under which id of the sender's own, a delivery status for
// reports, and attachments. Templates and threading read it, so a
// conversation looks and threads the same whichever gateway it came
// through; the format's own fields stay in Event.Data.
type Content struct {
	// From is who sent the message: a phone number, or an app for
	// notifications.
	From string `json:"from,omitempty"`
	// To is the number or device that received it (for a status report,
	// the message's recipient).
	To string `json:"to,omitempty"`
	// Text is the message.
	Text string `json:"text,omitempty"`
	// Sent is when the sender says the message was sent or received; zero
	// when it did not say.
	Sent time.Time `json:"sent,omitzero"`
	// MessageID is the sender's own id of the message (not of the webhook).
	MessageID string `json:"message_id,omitempty"`
	// Status is a delivery report's status: sent, delivered, failed; empty
	// for messages.
	Status string `json:"status,omitempty"`
	// Attachments are the files the message carried (MMS pictures).
	Attachments []Attachment `json:"attachments,omitempty"`
}

// Attachment is one file of a message: its bytes when the sender sent them
// inline (or hookmail fetched them), else the URL they are at.
type Attachment struct {
	Name        string `json:"name,omitempty"`
	ContentType string `json:"content_type,omitempty"`
	// Size is the size in bytes the sender gave, or len(Data).
	Size int64  `json:"size,omitzero"`
	Data []byte `json:"data,omitempty"`
	URL  string `json:"url,omitempty"`
	// Note says why the file is not attached (too large, a fetch failed);
	// set when the email is built, never stored.
	Note string `json:"-"`
}

// Canonical returns the event's canonical content. For the zender format
// (and events stored before formats existed) it is derived from the data
// fields, which are all that format has; other formats store it as
// decoded.
func (e *Event) Canonical() Content {
	if e.Format != "" && e.Format != FormatZender {
		return e.Content
	}
	return zenderContent(e.Type, e.Data)
}

// StoredContent is the content a queue must store for the event: nil when
// it is derived from the data fields (zender), so such events are stored
// as they always were.
func (e *Event) StoredContent() *Content {
	if e.Format == "" || e.Format == FormatZender {
		return nil
	}
	c := e.Content
	return &c
}

// zenderContent maps the platform's data fields onto the canonical shape.
func zenderContent(typ string, d map[string]string) Content {
	c := Content{MessageID: d["id"]}
	switch typ {
	case TypeNotification:
		c.From, c.To, c.Text = d["package"], d["device"], d["content"]
	case TypeUSSD:
		c.From, c.To, c.Text = d["code"], d["device"], d["response"]
	case TypeWhatsApp:
		c.From, c.To, c.Text = d["phone"], d["wid"], d["message"]
		if u := d["attachment"]; u != "" && u != "0" {
			c.Attachments = []Attachment{{URL: u}}
		}
	default:
		c.From, c.To, c.Text = d["phone"], d["device"], d["message"]
	}
	if ts, err := strconv.ParseInt(strings.TrimSpace(d["timestamp"]), 10, 64); err == nil && ts > 0 && ts < maxTimestamp {
		c.Sent = time.Unix(ts, 0)
	}
	return c
}
