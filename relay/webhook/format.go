package webhook

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

// A format is one sender's wire format: how it authenticates, how its body
// maps onto an event, and what the sender expects back. Formats that sign
// verify the signature over the exact raw bytes received, in constant
// time, before anything of the body is decoded.
type format interface {
	// precheck looks at the headers before the body is read: a request
	// that cannot be authentic (its signature header missing) is refused
	// without reading its body. Nil when it may be.
	precheck(r *http.Request) *reqError
	// accept authenticates and decodes one whole body.
	accept(q *request) (*decoded, *reqError)
	// reply answers a webhook accepted (status queued, duplicate or
	// ignored, id the event's id, or "" when ignored).
	reply(w http.ResponseWriter, status, id string)
}

// request is one webhook as a format sees it.
type request struct {
	r    *http.Request
	body []byte
	src  *config.Source
	keys Keys
	now  time.Time
	opts DecodeOptions
}

// decoded is what a format made of a webhook.
type decoded struct {
	// ev has Type, Data and (for formats other than zender) Content set;
	// the receiver sets the rest.
	ev *relay.Event
	// id identifies what the webhook reports, the message and not the
	// envelope, so a sender's second delivery of it is known as one
	// ("" when it gave no id: no deduplication).
	id string
	// dedupKey, when set, is the dedup key itself (zender's, kept as it
	// always was); else the receiver makes one of the source and id.
	dedupKey string
	// ignored is an authentic webhook with nothing to email (a ping):
	// answered 200, not stored.
	ignored bool
}

// formats are the formats by name.
var formats = map[string]format{
	config.FormatZender:  zenderFormat{},
	config.FormatSMSGate: smsgateFormat{},
	config.FormatTextbee: textbeeFormat{},
	config.FormatHTTPSMS: httpsmsFormat{},
	config.FormatTwilio:  twilioFormat{},
}

// formatOf returns the source's format; an unknown one (config validation
// refuses it) refuses every request.
func formatOf(src *config.Source) format {
	if f, ok := formats[src.Format]; ok {
		return f
	}
	return unknownFormat{}
}

type unknownFormat struct{}

func (unknownFormat) precheck(*http.Request) *reqError {
	return &reqError{status: http.StatusInternalServerError, result: ResultUnavailable, reason: "this source's format is unknown"}
}
func (unknownFormat) accept(*request) (*decoded, *reqError) { return nil, nil }
func (unknownFormat) reply(w http.ResponseWriter, status, id string) {
	replyJSON(w, status, id)
}

// replyJSON is the answer most senders get: {"status": ..., "id": ...}.
func replyJSON(w http.ResponseWriter, status, id string) {
	writeJSON(w, http.StatusOK, statusReply{Status: status, ID: id})
}

// statusReply is the answer to an accepted webhook: a struct, which
// encoding/json writes without sorting keys as it does a map's.
type statusReply struct {
	ID     string `json:"id,omitempty"`
	Status string `json:"status"`
}

// sourceDedupKey names a message for deduplication: the source, the
// format, what kind of report it is and the sender's own id, hashed so no
// field shows in the queue.
func sourceDedupKey(src *config.Source, kind, id string) string {
	if id == "" {
		return ""
	}
	sum := sha256.Sum256([]byte("source\x00" + src.Name + "\x00" + src.Format + "\x00" + kind + "\x00" + id))
	return hex.EncodeToString(sum[:])
}

// sanitize repairs what a sender may send and a template or mail header
// must not carry: invalid UTF-8 (replaced) and NUL bytes (dropped), in
// every string of the event, whatever the format.
func sanitize(ev *relay.Event) {
	fix := func(s string) string {
		if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
			return s
		}
		return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
	}
	ev.Type = fix(ev.Type)
	if len(ev.Data) > 0 {
		data := make(map[string]string, len(ev.Data))
		for k, v := range ev.Data {
			if k = fix(k); k != "" {
				data[k] = fix(v)
			}
		}
		ev.Data = data
	}
	c := &ev.Content
	c.From, c.To, c.Text, c.MessageID, c.Status = fix(c.From), fix(c.To), fix(c.Text), fix(c.MessageID), fix(c.Status)
	for i := range c.Attachments {
		a := &c.Attachments[i]
		a.Name, a.ContentType, a.URL = fix(a.Name), fix(a.ContentType), fix(a.URL)
	}
}
