package relay

import (
	"slices"
	"sync"
)

// Waiters is the line of a queue's idle leasers, longest waiting first.
// A leaser joins it before it looks for work, so a signal given while it
// looks is not lost; a new item wakes the one leaser at the head, where a
// broadcast had every idle worker look for each webhook and all but one
// find nothing. relay/spool and relay/postgres share it. The zero value
// is an empty line; its methods are safe for concurrent use.
type Waiters struct {
	mu   sync.Mutex
	line []chan struct{}
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
	}
}

// WakeAll wakes every waiting leaser, for many items or an unknown number.
func (w *Waiters) WakeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ch := range w.line {
		close(ch)
	}
	clear(w.line)
	w.line = w.line[:0]
}

// Leave takes the leaser waiting on ch out of the line. When it was woken
// meanwhile and passOn is set (it will not look again, or it found work
// without the wake-up), the wake-up goes to the next in line instead.
func (w *Waiters) Leave(ch chan struct{}, passOn bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if i := slices.Index(w.line, ch); i >= 0 {
		w.line = slices.Delete(w.line, i, i+1)
		return
	}
	if passOn {
		w.wakeHead()
	}
}

// Len is the number of leasers waiting.
func (w *Waiters) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.line)
}
