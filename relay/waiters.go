package relay

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Waiters is the line of a queue's idle leasers, longest waiting first.
// A leaser joins it so that no signal given after it looked is lost
// (before it looks, or under the lock the signal takes too); a new item
// wakes the one leaser at the head, where a broadcast had every idle
// worker look for each webhook and all but one find nothing. A leaser
// that was woken either looks again or passes the wake-up on (see Wait,
// Leave and Stopped). relay/spool, relay/postgres and relay/memqueue use
// it (memqueue waking every leaser at each signal). The zero
// value is an empty line; its methods are safe for concurrent use.
type Waiters struct {
	mu    sync.Mutex
	line  []chan struct{}
	wakes int64 // leasers woken so far
}

// Join puts a leaser at the end of the line; the channel closes when it is
// woken.
func (w *Waiters) Join() chan struct{} {
	ch := make(chan struct{})
	w.mu.Lock()
	w.line = append(w.line, ch)
	w.mu.Unlock()
	return ch
}

// WakeOne wakes the leaser that has waited longest, for one new item.
func (w *Waiters) WakeOne() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.wakeHead()
}

// wakeHead wakes the head of the line; the caller holds w.mu.
func (w *Waiters) wakeHead() {
	if len(w.line) > 0 {
		close(w.line[0])
		w.line = slices.Delete(w.line, 0, 1)
		w.wakes++
	}
}

// WakeAll wakes every waiting leaser, for many items or an unknown number.
func (w *Waiters) WakeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ch := range w.line {
		close(ch)
	}
	w.wakes += int64(len(w.line))
	clear(w.line)
	w.line = w.line[:0]
}

// Leave takes the leaser waiting on ch out of the line and reports
// whether it had been woken. When it had and passOn is set (it will not
// look again, or it found work without the wake-up), the wake-up goes to
// the next in line instead.
func (w *Waiters) Leave(ch chan struct{}, passOn bool) (woken bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if i := slices.Index(w.line, ch); i >= 0 {
		w.line = slices.Delete(w.line, i, i+1)
		return false
	}
	if passOn {
		w.wakeHead()
	}
	return true
}

// Wait sleeps, in line on ch, until it is woken, d passes (d <= 0: no
// deadline), ctx ends or closing closes (relay.ErrQueueClosed). It
// reports whether it was woken, the timer too having fired at the same
// moment included: a woken leaser looks again, or passes the wake-up on
// through Stopped. One that ends with an error has passed it on already.
func (w *Waiters) Wait(ctx context.Context, closing <-chan struct{}, d time.Duration, ch chan struct{}) (woken bool, err error) {
	var timer <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-ch:
		return true, nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-closing:
		err = ErrQueueClosed
	case <-timer:
	}
	woken = w.Leave(ch, err != nil)
	return woken && err == nil, err
}

// Stopped is the error a leaser stops for before it looks (ctx ended, or
// closing closed), or nil. A leaser that stops while woken passes the
// wake-up on, so the item it was for does not wait with another leaser
// idle.
func (w *Waiters) Stopped(ctx context.Context, closing <-chan struct{}, woken bool) error {
	var err error
	select {
	case <-closing:
		err = ErrQueueClosed
	case <-ctx.Done():
		err = ctx.Err()
	default:
		return nil
	}
	if woken {
		w.WakeOne()
	}
	return err
}

// Wakes is how many leasers have been woken so far: each wake-up costs a
// look for work (on Postgres, a claim and often a second query).
func (w *Waiters) Wakes() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.wakes
}

// Len is the number of leasers waiting.
func (w *Waiters) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.line)
}
