package relay

import (
	"slices"
	"sort"
	"strings"
	"time"
)

// Event is one webhook from a gateway, as hookmail keeps it: the sender's
// fields as strings, whatever the wire format was. Every queue backend stores
// it and every template renders it, so a new wire format only needs a decoder
// that fills it in.
type Event struct {
	// ID is hookmail's own id, time-ordered (UUIDv7); it is the 200 reply's
	// id and the base of the email's Message-ID.
	ID string
	// Source names the webhook source the event came from
	// (webhook.sources[].name; "gateway" for the single-gateway keys).
	Source string
	// Format is the wire format it arrived in (FormatZender, ...); empty
	// for events stored before formats existed, which are zender's.
	Format string
	// Type is the normalised event type: sms, whatsapp, ussd, notification,
	// or whatever else the sender named.
	Type string
	// Data holds the sender's data fields, the format's own. Nested keys
	// are joined with ".".
	Data map[string]string
	// Content is the canonical content of formats other than zender, whose
	// content derives from Data: read it through Canonical.
	Content Content
	// Received is when hookmail accepted the event.
	Received time.Time
	// Priority orders the queue: a queue leases the due event of the
	// highest priority first, then the earliest due. The receiver sets it
	// from the routes that take the event (Router.Priority); 0 is the
	// default, config.MaxPriority the highest.
	Priority int
	// DedupKey identifies the sender's event across deliveries (source,
	// type and the sender's own id); empty when the sender gave no id. A
	// queue stores one event per key within its dedup window. It is used at
	// Enqueue only and never stored with the event or shown: it hashes the
	// sender's secret with values an operator can see, so a shown key would
	// let anyone who reads it test guesses of a short secret offline.
	DedupKey string
	// fetched, when set, are the event's files with those the worker
	// fetched for this delivery (see MediaFetcher): the email attaches
	// them, and the queue never sees them, being unexported on a copy.
	fetched []Attachment
}

// files returns the files the event's email carries or links: those
// fetched for this delivery, else its content's.
func (e *Event) files() []Attachment {
	if e.fetched != nil {
		return e.fetched
	}
	return e.Canonical().Attachments
}

// Well-known event types.
const (
	TypeSMS          = "sms"
	TypeWhatsApp     = "whatsapp"
	TypeUSSD         = "ussd"
	TypeNotification = "notification"
	// TypeMMS is a message with attachments; TypeStatus a delivery report
	// (sent, delivered, failed) on a message the phone sent.
	TypeMMS    = "mms"
	TypeStatus = "status"
)

// KnownTypes are the types with their own template; any other type renders
// with the generic one and counts as "other" in metrics.
var KnownTypes = []string{TypeSMS, TypeWhatsApp, TypeUSSD, TypeNotification, TypeMMS, TypeStatus}

// NormalizeType maps a wire type to hookmail's name for it.
func NormalizeType(t string) string {
	t = strings.ToLower(strings.TrimSpace(t))
	if t == "notifications" {
		return TypeNotification
	}
	return t
}

// Time is when the event happened: the time the sender gave when it gave
// a usable one, else when hookmail received it.
func (e *Event) Time() time.Time {
	if t := e.Canonical().Sent; !t.IsZero() && t.Unix() > 0 && t.Unix() < maxTimestamp {
		return t
	}
	return e.Received
}

// maxTimestamp is 9999-12-31T00:00:00Z: a later time has a five-digit year
// in some zone, and the Date header would then not parse as RFC 5322.
const maxTimestamp = 253402214400

// FieldNames returns the data field names in a stable order: the order a
// sender of this type puts them on the wire, then the rest alphabetically.
func (e *Event) FieldNames() []string {
	order := map[string]int{}
	for i, name := range fieldOrder[e.Type] {
		order[name] = i + 1
	}
	names := make([]string, 0, len(e.Data))
	for k := range e.Data {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		oi, oj := order[names[i]], order[names[j]]
		switch {
		case oi != 0 && oj != 0:
			return oi < oj
		case oi != 0 || oj != 0:
			return oi != 0
		}
		return names[i] < names[j]
	})
	return names
}

// TypeLabel bounds an event type for metric labels and the like: a sender
// chooses the type, so an unknown one counts as "other" rather than growing
// the label's values forever, and none as "none".
func TypeLabel(t string) string {
	if slices.Contains(KnownTypes, t) {
		return t
	}
	if t == "" {
		return "none"
	}
	return "other"
}

// fieldOrder is the field order of each known type, as the README's "What the gateway sends" lists it.
var fieldOrder = map[string][]string{
	TypeSMS:          {"id", "rid", "sim", "device", "phone", "message", "timestamp"},
	TypeWhatsApp:     {"id", "wid", "phone", "message", "attachment", "timestamp"},
	TypeUSSD:         {"id", "sim", "device", "code", "response", "timestamp"},
	TypeNotification: {"id", "device", "package", "title", "content", "timestamp"},
}
