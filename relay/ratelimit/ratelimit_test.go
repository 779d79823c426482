package ratelimit

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// TestTakeAndGiveBack: burst tokens at once, then a wait; a token given
// back (a right login) is there again.
func TestTakeAndGiveBack(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := New(rate.Every(20*time.Second), 2, 0, func() time.Time { return now })
	undo, wait := l.Take("192.0.2.1")
	if wait != 0 {
		t.Fatalf("first take waits %s", wait)
	}
	undo()
	for i := range 2 {
		if _, wait := l.Take("192.0.2.1"); wait != 0 {
			t.Fatalf("take %d after a give-back waits %s", i+1, wait)
		}
	}
	if _, wait := l.Take("192.0.2.1"); wait != 20*time.Second {
		t.Errorf("past the burst: wait %s, want 20s", wait)
	}
	if _, wait := l.Take("192.0.2.2"); wait != 0 {
		t.Errorf("another address waits %s", wait)
	}
}

// TestWarnOncePerInterval: a refusal may be logged once a minute per key.
func TestWarnOncePerInterval(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := New(1, 1, 0, func() time.Time { return now })
	if !l.Warn("a", time.Minute) || l.Warn("a", time.Minute) {
		t.Error("want the first warning, not the second")
	}
	if !l.Warn("b", time.Minute) {
		t.Error("another key's first warning was held back")
	}
	now = now.Add(time.Minute)
	if !l.Warn("a", time.Minute) {
		t.Error("a minute later the warning was held back")
	}
}

// TestBoundForgetsRefilled: at its bound the limiter forgets the keys
// whose bucket has refilled, and keeps those still limited.
func TestBoundForgetsRefilled(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := New(rate.Every(time.Second), 1, 10, func() time.Time { return now })
	l.Take("limited")
	for i := range 9 {
		l.Take(fmt.Sprint("quiet-", i))
	}
	now = now.Add(500 * time.Millisecond) // none refilled yet
	l.Take("new")
	if n := l.Len(); n != 11 {
		t.Fatalf("%d keys, want 11: none had refilled", n)
	}
	now = now.Add(time.Second)
	if _, wait := l.Take("limited"); wait != 0 {
		t.Fatalf("refilled key waits %s", wait)
	}
	l.Take("newer")
	if n := l.Len(); n > 3 {
		t.Errorf("%d keys kept at the bound, want the refilled ones forgotten", n)
	}
}

// TestClientNet: IPv4 addresses count one by one, IPv6 ones by their /64,
// so a host rotating through its /64 is one client.
func TestClientNet(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.1:4711":                  "192.0.2.1",
		"[2001:db8:0:1::1]:4711":          "2001:db8:0:1::/64",
		"[2001:db8:0:1:dead:beef:1:2]:80": "2001:db8:0:1::/64",
		"[2001:db8:0:2::1]:4711":          "2001:db8:0:2::/64",
		"[::ffff:192.0.2.1]:4711":         "192.0.2.1",
		"[fe80::1%eth0]:4711":             "fe80::/64",
		"[::1]:4711":                      "::/64",
		"@":                               "@", // a unix socket's peer
		"not an address":                  "not an address",
	} {
		if got := ClientNet(addr); got != want {
			t.Errorf("ClientNet(%q) = %q, want %q", addr, got, want)
		}
	}
}
