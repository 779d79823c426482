package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/hookmail/hookmail/relay"
)

// textbeeFormat is textbee's (textbee.dev): one JSON object per event,
// named by its webhookEvent field, signed in X-Signature with the hex
// HMAC-SHA256 of the exact body under the webhook's signing secret, with
// no prefix and no timestamp.
type textbeeFormat struct{}

const textbeeSignature = "X-Signature"

// textbee's events (its WebhookEvent enum).
const (
	textbeeReceived  = "MESSAGE_RECEIVED"
	textbeeSent      = "MESSAGE_SENT"
	textbeeDelivered = "MESSAGE_DELIVERED"
	textbeeFailed    = "MESSAGE_FAILED"
	textbeeUnknown   = "UNKNOWN_STATE"
)

func (textbeeFormat) precheck(r *http.Request) *reqError {
	if r.Header.Get(textbeeSignature) == "" {
		return errBadSignature
	}
	return nil
}

func (textbeeFormat) accept(q *request) (*decoded, *reqError) {
	sig, err := hex.DecodeString(strings.TrimSpace(q.r.Header.Get(textbeeSignature)))
	if err != nil {
		return nil, errBadSignature
	}
	mac := func(key []byte) []byte {
		h := hmac.New(sha256.New, key)
		h.Write(q.body)
		return h.Sum(nil)
	}
	if q.keys.matchMAC(sig, mac) < 0 {
		return nil, errBadSignature
	}
	return decodeTextbee(q.body)
}

func (textbeeFormat) decode(q *request) (*decoded, *reqError) { return decodeTextbee(q.body) }

func (textbeeFormat) reply(w http.ResponseWriter, status, id string) { replyJSON(w, status, id) }

// decodeTextbee maps an authentic textbee body onto an event. A received
// SMS is an sms; the reports on a message sent (sent, delivered, failed,
// and UNKNOWN_STATE, a status textbee does not name, so status unknown)
// are status events. Any other event is kept under its own name in lower
// case, rendered by the generic template: it is authentic, and textbee
// never retries a webhook answered 4xx, so refusing it would lose it.
//
// Its id is the event, the SMS and its status: textbee's own retries of a
// webhook carry the same idempotencyKey, but a second subscription to the
// same URL, or a status the phone reports twice, carries a new one for the
// same report. Without an smsId the idempotencyKey stands in.
func decodeTextbee(body []byte) (*decoded, *reqError) {
	d, err := decodeJSONObject(body)
	if rerr := decodeError(err); rerr != nil {
		return nil, rerr
	}
	event := d["webhookEvent"]
	if !eventName.MatchString(event) {
		return nil, &reqError{status: http.StatusBadRequest, result: ResultInvalid, reason: "webhookEvent is missing or not an event name"}
	}
	ev := &relay.Event{Type: relay.TypeStatus, Data: d}
	c := &ev.Content
	c.MessageID = d["smsId"]
	switch event {
	case textbeeReceived:
		ev.Type = relay.TypeSMS
		c.From, c.To, c.Text, c.Sent = d["sender"], d["deviceId"], d["message"], parseEventTime(d["receivedAt"])
	case textbeeSent:
		c.Status, c.Sent = "sent", parseEventTime(d["sentAt"])
	case textbeeDelivered:
		c.Status, c.Sent = "delivered", parseEventTime(d["deliveredAt"])
	case textbeeFailed:
		c.Status, c.Sent = "failed", parseEventTime(d["failedAt"])
		c.Text = d["errorMessage"]
		if code := d["errorCode"]; code != "" {
			c.Text = strings.TrimSpace(c.Text + " (code " + code + ")")
		}
	case textbeeUnknown:
		if s := d["status"]; s != "" {
			c.Text = "textbee reports the status " + s
		}
	default:
		ev.Type = strings.ToLower(event)
	}
	if ev.Type == relay.TypeStatus {
		c.From, c.To = d["deviceId"], d["recipient"]
	}
	id := d["idempotencyKey"]
	if sms := d["smsId"]; sms != "" {
		id = event + "\x00" + sms + "\x00" + d["status"]
	}
	return &decoded{ev: ev, id: id}, nil
}
