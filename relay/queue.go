package relay

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/hookmail/hookmail/config"
)

// Queue is where accepted events wait for delivery. The receiver only
// enqueues; workers lease, then settle each lease with exactly one of Ack,
// Retry or Bury. The embedded bbolt Spool implements it; a shared backend
// (NATS JetStream: publish, fetch, ack, nak with delay, term) fits the same
// calls, so neither the receiver nor the workers change with the backend.
type Queue interface {
	// Enqueue stores ev durably and returns only once it would survive a
	// crash. An error means the event was not accepted.
	Enqueue(ctx context.Context, ev *Event) error
	// Lease blocks until an item is due, then hands it to this caller alone
	// until it is settled. It returns ctx's error when ctx ends.
	Lease(ctx context.Context) (*Item, error)
	// Ack removes a delivered item.
	Ack(ctx context.Context, it *Item) error
	// Retry puts the item back, due again at next, recording its Attempts
	// and the error.
	Retry(ctx context.Context, it *Item, next time.Time, cause error) error
	// Bury moves the item to the dead letters with the reason it failed.
	Bury(ctx context.Context, it *Item, reason string) error
	// Stats reports what the queue holds now.
	Stats(ctx context.Context) (Stats, error)
	// Ready reports whether the queue can accept events now.
	Ready(ctx context.Context) error
	// Close releases the queue; leased items not settled are due again on
	// the next start.
	Close() error
}

// Item is an event in the queue with its delivery history.
type Item struct {
	Event Event `json:"event"`
	// Attempts counts the delivery attempts made so far; the worker counts
	// each attempt before it settles the item.
	Attempts int `json:"attempts"`
	// NextAttempt is when the item is due.
	NextAttempt time.Time `json:"next_attempt"`
	// LastError is the last attempt's error, for operators.
	LastError string `json:"last_error,omitempty"`
	// DeadReason says why a dead letter was buried.
	DeadReason string `json:"dead_reason,omitempty"`
	// Died is when the item was buried.
	Died time.Time `json:"died,omitzero"`
	// Delivered names the routes already served (emailed, or dropped) on
	// earlier attempts, so a retry emails only the routes still owed.
	Delivered []string `json:"delivered,omitempty"`
	// Refused holds the routes that refused the event for good (a 5xx, an
	// address or template error), with the reason: they are not tried
	// again, and once no route is owed a retry the event is buried.
	Refused map[string]string `json:"refused,omitempty"`
	// Owed holds, by route, the recipients a server deferred (4xx) while it
	// took the email for the route's others: the retry sends to them only.
	Owed map[string][]string `json:"owed,omitempty"`
	// Requeued is when an operator last put the item back in the queue; its
	// retry.lifetime counts from then rather than from Event.Received.
	Requeued time.Time `json:"requeued,omitzero"`
	// History lists what happened to the item, oldest first, at most
	// maxHistory entries (the earliest dropped first).
	History []Attempt `json:"history,omitempty"`
	// State is where the item is now. It is filled in when the item is
	// read for an operator, not stored.
	State State `json:"state,omitempty"`
}

// Attempt is one entry of an item's history: a failed delivery attempt, a
// burial, or an operator's action.
type Attempt struct {
	At   time.Time `json:"at"`
	What string    `json:"what"`
}

// maxHistory bounds an item's history, so an event retried for days does
// not grow without end.
const maxHistory = 20

// LifetimeStart is when the item's retry.lifetime began: when it was
// received, or when an operator last requeued it.
func (it *Item) LifetimeStart() time.Time {
	if it.Requeued.After(it.Event.Received) {
		return it.Requeued
	}
	return it.Event.Received
}

func (it *Item) record(at time.Time, what string) {
	it.History = append(it.History, Attempt{At: at, What: what})
	if n := len(it.History); n > maxHistory {
		it.History = slices.Delete(it.History, 0, n-maxHistory)
	}
}

// State is where an item is in a queue.
type State string

// The states an item can be in.
const (
	StateWaiting    State = "waiting"    // due now or at NextAttempt
	StateDelivering State = "delivering" // leased by a worker now
	StateDead       State = "dead"       // in the dead letters
)

// Stats is a snapshot of a queue.
type Stats struct {
	// Depth counts events waiting for delivery, leased ones included.
	Depth int `json:"depth"`
	// Delivering counts the leased events, being delivered now.
	Delivering int `json:"delivering"`
	// Oldest is when the oldest waiting event was received; zero when empty.
	Oldest time.Time `json:"oldest,omitzero"`
	// Dead counts dead letters.
	Dead int `json:"dead"`
	// Bytes is the size of the stored events and dead letters.
	Bytes int64 `json:"bytes"`
	// ByType counts waiting events and dead letters by event type (known
	// types, "other" and "none", as the metrics label them).
	ByType map[string]TypeCount `json:"by_type,omitempty"`
}

// TypeCount is Stats' count for one event type.
type TypeCount struct {
	Waiting int `json:"waiting"`
	Dead    int `json:"dead"`
}

// Inspector is the operator's view of a queue: what `hookmail queue` and the
// admin endpoint list, show and change. Every change goes through the queue's
// own writer, so it is safe while workers deliver.
type Inspector interface {
	// List returns the items in state, at most limit (0: all):
	// StateWaiting lists waiting and delivering items in the order they are
	// due, StateDead the dead letters in the order they were received.
	List(ctx context.Context, state State, limit int) ([]Item, error)
	// Get returns one item, waiting or dead, with its State set.
	Get(ctx context.Context, id string) (*Item, error)
	// Requeue makes a waiting or dead item due now.
	Requeue(ctx context.Context, id string) error
	// RequeueDead makes every dead letter due now and returns how many.
	RequeueDead(ctx context.Context) (int, error)
	// Drop deletes a waiting or dead item for good. An item being delivered
	// cannot be dropped.
	Drop(ctx context.Context, id string) error
	// Stats is the same snapshot the metrics read.
	Stats(ctx context.Context) (Stats, error)
}

// ErrQueueClosed is returned by a queue that has been closed.
var ErrQueueClosed = errors.New("queue closed")

// ErrQueueFull is returned by Enqueue when the queue holds as much as its
// limits allow; the wrapping error names the limit.
var ErrQueueFull = errors.New("queue full")

// ErrNotFound is returned for an id the queue does not hold.
var ErrNotFound = errors.New("no such event in the queue")

// ErrBusy is returned when an item cannot be changed because a worker is
// delivering it now.
var ErrBusy = errors.New("the event is being delivered now; try again in a moment")

// DuplicateError is returned by Enqueue for an event whose DedupKey the
// queue has seen within its dedup window: the event is not stored again.
type DuplicateError struct {
	// ID is the id of the event first stored with that key.
	ID string
}

func (e *DuplicateError) Error() string { return "duplicate of event " + e.ID }

// DigestStore keeps the events digest routes collect until their digest
// email goes out. Collected events are durable: a digest in progress
// survives a restart. The Spool implements it in its own file.
type DigestStore interface {
	// Collect adds ev to route's digest, with where the digest goes;
	// adding the same event twice keeps one copy, so a redelivery after a
	// crash does not list it twice.
	Collect(ctx context.Context, route *config.Route, ev *Event) error
	// Digest returns up to limit of route's collected events, oldest
	// first, and how many there are in all.
	Digest(ctx context.Context, route string, limit int) ([]DigestEntry, int, error)
	// DigestRoutes names every route with collected events, including
	// routes the config no longer has.
	DigestRoutes(ctx context.Context) ([]string, error)
	// Forget removes the given events from route's digest once its email
	// has gone out.
	Forget(ctx context.Context, route string, ids []string) error
	// BuryDigest moves the given events of route's digest to the dead
	// letters with reason, when the digest cannot be delivered.
	BuryDigest(ctx context.Context, route string, ids []string, reason string) error
}

// DigestEntry is one collected event, when it was collected, and where its
// digest goes (kept with it, so the events still reach someone when a
// reload renames or removes the route).
type DigestEntry struct {
	Event     Event     `json:"event"`
	Collected time.Time `json:"collected"`
	To        []string  `json:"to,omitempty"`
	Cc        []string  `json:"cc,omitempty"`
	Bcc       []string  `json:"bcc,omitempty"`
	ReplyTo   string    `json:"reply_to,omitempty"`
}
