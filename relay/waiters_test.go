package relay

import "testing"

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
}
