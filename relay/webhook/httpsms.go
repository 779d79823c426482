package webhook

import (
	"cmp"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/hookmail/hookmail/relay"
)

// httpsmsFormat is httpSMS's (httpsms.com): a CloudEvent in JSON (its type
// also in X-Event-Type), authenticated by "Authorization: Bearer" and an
// HS256 JWT under the webhook's signing key whose audience is the URL the
// webhook posts to, valid from 10 minutes before it was made to 10 minutes
// after. The JWT does not cover the body: it authenticates the sender, not
// the bytes.
type httpsmsFormat struct{}

// maxHTTPSMSToken bounds the bearer token hookmail parses, once per key,
// before it knows the request is authentic. httpSMS's are some 400 bytes
// (the audience, a URL, is at most 255).
const maxHTTPSMSToken = 4096

// httpSMS's events that hookmail maps onto messages and reports.
const (
	httpsmsReceived  = "message.phone.received"
	httpsmsSent      = "message.phone.sent"
	httpsmsDelivered = "message.phone.delivered"
	httpsmsFailed    = "message.send.failed"
	httpsmsExpired   = "message.send.expired"
)

func (httpsmsFormat) precheck(r *http.Request) *reqError {
	if t := bearerToken(r); t == "" || len(t) > maxHTTPSMSToken {
		return errBadSignature
	}
	return nil
}

func (httpsmsFormat) accept(q *request) (*decoded, *reqError) {
	if !httpsmsAuthentic(q) {
		return nil, errBadSignature
	}
	return decodeHTTPSMS(q.body)
}

func (httpsmsFormat) decode(q *request) (*decoded, *reqError) { return decodeHTTPSMS(q.body) }

func (httpsmsFormat) reply(w http.ResponseWriter, status, id string) { replyJSON(w, status, id) }

// bearerToken is the request's bearer token, "" when it has none.
func bearerToken(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// httpsmsAuthentic reports whether the request's JWT is valid under one of
// the source's keys: HS256 only (so neither "none" nor a public-key
// algorithm whose key could be confused with the secret), its audience the
// source's public_url, not expired (exp required), not before its nbf. It
// tries every key, without stopping at the first that fits, so the time it
// takes does not tell which key did; the library compares each HMAC in
// constant time.
func httpsmsAuthentic(q *request) bool {
	if q.src.PublicURL == "" {
		return false // config validation requires it; without it no audience can match
	}
	token := bearerToken(q.r)
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithAudience(q.src.PublicURL.Reveal()),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return q.now }),
	)
	ok := false
	for _, key := range q.keys.raw {
		_, err := p.ParseWithClaims(token, &jwt.RegisteredClaims{}, func(*jwt.Token) (any, error) { return key, nil })
		ok = err == nil || ok
	}
	return ok
}

// decodeHTTPSMS maps an authentic CloudEvent onto an event. Its data
// fields keep their own names (content, contact, owner, ...), so routes
// and templates name them as httpSMS's documentation does; its attributes
// become event_id, event_type, event_source, event_time and so on.
//
// A received message is an sms, an mms when it has attachments (their
// URLs on httpSMS, linked). Sent, delivered and send.failed are status
// reports; send.expired is "failed" when httpSMS gives up (is_final),
// status unknown while it will try again. Any other event (a missed call,
// a phone going offline or online, one added later) is kept as its type
// with "_" for ".", rendered by the generic template: it is authentic.
//
// Its id is the event type and the message's id (plus the attempt for
// send.expired, which comes once per attempt), or the CloudEvent's id for
// events about no message: httpSMS's second attempt at a webhook re-sends
// the same event, and two webhooks to the same URL the same message.
func decodeHTTPSMS(body []byte) (*decoded, *reqError) {
	flat, err := decodeJSONObject(body)
	if rerr := decodeError(err); rerr != nil {
		return nil, rerr
	}
	d := make(map[string]string, len(flat))
	for k, v := range flat {
		if name, ok := strings.CutPrefix(k, "data."); ok {
			d[name] = v
		}
	}
	for k, v := range flat {
		if !strings.HasPrefix(k, "data.") {
			d["event_"+k] = v
		}
	}
	typ := d["event_type"]
	if !eventName.MatchString(typ) {
		return nil, &reqError{status: http.StatusBadRequest, result: ResultInvalid, reason: "type is missing or not an event name"}
	}
	ev := &relay.Event{Type: relay.TypeStatus, Data: d}
	c := &ev.Content
	c.MessageID = cmp.Or(d["message_id"], d["id"])
	c.Sent = parseEventTime(d["timestamp"])
	id := typ + "\x00" + c.MessageID
	switch typ {
	case httpsmsReceived:
		ev.Type = relay.TypeSMS
		c.From, c.To, c.Text = d["contact"], d["owner"], d["content"]
		c.Attachments = httpsmsAttachments(d)
		if len(c.Attachments) > 0 {
			ev.Type = relay.TypeMMS
		}
	case httpsmsSent:
		c.Status = "sent"
	case httpsmsDelivered:
		c.Status = "delivered"
	case httpsmsFailed:
		c.Status, c.Text = "failed", d["error_message"]
	case httpsmsExpired:
		attempt := d["send_attempt_count"]
		id += "\x00" + attempt
		if d["is_final"] == "1" {
			c.Status, c.Text = "failed", "expired after "+attempt+" send attempt(s); httpSMS gives up"
		} else {
			c.Text = "expired after " + attempt + " send attempt(s); httpSMS will try again"
		}
	default:
		ev.Type = strings.ToLower(strings.ReplaceAll(typ, ".", "_"))
		c.From, c.To = d["contact"], d["owner"]
	}
	if ev.Type == relay.TypeStatus {
		c.From, c.To = d["owner"], d["contact"]
	}
	if c.MessageID == "" {
		id = typ + "\x00event\x00" + d["event_id"]
	}
	return &decoded{ev: ev, id: id}, nil
}

// httpsmsAttachments are a received message's attachments: URLs on
// httpSMS, named by their last path segment. They are linked, not
// fetched.
func httpsmsAttachments(d map[string]string) []relay.Attachment {
	var out []relay.Attachment
	for i := 0; ; i++ {
		u, ok := d["attachments."+strconv.Itoa(i)]
		if !ok {
			return out
		}
		a := relay.Attachment{URL: u}
		if pu, err := url.Parse(u); err == nil {
			if name := path.Base(pu.Path); name != "/" && name != "." {
				a.Name = name
			}
		}
		out = append(out, a)
	}
}
