package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

// SMS Gateway for Android (capcom6/android-sms-gateway) posts
//
//	{"id": …, "webhookId": …, "event": "sms:received", "deviceId": …, "payload": {…}}
//
// serialized by Gson (compact, "=<>&'" escaped as \u003d and the like),
// signed with X-Signature = hex(HMAC-SHA256(signing key, body + X-Timestamp)),
// X-Timestamp the Unix seconds of that attempt. It retries any answer but
// 2xx (15 times by default, backing off from 5 s), signing each attempt
// anew, and each webhook registered for an event gets its own envelope id:
// a message is recognised by its payload, never by the envelope.
const (
	smsgateSignatureHeader = "X-Signature"
	smsgateTimestampHeader = "X-Timestamp"
)

// Wire events with a meaning of their own here; any other event the user
// registered (app:started, a future one) is stored under its own name.
const (
	smsgateReceived     = "sms:received"
	smsgateDataReceived = "sms:data-received"
	smsgateSent         = "sms:sent"
	smsgateDelivered    = "sms:delivered"
	smsgateFailed       = "sms:failed"
	smsgateCancelled    = "sms:cancelled"
	smsgateMMSReceived  = "mms:received"
	smsgateMMSLoaded    = "mms:downloaded"
	smsgatePing         = "system:ping"
)

// smsgateStatusTime is the field holding a delivery report's time.
var smsgateStatusTime = map[string]string{
	smsgateSent: "sentAt", smsgateDelivered: "deliveredAt", smsgateFailed: "failedAt", smsgateCancelled: "cancelledAt",
}

// errStaleTimestamp refuses a signed webhook whose X-Timestamp is further
// than the source's replay_window from hookmail's clock, either way.
var errStaleTimestamp = &reqError{status: http.StatusUnauthorized, result: ResultUnauthorized,
	reason: "X-Timestamp is outside the replay window (check the phone's clock, or the source's replay_window)"}

type smsgateFormat struct{}

// precheck refuses a request without both signing headers before its
// body (up to 8 MiB) is read: the app always sends them.
func (smsgateFormat) precheck(r *http.Request) *reqError {
	if r.Header.Get(smsgateSignatureHeader) == "" || r.Header.Get(smsgateTimestampHeader) == "" {
		return errBadSignature
	}
	return nil
}

func (smsgateFormat) accept(q *request) (*decoded, *reqError) {
	ts := q.r.Header.Get(smsgateTimestampHeader)
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return nil, errBadSignature
	}
	if sent := time.Unix(sec, 0); sent.Before(q.now.Add(-q.src.ReplayWindow)) || sent.After(q.now.Add(q.src.ReplayWindow)) {
		return nil, errStaleTimestamp
	}
	presented, err := hex.DecodeString(strings.TrimSpace(q.r.Header.Get(smsgateSignatureHeader)))
	if err != nil {
		return nil, errBadSignature
	}
	mac := func(key []byte) []byte {
		m := hmac.New(sha256.New, key)
		m.Write(q.body)
		m.Write([]byte(ts))
		return m.Sum(nil)
	}
	if q.keys.matchMAC(presented, mac) < 0 {
		return nil, errBadSignature
	}
	return decodeSMSGate(q.body)
}

func (smsgateFormat) decode(q *request) (*decoded, *reqError) { return decodeSMSGate(q.body) }

func (smsgateFormat) reply(w http.ResponseWriter, status, id string) { replyJSON(w, status, id) }

// decodeSMSGate maps an authentic body onto an event: Data is the body
// flattened (id, webhookId, event, deviceId, payload.*), without the
// attachments' bytes, which become Content.Attachments.
func decodeSMSGate(body []byte) (*decoded, *reqError) {
	flat, err := flattenJSON(body, isSMSGateAttachmentData)
	if rerr := smsgateDecodeError(err); rerr != nil {
		return nil, rerr
	}
	f := flat.fields
	// The body may be large for its files; what is not a file must fit
	// what any other webhook may carry, so its email (its plain fallback
	// too) stays within what mail servers take.
	text := 0
	for k, v := range f {
		text += len(k) + len(v)
	}
	if text > config.MaxWebhookBodyBytes {
		return nil, &reqError{status: http.StatusRequestEntityTooLarge, result: ResultTooLarge,
			reason: fmt.Sprintf("%v: the fields besides the attachments' data may hold at most %d bytes", ErrFieldTooLarge, config.MaxWebhookBodyBytes)}
	}
	event := strings.ToLower(strings.TrimSpace(f["event"]))
	if event == "" {
		return nil, &reqError{status: http.StatusBadRequest, result: ResultInvalid, reason: "missing event"}
	}
	p := func(name string) string { return f["payload."+name] }
	ev := &relay.Event{Type: smsgateType(event), Data: f}
	if len(ev.Type) > MaxTypeBytes {
		return nil, decodeError(errTypeTooLarge)
	}
	if event == smsgatePing {
		return &decoded{ev: ev, ignored: true}, nil
	}
	c := &ev.Content
	c.MessageID = p("messageId")
	// phoneNumber is the other party of every message event (sender or
	// recipient): the app added sender and recipient later.
	switch {
	case event == smsgateReceived, event == smsgateDataReceived, event == smsgateMMSReceived, event == smsgateMMSLoaded:
		c.From = firstOf(p("sender"), p("phoneNumber"))
		c.To = firstOf(p("recipient"), smsgateDevice(f))
		c.Sent = parseSMSGateTime(p("receivedAt"))
		switch event {
		case smsgateReceived:
			c.Text = p("message")
		case smsgateMMSReceived: // the notification, before the content is downloaded
			c.Text = p("subject")
		case smsgateMMSLoaded:
			c.Text = firstOf(p("body"), p("subject"))
			if c.Attachments, err = smsgateAttachments(flat); err != nil {
				return nil, &reqError{status: http.StatusBadRequest, result: ResultInvalid, reason: err.Error()}
			}
		}
	case smsgateStatusTime[event] != "":
		c.Status = strings.TrimPrefix(event, "sms:")
		c.From = p("sender")
		c.To = firstOf(p("recipient"), p("phoneNumber"))
		c.Sent = parseSMSGateTime(p(smsgateStatusTime[event]))
		c.Text = p("reason")
	default:
		c.From, c.To, c.Text = p("sender"), p("recipient"), p("message")
	}
	return &decoded{ev: ev, id: smsgateMessageKey(event, f)}, nil
}

// smsgateDecodeError is the answer to a body flattenJSON refused.
func smsgateDecodeError(err error) *reqError {
	if err == errBlobNotString {
		return &reqError{status: http.StatusBadRequest, result: ResultInvalid, reason: err.Error()}
	}
	if err != nil && !isLimit(err) {
		return &reqError{status: http.StatusBadRequest, result: ResultInvalid, reason: "body is not a JSON object"}
	}
	return decodeError(err)
}

// smsgateType is the event's type: hookmail's own for messages and
// delivery reports; any other event keeps its name (lower case, only
// letters, digits and ":._-"), so a route can pick it (type: "app:started").
func smsgateType(event string) string {
	switch event {
	case smsgateReceived:
		return relay.TypeSMS
	case smsgateMMSReceived, smsgateMMSLoaded:
		return relay.TypeMMS
	}
	if smsgateStatusTime[event] != "" {
		return relay.TypeStatus
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune(":._-", r) {
			return r
		}
		return '_'
	}, event)
}

// smsgateMessageKey identifies what the webhook reports across deliveries
// and registrations: the event, the message id, both parties and when it
// was received. A received SMS's id is a 32-bit hash of its content, so
// the parties and time keep two different messages apart; a delivery
// report names one recipient of a message sent to several. Without a
// message id, nothing identifies it ("": not deduplicated).
func smsgateMessageKey(event string, f map[string]string) string {
	p := func(name string) string { return f["payload."+name] }
	if p("messageId") == "" {
		return ""
	}
	received := p("receivedAt")
	if t := parseSMSGateTime(received); !t.IsZero() {
		received = strconv.FormatInt(t.UnixMilli(), 10) // the same instant, however the zone was written
	}
	// Without the recipient's number, the device tells two phones apart
	// that got the same text from one sender in the same second.
	device := ""
	if p("recipient") == "" {
		device = f["deviceId"]
	}
	return strings.Join([]string{event, p("messageId"), p("sender"), p("recipient"), p("phoneNumber"), received, device}, "\x00")
}

// smsgateDevice names the receiving phone when the app does not know its
// number: the device id and SIM slot.
func smsgateDevice(f map[string]string) string {
	dev, sim := f["deviceId"], f["payload.simNumber"]
	switch {
	case dev != "" && sim != "":
		return dev + " SIM " + sim
	case sim != "":
		return "SIM " + sim
	}
	return dev
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

const smsgateAttachmentsPrefix = "payload.attachments."

// isSMSGateAttachmentData picks payload.attachments.N.data, the base64
// bytes of a file.
func isSMSGateAttachmentData(name string) bool {
	idx, ok := smsgateAttachmentIndex(name)
	return ok && name == smsgateAttachmentsPrefix+idx+".data"
}

// smsgateAttachmentIndex returns N of a name payload.attachments.N.*.
func smsgateAttachmentIndex(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, smsgateAttachmentsPrefix)
	if !ok {
		return "", false
	}
	idx, _, ok := strings.Cut(rest, ".")
	if !ok || idx == "" || strings.Trim(idx, "0123456789") != "" {
		return "", false
	}
	return idx, true
}

// smsgateAttachments builds mms:downloaded's files from
// payload.attachments.N.{name,contentType,size,data}, in order. Data the
// app could not read is null: the file is listed without bytes.
func smsgateAttachments(flat *flatJSON) ([]relay.Attachment, error) {
	seen := map[string]bool{}
	var idxs []int
	note := func(name string) {
		if idx, ok := smsgateAttachmentIndex(name); ok && !seen[idx] {
			seen[idx] = true
			if n, err := strconv.Atoi(idx); err == nil {
				idxs = append(idxs, n)
			}
		}
	}
	for name := range flat.fields {
		note(name)
	}
	for name := range flat.blobs {
		note(name)
	}
	sort.Ints(idxs)
	out := make([]relay.Attachment, 0, len(idxs))
	for _, n := range idxs {
		at := smsgateAttachmentsPrefix + strconv.Itoa(n) + "."
		a := relay.Attachment{Name: flat.fields[at+"name"], ContentType: flat.fields[at+"contentType"]}
		if raw, ok := flat.blobs[at+"data"]; ok {
			data, err := decodeBase64Literal(raw)
			if err != nil {
				return nil, err
			}
			if len(data) > 0 {
				a.Data = data
			}
		}
		a.Size, _ = strconv.ParseInt(flat.fields[at+"size"], 10, 64)
		if a.Size <= 0 {
			a.Size = int64(len(a.Data))
		}
		out = append(out, a)
	}
	return out, nil
}

// parseSMSGateTime reads a date as the app's Gson writes it, zero when it
// does not parse (the event's time is then when hookmail received it).
// Android 7 and later: 2024-06-07T11:41:31.000+07:00 (or Z). Before,
// the app wrote the zone's standard offset literally into the pattern:
// "Z" (RFC 822, "+0000", "+0100" in British summer), "+05:30", and for
// zones west of UTC "+-5:00" or "+-3:-30". That literal offset ignores
// daylight saving, which the wall time includes: such a time is an hour
// off in summer, and nothing in it tells.
func parseSMSGateTime(s string) time.Time {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t
	}
	const wall = len("2006-01-02T15:04:05")
	if len(s) <= wall {
		return time.Time{}
	}
	i := strings.IndexAny(s[wall:], "Z+-")
	if i < 0 {
		return time.Time{}
	}
	off, ok := parseSMSGateOffset(s[wall+i:])
	if !ok {
		return time.Time{}
	}
	t, err := time.ParseInLocation("2006-01-02T15:04:05", s[:wall+i], time.FixedZone("", off))
	if err != nil {
		return time.Time{}
	}
	return t
}

// parseSMSGateOffset reads a zone offset in seconds: Z, ±HH:MM, ±HHMM,
// ±HH, and the pre-Android-7 +-H:MM and +-H:-MM.
func parseSMSGateOffset(z string) (int, bool) {
	if z == "Z" {
		return 0, true
	}
	sign := 1
	switch {
	case strings.HasPrefix(z, "+-"):
		sign, z = -1, z[2:]
	case strings.HasPrefix(z, "+"):
		z = z[1:]
	case strings.HasPrefix(z, "-"):
		sign, z = -1, z[1:]
	default:
		return 0, false
	}
	h, m, colon := strings.Cut(z, ":")
	switch {
	case colon:
		m = strings.TrimPrefix(m, "-")
	case len(z) == 4:
		h, m = z[:2], z[2:]
	default:
		m = "0"
	}
	hours, okH := smallNumber(h, 2)
	mins, okM := smallNumber(m, 2)
	if !okH || !okM || hours > 18 || mins > 59 {
		return 0, false
	}
	return sign * (hours*3600 + mins*60), true
}

// smallNumber parses 1 to digits decimal digits.
func smallNumber(s string, digits int) (int, bool) {
	if s == "" || len(s) > digits || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}
