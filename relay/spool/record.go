package spool

import (
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/hookmail/hookmail/relay"
)

// The records below are how the spool file stores items: JSON, in the
// shape every spool file written since the first hookmail has. They are
// the spool's own, apart from relay.Item (what the workers use) and from
// the admin API's view, so each can change without the others.
//
// They are read and written with github.com/go-json-experiment/json, the
// module that hosts encoding/json/v2 (in the standard library from Go
// 1.27). Every event is encoded as it is accepted and decoded each time it
// is leased; on the gateway's sample SMS, v2 decodes in under half of
// encoding/json's time and encodes in four fifths, with 6 allocations
// where encoding/json makes 34 and 21 (BenchmarkRecordCodec). Records
// encoding/json wrote, in every spool before, read the same.

// codecOptions are what the spool's records are written and read with,
// as encoding/json did: invalid UTF-8 (an SMTP reply kept as LastError may
// hold it) becomes U+FFFD rather than failing the write, and a name twice
// in an object is read, the last one winning.
var codecOptions = json.JoinOptions(jsontext.AllowInvalidUTF8(true), jsontext.AllowDuplicateNames(true))

// marshal encodes a spool record.
func marshal(v any) ([]byte, error) { return json.Marshal(v, codecOptions) }

// unmarshal decodes a spool record into v.
func unmarshal(raw []byte, v any) error { return json.Unmarshal(raw, v, codecOptions) }

type eventRecord struct {
	ID       string            `json:"id"`
	Source   string            `json:"source"`
	Format   string            `json:"format,omitempty"`
	Type     string            `json:"type"`
	Data     map[string]string `json:"data"`
	Content  *relay.Content    `json:"content,omitempty"` // none for zender, whose content is its data
	Received time.Time         `json:"received"`
	Priority int               `json:"priority,omitzero"`
}

type attemptRecord struct {
	At   time.Time `json:"at"`
	What string    `json:"what"`
}

type itemRecord struct {
	Event       eventRecord         `json:"event"`
	Attempts    int                 `json:"attempts"`
	NextAttempt time.Time           `json:"next_attempt"`
	LastError   string              `json:"last_error,omitempty"`
	DeadReason  string              `json:"dead_reason,omitempty"`
	Died        time.Time           `json:"died,omitzero"`
	Delivered   []string            `json:"delivered,omitempty"`
	Refused     map[string]string   `json:"refused,omitempty"`
	Owed        map[string][]string `json:"owed,omitempty"`
	Requeued    time.Time           `json:"requeued,omitzero"`
	History     []attemptRecord     `json:"history,omitempty"`
}

type digestRecord struct {
	Event     eventRecord `json:"event"`
	Collected time.Time   `json:"collected"`
	To        []string    `json:"to,omitempty"`
	Cc        []string    `json:"cc,omitempty"`
	Bcc       []string    `json:"bcc,omitempty"`
	ReplyTo   string      `json:"reply_to,omitempty"`
}

func toEventRecord(ev *relay.Event) eventRecord {
	return eventRecord{ID: ev.ID, Source: ev.Source, Format: ev.Format, Type: ev.Type, Data: ev.Data, Content: ev.StoredContent(), Received: ev.Received, Priority: ev.Priority}
}

func (r *eventRecord) event() relay.Event {
	ev := relay.Event{ID: r.ID, Source: r.Source, Format: r.Format, Type: r.Type, Data: r.Data, Received: r.Received, Priority: r.Priority}
	if r.Content != nil {
		ev.Content = *r.Content
	}
	return ev
}

func toRecord(it *relay.Item) *itemRecord {
	r := &itemRecord{
		Event: toEventRecord(&it.Event), Attempts: it.Attempts, NextAttempt: it.NextAttempt,
		LastError: it.LastError, DeadReason: it.DeadReason, Died: it.Died,
		Delivered: it.Delivered, Refused: it.Refused, Owed: it.Owed, Requeued: it.Requeued,
	}
	for _, h := range it.History {
		r.History = append(r.History, attemptRecord{At: h.At, What: h.What})
	}
	return r
}

func (r *itemRecord) item(state relay.State) *relay.Item {
	it := &relay.Item{
		Event: r.Event.event(), Attempts: r.Attempts, NextAttempt: r.NextAttempt,
		LastError: r.LastError, DeadReason: r.DeadReason, Died: r.Died,
		Delivered: r.Delivered, Refused: r.Refused, Owed: r.Owed, Requeued: r.Requeued, State: state,
	}
	for _, h := range r.History {
		it.History = append(it.History, relay.Attempt{At: h.At, What: h.What})
	}
	return it
}

// decodeItem reads a stored item record.
func decodeItem(raw []byte, state relay.State) (*relay.Item, error) {
	var r itemRecord
	if err := unmarshal(raw, &r); err != nil {
		return nil, err
	}
	return r.item(state), nil
}

// encodeItem writes it as a stored record.
func encodeItem(it *relay.Item) ([]byte, error) { return marshal(toRecord(it)) }
