package relay

import (
	"context"
	"time"
)

// Exports for the external tests (package relay_test), which need the
// seams (webhook, memqueue, outbox) that the core's own tests cannot import.

// Deliver makes one attempt at the leased item and settles its lease, as a
// running worker does, for a test that leases the item itself.
func (w *Workers) Deliver(ctx context.Context, l *Lease) { w.deliver(ctx, l, turn{}) }

// DeliverUntil is Deliver for a worker told to stop when stop closes, and
// that loses its lease when lost closes.
func (w *Workers) DeliverUntil(ctx context.Context, l *Lease, stop, lost <-chan struct{}) {
	w.deliver(ctx, l, turn{stop: stop, lost: lost})
}

// SetHangAfter shortens how long a worker extends the lease of an attempt
// that does not end; call it before Run.
func (w *Workers) SetHangAfter(d time.Duration) { w.hangAfter = d }

// SetClock replaces the workers' clock; call it before Run.
func (w *Workers) SetClock(now func() time.Time) { w.now, w.pacer.now = now, now }
