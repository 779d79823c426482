package relay

import (
	"maps"
	"slices"
	"time"
)

// Item is an event in a queue with its delivery history. Each backend
// stores it in its own shape; this is the shape the workers and operators
// work with.
type Item struct {
	Event Event
	// Attempts counts the delivery attempts made so far.
	Attempts int
	// NextAttempt is when the item is due.
	NextAttempt time.Time
	// LastError is the last attempt's error, for operators.
	LastError string
	// DeadReason says why a dead letter was buried.
	DeadReason string
	// Died is when the item was buried.
	Died time.Time
	// Delivered names the routes already served (emailed, collected for a
	// digest, or dropped) on earlier attempts, so a retry emails only the
	// routes still owed.
	Delivered []string
	// Refused holds the routes that refused the event for good (a 5xx, an
	// address or template error), with the reason: they are not tried
	// again, and once no route is owed a retry the event is buried.
	Refused map[string]string
	// Owed holds, by route, the recipients a server deferred (4xx) while it
	// took the email for the route's others: the retry sends to them only.
	Owed map[string][]string
	// Requeued is when an operator last put the item back in the queue; its
	// retry.lifetime counts from then rather than from Event.Received.
	Requeued time.Time
	// History lists what happened to the item, oldest first, at most
	// MaxHistory entries (the earliest dropped first).
	History []Attempt
	// State is where the item is now.
	State State
}

// Attempt is one entry of an item's history: a failed delivery attempt, a
// burial, or an operator's action.
type Attempt struct {
	At   time.Time
	What string
}

// MaxHistory bounds an item's history, so an event retried for days does
// not grow without end.
const MaxHistory = 20

// State is where an item is in a queue.
type State string

// The states an item can be in.
const (
	StateWaiting    State = "waiting"    // due now or at NextAttempt
	StateDelivering State = "delivering" // leased by a worker now
	StateDead       State = "dead"       // in the dead letters
)

// LifetimeStart is when the item's retry.lifetime began: when it was
// received, or when an operator last requeued it.
func (it *Item) LifetimeStart() time.Time {
	if it.Requeued.After(it.Event.Received) {
		return it.Requeued
	}
	return it.Event.Received
}

// Record adds an entry to the item's history, keeping the last MaxHistory.
func (it *Item) Record(at time.Time, what string) {
	it.History = append(it.History, Attempt{At: at, What: what})
	if n := len(it.History); n > MaxHistory {
		it.History = slices.Delete(it.History, 0, n-MaxHistory)
	}
}

// Progress is what the item's attempts have found out so far, for a worker
// to add to.
func (it *Item) Progress() Progress {
	return Progress{
		Attempts:  it.Attempts,
		Delivered: slices.Clone(it.Delivered),
		Refused:   maps.Clone(it.Refused),
		Owed:      maps.Clone(it.Owed),
		LastError: it.LastError,
	}
}

// Apply stores p in the item, as a backend does when it settles a lease.
func (it *Item) Apply(p Progress) {
	it.Attempts = p.Attempts
	it.Delivered = p.Delivered
	it.Refused = p.Refused
	it.Owed = p.Owed
	it.LastError = p.LastError
	for _, h := range p.History {
		it.Record(h.At, h.What)
	}
}
