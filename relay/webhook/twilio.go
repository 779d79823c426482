package webhook

import (
	"cmp"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/hookmail/hookmail/relay"
)

// twilioFormat is Twilio Programmable Messaging: the webhook of a number's
// incoming messages ("A message comes in") and the status callbacks of
// messages sent from it, both form bodies signed with X-Twilio-Signature
// (see twilio_signature.go) and answered with TwiML.
type twilioFormat struct{}

func (twilioFormat) precheck(r *http.Request) *reqError {
	if strings.TrimSpace(r.Header.Get(twilioSignatureHeader)) == "" {
		return errBadSignature
	}
	return nil
}

func (twilioFormat) accept(q *request) (*decoded, *reqError) {
	fields, rerr := verifyTwilio(q)
	if rerr != nil {
		return nil, rerr
	}
	return twilioEvent(fields), nil
}

func (twilioFormat) decode(q *request) (*decoded, *reqError) {
	fields, rerr := twilioForm(q)
	if rerr != nil {
		return nil, rerr
	}
	return twilioEvent(fields), nil
}

// emptyTwiML tells Twilio to do nothing more: no reply to the sender.
// Twilio reads an incoming message's answer as TwiML, and any other
// content type is its error 12300 (text/plain would even be sent back to
// the sender as a reply); a status callback's answer is ignored.
const emptyTwiML = `<?xml version="1.0" encoding="UTF-8"?><Response></Response>` + "\n"

// reply answers with empty TwiML; what hookmail did and the event's id go
// in headers, which Twilio ignores and its debugger shows.
func (twilioFormat) reply(w http.ResponseWriter, status, id string) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Hookmail-Status", status)
	if id != "" {
		w.Header().Set("Hookmail-Event-Id", id)
	}
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, emptyTwiML)
}

// typeTwilio is an authentic Twilio webhook that names no message (a
// voice call's, say, posted to a messaging source): kept whole and
// emailed with every field, not deduplicated.
const typeTwilio = "twilio"

// twilioStatuses maps the message statuses a status callback reports on
// onto the canonical ones. Other statuses (queued, sending, accepted,
// scheduled, canceled, read, ...) are steps with nothing to email: those
// callbacks are ignored.
var twilioStatuses = map[string]string{
	"sent":        "sent",
	"delivered":   "delivered",
	"undelivered": "failed",
	"failed":      "failed",
}

// twilioEvent maps a Twilio webhook's fields onto an event; every field
// stays in Data, as Twilio adds fields without notice.
//
// A status callback carries MessageStatus (Twilio's docs: "a subset of
// the standard request properties, and additionally MessageStatus and
// ErrorCode"); an incoming message does not, its SmsStatus is "received".
// Older callbacks carry only SmsStatus, so without MessageStatus any
// SmsStatus but "received" makes a status callback too.
func twilioEvent(fields url.Values) *decoded {
	get := fields.Get
	data := make(map[string]string, len(fields))
	for k, vs := range fields {
		if k != "" {
			data[k] = vs[0]
		}
	}
	ev := &relay.Event{Data: data}
	sid := cmp.Or(get("MessageSid"), get("SmsMessageSid"), get("SmsSid"))
	status := get("MessageStatus")
	if status == "" && get("SmsStatus") != "received" {
		status = get("SmsStatus")
	}
	switch {
	case sid == "":
		ev.Type = typeTwilio
		ev.Content = relay.Content{From: get("From"), To: get("To")}
		return &decoded{ev: ev}
	case status != "":
		ev.Type = relay.TypeStatus
		canonical, ok := twilioStatuses[status]
		if !ok {
			return &decoded{ev: ev, ignored: true}
		}
		ev.Content = relay.Content{From: get("From"), To: get("To"), MessageID: sid, Status: canonical,
			Text: twilioError(get("ErrorCode"), get("ErrorMessage"))}
		// Each status of a message is a report of its own; the same one
		// delivered twice is one.
		return &decoded{ev: ev, id: sid + "/" + status}
	}
	ev.Type = relay.TypeSMS
	ev.Content = relay.Content{From: get("From"), To: get("To"), Text: get("Body"), MessageID: sid}
	n, _ := strconv.Atoi(strings.TrimSpace(get("NumMedia")))
	if n > 0 {
		ev.Type = relay.TypeMMS
	}
	// Linked, not fetched: a source's media.fetch fetches them when the
	// email is built.
	for i := range min(n, MaxFields) {
		if u := get("MediaUrl" + strconv.Itoa(i)); u != "" {
			ev.Content.Attachments = append(ev.Content.Attachments,
				relay.Attachment{URL: u, ContentType: get("MediaContentType" + strconv.Itoa(i))})
		}
	}
	return &decoded{ev: ev, id: sid}
}

// twilioError is a failed message's reason: ErrorMessage when Twilio
// gave one, and the ErrorCode (documented at twilio.com/docs/api/errors).
func twilioError(code, message string) string {
	if code == "0" {
		code = ""
	}
	switch {
	case code != "" && message != "":
		return message + " (Twilio error " + code + ")"
	case code != "":
		return "Twilio error " + code
	}
	return message
}
