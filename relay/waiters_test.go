package relay

import (
	"context"
	"errors"
	"testing"
	"time"
)

func closed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestWaiters(t *testing.T) {
	var w Waiters
	a, b, c := w.Join(), w.Join(), w.Join()
	w.WakeOne()
	if !closed(a) || closed(b) || closed(c) || w.Len() != 2 {
		t.Fatalf("WakeOne woke a=%v b=%v c=%v, %d left; want a alone", closed(a), closed(b), closed(c), w.Len())
	}
	// a was woken already: leaving, it passes the wake-up to b, or keeps
	// it to look again.
	w.Leave(a, false)
	if closed(b) {
		t.Fatal("a wake-up kept was passed on")
	}
	w.Leave(a, true)
	if !closed(b) || closed(c) {
		t.Fatalf("the wake-up a gave up went to b=%v c=%v, want b", closed(b), closed(c))
	}
	// c leaves unwoken: out of the line, and no one else is woken.
	d := w.Join()
	w.Leave(c, true)
	if closed(c) || closed(d) || w.Len() != 1 {
		t.Fatalf("c left: c=%v d=%v, %d waiting; want only d waiting", closed(c), closed(d), w.Len())
	}
	e := w.Join()
	w.WakeAll()
	if !closed(d) || !closed(e) || w.Len() != 0 {
		t.Fatalf("WakeAll: d=%v e=%v, %d waiting", closed(d), closed(e), w.Len())
	}
	w.WakeOne() // an empty line: nothing to do
	if n := w.Wakes(); n != 4 {
		t.Errorf("Wakes = %d, want 4 (a, b, d, e)", n)
	}
}

// A wake-up that comes as the timer fires is still a wake-up: the leaser
// looks again, or passes it on when it stops, whichever case select
// picks. Picking the timer, Wait said it was not woken, and a leaser
// that then stopped dropped the wake-up.
func TestWaitReportsAWakeUpBesideTheTimer(t *testing.T) {
	var w Waiters
	for range 200 {
		ch := w.Join()
		w.WakeOne()
		woken, err := w.Wait(t.Context(), nil, time.Nanosecond, ch)
		if !woken || err != nil {
			t.Fatalf("Wait = %v, %v; want woken", woken, err)
		}
	}
}

func TestWaitAndStoppedPassTheWakeUpOn(t *testing.T) {
	var w Waiters
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	// Woken as its context ends: as a leaser's loop does, Wait, then
	// Stopped when Wait took the wake-up. Either way it goes to the next.
	for range 50 {
		a, b := w.Join(), w.Join()
		w.WakeOne()
		woken, err := w.Wait(ctx, nil, 0, a)
		if err == nil {
			err = w.Stopped(ctx, nil, woken)
		}
		if err == nil || !closed(b) {
			t.Fatalf("woken as its context ended: err %v, next woken %v; want an error and the next woken", err, closed(b))
		}
	}
	// Woken, then stopping before it looks: Stopped passes it on.
	c := w.Join()
	if err := w.Stopped(ctx, nil, true); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stopped = %v", err)
	}
	if !closed(c) {
		t.Fatal("Stopped kept the wake-up")
	}
	closing := make(chan struct{})
	if err := w.Stopped(t.Context(), closing, true); err != nil {
		t.Fatalf("Stopped with nothing ended = %v", err)
	}
	close(closing)
	if err := w.Stopped(t.Context(), closing, false); !errors.Is(err, ErrQueueClosed) {
		t.Fatalf("Stopped after closing = %v", err)
	}
}
