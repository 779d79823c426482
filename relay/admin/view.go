package admin

import (
	"maps"
	"time"

	"github.com/hookmail/hookmail/relay"
)

// The types below are the admin API's JSON and `hookmail queue ... --json`
// output: the operator's view of the queue, apart from how any backend
// stores it. Their field names are a public interface; add to them, do not
// rename.

// EventView is an event as operators see it.
type EventView struct {
	ID       string            `json:"id"`
	Source   string            `json:"source"`
	Format   string            `json:"format,omitempty"`
	Type     string            `json:"type"`
	Data     map[string]string `json:"data"`
	Content  *ContentView      `json:"content,omitempty"` // none for zender, whose content is its data
	Received time.Time         `json:"received"`
}

// ContentView is an event's canonical content. Attachments show their
// name, type, size and URL, not their bytes.
type ContentView struct {
	From        string           `json:"from,omitempty"`
	To          string           `json:"to,omitempty"`
	Text        string           `json:"text,omitempty"`
	Sent        time.Time        `json:"sent,omitzero"`
	MessageID   string           `json:"message_id,omitempty"`
	Status      string           `json:"status,omitempty"`
	Attachments []AttachmentView `json:"attachments,omitempty"`
}

// AttachmentView is one attachment of an event.
type AttachmentView struct {
	Name        string `json:"name,omitempty"`
	ContentType string `json:"content_type,omitempty"`
	Size        int64  `json:"size,omitempty"`
	URL         string `json:"url,omitempty"`
}

func viewEvent(ev *relay.Event) EventView {
	v := EventView{ID: ev.ID, Source: ev.Source, Format: ev.Format, Type: ev.Type, Data: ev.Data, Received: ev.Received}
	if c := ev.StoredContent(); c != nil {
		cv := &ContentView{From: c.From, To: c.To, Text: c.Text, Sent: c.Sent, MessageID: c.MessageID, Status: c.Status}
		for _, a := range c.Attachments {
			size := a.Size
			if size == 0 {
				size = int64(len(a.Data))
			}
			cv.Attachments = append(cv.Attachments, AttachmentView{Name: a.Name, ContentType: a.ContentType, Size: size, URL: a.URL})
		}
		v.Content = cv
	}
	return v
}

// event is v back as a relay.Event, for the client: attachments without
// their bytes.
func (v *EventView) event() relay.Event {
	ev := relay.Event{ID: v.ID, Source: v.Source, Format: v.Format, Type: v.Type, Data: v.Data, Received: v.Received}
	if c := v.Content; c != nil {
		ev.Content = relay.Content{From: c.From, To: c.To, Text: c.Text, Sent: c.Sent, MessageID: c.MessageID, Status: c.Status}
		for _, a := range c.Attachments {
			ev.Content.Attachments = append(ev.Content.Attachments, relay.Attachment{Name: a.Name, ContentType: a.ContentType, Size: a.Size, URL: a.URL})
		}
	}
	return ev
}

// AttemptView is one entry of an item's history.
type AttemptView struct {
	At   time.Time `json:"at"`
	What string    `json:"what"`
}

// ItemView is a queued event or dead letter as operators see it.
type ItemView struct {
	Event       EventView           `json:"event"`
	State       relay.State         `json:"state"`
	Attempts    int                 `json:"attempts"`
	NextAttempt time.Time           `json:"next_attempt"`
	LastError   string              `json:"last_error,omitempty"`
	DeadReason  string              `json:"dead_reason,omitempty"`
	Died        time.Time           `json:"died,omitzero"`
	Delivered   []string            `json:"delivered,omitempty"`
	Refused     map[string]string   `json:"refused,omitempty"`
	Owed        map[string][]string `json:"owed,omitempty"`
	Requeued    time.Time           `json:"requeued,omitzero"`
	History     []AttemptView       `json:"history,omitempty"`
}

// PageView is one page of a listing.
type PageView struct {
	Items []ItemView `json:"items"`
	// Next is the cursor of the next page (after=), "" on the last.
	Next string `json:"next,omitempty"`
}

// Detail is what `hookmail queue show` prints: the item with its history,
// the route that takes it, and the email it renders to now.
type Detail struct {
	Item  ItemView `json:"item"`
	Route string   `json:"route,omitempty"`
	// Email is the whole message as it would be sent now (RFC 5322).
	Email string `json:"email,omitempty"`
	// RenderError says why no email could be made, when none could.
	RenderError string `json:"render_error,omitempty"`
}

// StatsView is what `hookmail queue stats` and the metrics show.
type StatsView struct {
	Depth      int                      `json:"depth"`
	Delivering int                      `json:"delivering"`
	Oldest     time.Time                `json:"oldest,omitzero"`
	Dead       int                      `json:"dead"`
	Bytes      int64                    `json:"bytes"`
	ByType     map[string]TypeCountView `json:"by_type,omitempty"`
}

// TypeCountView counts one type's waiting events and dead letters.
type TypeCountView struct {
	Waiting int `json:"waiting"`
	Dead    int `json:"dead"`
}

// ViewItem is it as operators see it. The event's DedupKey is left out:
// it hashes the sender's secret with fields shown here.
func ViewItem(it *relay.Item) ItemView {
	v := ItemView{
		Event: viewEvent(&it.Event),
		State: it.State, Attempts: it.Attempts, NextAttempt: it.NextAttempt,
		LastError: it.LastError, DeadReason: it.DeadReason, Died: it.Died,
		Delivered: it.Delivered, Refused: it.Refused, Owed: it.Owed, Requeued: it.Requeued,
	}
	for _, h := range it.History {
		v.History = append(v.History, AttemptView{At: h.At, What: h.What})
	}
	return v
}

// ViewStats is st as operators see it.
func ViewStats(st relay.Stats) StatsView {
	v := StatsView{Depth: st.Depth, Delivering: st.Delivering, Oldest: st.Oldest, Dead: st.Dead, Bytes: st.Bytes}
	for t, c := range st.ByType {
		if v.ByType == nil {
			v.ByType = map[string]TypeCountView{}
		}
		v.ByType[t] = TypeCountView{Waiting: c.Waiting, Dead: c.Dead}
	}
	return v
}

// item is v back as a relay.Item, for the client.
func (v *ItemView) item() relay.Item {
	it := relay.Item{
		Event: v.Event.event(),
		State: v.State, Attempts: v.Attempts, NextAttempt: v.NextAttempt,
		LastError: v.LastError, DeadReason: v.DeadReason, Died: v.Died,
		Delivered: v.Delivered, Refused: v.Refused, Owed: v.Owed, Requeued: v.Requeued,
	}
	for _, h := range v.History {
		it.History = append(it.History, relay.Attempt{At: h.At, What: h.What})
	}
	return it
}

// stats is v back as relay.Stats, for the client.
func (v *StatsView) stats() relay.Stats {
	st := relay.Stats{Depth: v.Depth, Delivering: v.Delivering, Oldest: v.Oldest, Dead: v.Dead, Bytes: v.Bytes}
	for t, c := range maps.All(v.ByType) {
		if st.ByType == nil {
			st.ByType = map[string]relay.TypeCount{}
		}
		st.ByType[t] = relay.TypeCount{Waiting: c.Waiting, Dead: c.Dead}
	}
	return st
}
