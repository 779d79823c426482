package relay

import "context"

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
	// State is StateWaiting (waiting and delivering items) or StateDead.
	State State
	// Type, when set, keeps the items of that event type only.
	Type string
	// Limit bounds the page (0: no bound).
	Limit int
	// After is the cursor a previous Page returned: the page starts after
	// the item it names. Cursors stay valid while items come and go.
	After string
}

// Matches reports whether it passes f's type filter.
func (f Filter) Matches(it *Item) bool {
	return f.Type == "" || it.Event.Type == f.Type
}

// Page is one page of a List.
type Page struct {
	Items []Item
	// Next is the cursor of the next page, "" when this is the last.
	Next string
}
