package relay

import (
	"context"
	"errors"
	"time"
)

// Queue is where accepted events wait for delivery: the embedded spool
// (relay/spool) or a database table that several hookmail instances share.
// The receiver only enqueues; workers lease, then settle each lease with
// exactly one of Ack, Retry or Bury. The contract is shaped so that a table
// with FOR UPDATE SKIP LOCKED meets it as well as one bbolt file does (as
// River's and Oban's job tables do):
//
//   - A lease has an expiry. The worker extends it while it sends; a lease
//     not extended (its worker hung, or its instance died) returns the item
//     to the queue by itself, and settling a lease that expired fails with
//     ErrLeaseLost.
//   - Retry and Bury take the attempt's Progress, which the backend stores
//     with the state change in one write: nothing the worker learned is
//     written back piecemeal.
//   - How writes are batched (group commits, acks that linger for others)
//     is the backend's business; the worker calls each method once per
//     outcome.
//
// relay/queuetest holds the conformance suite every backend passes.
type Queue interface {
	// Enqueue stores ev durably, due now, and returns only once it would
	// survive a crash. An error means the event was not accepted: a
	// *DuplicateError names the event first stored with ev.DedupKey within
	// the dedup window; ErrQueueFull wraps a text naming the limit reached.
	Enqueue(ctx context.Context, ev *Event) error
	// Lease blocks until an item is due, then hands it to this caller
	// alone until the lease is settled or expires. It returns ctx's error
	// when ctx ends, and ErrQueueClosed once the queue is closed.
	Lease(ctx context.Context) (*Lease, error)
	// Extend pushes the lease's expiry a lease timeout further from now.
	Extend(ctx context.Context, l *Lease) error
	// Ack removes the delivered item. The backend may commit it after
	// returning, together with others (a crash in between makes the item
	// due again, and its email is sent again with the same Message-ID),
	// but Close waits for every accepted ack.
	Ack(ctx context.Context, l *Lease) error
	// Retry records the failed attempt's progress and makes the item due
	// again at next.
	Retry(ctx context.Context, l *Lease, next time.Time, p Progress) error
	// Bury records the progress and moves the item to the dead letters,
	// with the reason it will not be delivered.
	Bury(ctx context.Context, l *Lease, reason string, p Progress) error
	// Stats reports what the queue holds now.
	Stats(ctx context.Context) (Stats, error)
	// Ready reports whether the queue accepts events now, and why not.
	Ready(ctx context.Context) error
	// Close releases this instance's hold on the queue. Leases it still
	// holds expire as any other: their items are due again after the lease
	// timeout, to this instance when it opens again or to another one.
	Close() error
}

// Lease is a worker's hold on one item.
type Lease struct {
	// Item is the item as it was stored when it was leased.
	Item Item
	// Token tells this lease from any later lease of the same item.
	Token string
	// Expires is when the item returns to the queue unless the lease is
	// extended or settled.
	Expires time.Time
}

// Progress is what delivery attempts have found out about an item: Retry
// and Bury store it with the item's new state.
type Progress struct {
	// Attempts counts the delivery attempts so far, this one included.
	Attempts int
	// Delivered names the routes served (emailed, collected or dropped).
	Delivered []string
	// Refused holds the routes that refused the event for good, with why.
	Refused map[string]string
	// Owed holds, by route, the recipients a server deferred (4xx) while
	// it took the email for the route's others.
	Owed map[string][]string
	// LastError is the attempt's error, for operators.
	LastError string
	// History is what the attempt adds to the item's history.
	History []Attempt
}

// DefaultLeaseTimeout is how long a lease lasts unless extended. A worker
// extends it every third of that while it sends, so a killed instance's
// items are due again after at most this long.
const DefaultLeaseTimeout = 30 * time.Second

// Stats is a snapshot of a queue.
type Stats struct {
	// Depth counts events waiting for delivery, leased ones included.
	Depth int
	// Delivering counts the leased events, being delivered now.
	Delivering int
	// Oldest is when the oldest waiting event was received; zero when empty.
	Oldest time.Time
	// Dead counts dead letters.
	Dead int
	// Bytes is the size of what the queue stores: events, dead letters and
	// events collected for digests. The spool counts what its file holds
	// (the pages in use, indexes and dedup keys included); Postgres, its
	// tables' size on disk without indexes (pg_table_size), which keeps the
	// space deleted rows left until Postgres reuses it.
	Bytes int64
	// ByType counts waiting events and dead letters by event type, as the
	// events name it (the metrics fold unknown types into "other").
	ByType map[string]TypeCount
}

// TypeCount is Stats' count for one event type.
type TypeCount struct {
	Waiting int
	Dead    int
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

// ErrLeaseLost is returned when a lease is extended or settled after it
// expired (another worker may hold the item now) or after an operator
// changed the item.
var ErrLeaseLost = errors.New("the lease expired or was taken over")

// DuplicateError is returned by Enqueue for an event whose DedupKey the
// queue has seen within its dedup window: the event is not stored again.
type DuplicateError struct {
	// ID is the id of the event first stored with that key.
	ID string
}

func (e *DuplicateError) Error() string { return "duplicate of event " + e.ID }
