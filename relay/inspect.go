package relay

import (
	"context"
	"slices"
	"strings"

	"github.com/hookmail/hookmail/config"
)

// Inspector is the operator's view of a queue: what `hookmail queue` and the
// admin endpoint list, show and change. Every change goes through the
// backend's own writes, so it is safe while workers deliver, on any
// instance.
type Inspector interface {
	// List returns a page of the items f selects: StateWaiting lists
	// waiting and delivering items in the order they are due, StateDead
	// the dead letters in the order they were received.
	List(ctx context.Context, f Filter) (Page, error)
	// Get returns one item, waiting or dead, with its State set.
	Get(ctx context.Context, id string) (*Item, error)
	// Requeue makes a waiting or dead item due now; a dead letter gets a
	// fresh retry.lifetime and its refusing routes are tried again.
	Requeue(ctx context.Context, id string) error
	// RequeueDead makes every dead letter f selects due now (f.State,
	// f.Limit and f.After are ignored) and returns how many.
	RequeueDead(ctx context.Context, f Filter) (int, error)
	// Drop deletes a waiting or dead item for good. An item being delivered
	// cannot be dropped (ErrBusy).
	Drop(ctx context.Context, id string) error
	// Stats is the same snapshot the metrics read.
	Stats(ctx context.Context) (Stats, error)
}

// Filter selects the items List returns.
type Filter struct {
	// State is StateWaiting (waiting and delivering items), StateDelivering
	// (only the items a worker holds now) or StateDead.
	State State
	// Type, when set, keeps the items of that event type only.
	Type string
	// Source, when set, keeps the events of that webhook source only.
	Source string
	// Text, when set, keeps the items whose event id, sender, recipient or
	// message contains it, in any case: a phone number or words of the
	// message.
	Text string
	// Route, when set, keeps the items that route takes by Router (the
	// rules in force), or has served or refused already.
	Route  string
	Router *Router
	// Limit bounds the page (0: no bound).
	Limit int
	// After is the cursor a previous Page returned: the page starts after
	// the item it names. Cursors stay valid while items come and go.
	After string
}

// Matches reports whether it, with its State set, passes f's filters.
// Which listing f.State picks, waiting or dead, is the backend's to
// choose; Matches keeps only the delivering items when f asks for those.
func (f Filter) Matches(it *Item) bool {
	switch {
	case f.Type != "" && it.Event.Type != f.Type,
		f.Source != "" && it.Event.Source != f.Source,
		f.State == StateDelivering && it.State != StateDelivering,
		f.Route != "" && !f.takenBy(it):
		return false
	case f.Text == "":
		return true
	}
	c := it.Event.Canonical()
	return containsFold(f.Text, it.Event.ID, c.From, c.To, c.Text)
}

// KeepsAll reports whether f keeps every item of its listing, so a
// backend need not look at the items to page them.
func (f Filter) KeepsAll() bool {
	return f.Type == "" && f.Source == "" && f.Text == "" && f.Route == "" && f.State != StateDelivering
}

// takenBy reports whether the route f names takes it now, or has taken
// part in its delivery already.
func (f Filter) takenBy(it *Item) bool {
	_, refused := it.Refused[f.Route]
	_, owed := it.Owed[f.Route]
	if refused || owed || slices.Contains(it.Delivered, f.Route) {
		return true
	}
	if f.Router == nil {
		return false
	}
	return slices.ContainsFunc(f.Router.Routes(&it.Event), func(rt *config.Route) bool { return rt.Name == f.Route })
}

// containsFold reports whether any of in contains s, ignoring case.
func containsFold(s string, in ...string) bool {
	s = strings.ToLower(s)
	for _, v := range in {
		if strings.Contains(strings.ToLower(v), s) {
			return true
		}
	}
	return false
}

// Page is one page of a List.
type Page struct {
	Items []Item
	// Next is the cursor of the next page, "" when this is the last.
	Next string
}
