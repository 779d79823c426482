package relay

import (
	"context"
	"errors"
	"time"
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
}

// Stats is a snapshot of a queue.
type Stats struct {
	// Depth counts events waiting for delivery, leased ones included.
	Depth int
	// Oldest is when the oldest waiting event was received; zero when empty.
	Oldest time.Time
	// Dead counts dead letters.
	Dead int
}

// ErrQueueClosed is returned by a queue that has been closed.
var ErrQueueClosed = errors.New("queue closed")
