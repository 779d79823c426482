package queuetest

import (
	"slices"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

func testDigests(t *testing.T, h Harness) {
	q := open(t, h, Options{})
	ctx := t.Context()
	route := &config.Route{Name: "fb", To: []string{"me@example.com"}, ReplyTo: "r@example.com"}
	for i := range 3 {
		if err := q.Collect(ctx, route, event(i, "notification")); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Collect(ctx, route, event(1, "notification")); err != nil { // again, after a crash
		t.Fatal(err)
	}
	if err := q.Collect(ctx, &config.Route{Name: "other", To: []string{"x@example.com"}}, event(9, "sms")); err != nil {
		t.Fatal(err)
	}
	entries, n, err := q.Digest(ctx, "fb", 2)
	if err != nil || n != 3 || len(entries) != 2 || entries[0].Event.ID != event(0, "").ID || entries[1].Event.ID != event(1, "").ID {
		t.Fatalf("digest: %d of %d, %v", len(entries), n, err)
	}
	if e := entries[0]; !slices.Equal(e.To, route.To) || e.ReplyTo != route.ReplyTo || e.Collected.IsZero() || e.Event.Data["message"] != "event 0" {
		t.Errorf("entry %+v lacks what the route and event gave it", e)
	}
	if routes, err := q.DigestRoutes(ctx); err != nil || !slices.Equal(routes, []string{"fb", "other"}) {
		t.Errorf("digest routes %v %v", routes, err)
	}
	if err := q.Forget(ctx, "fb", []string{event(0, "").ID, event(1, "").ID}); err != nil {
		t.Fatal(err)
	}
	if err := q.BuryDigest(ctx, "fb", []string{event(2, "").ID}, "digest refused"); err != nil {
		t.Fatal(err)
	}
	if _, n, _ := q.Digest(ctx, "fb", 0); n != 0 {
		t.Errorf("%d left in the digest", n)
	}
	it, err := q.Get(ctx, event(2, "").ID)
	if err != nil || it.State != relay.StateDead || it.DeadReason != "digest refused" {
		t.Errorf("the buried digest event: %+v %v", it, err)
	}
	if routes, _ := q.DigestRoutes(ctx); !slices.Equal(routes, []string{"other"}) {
		t.Errorf("digest routes after clearing fb: %v", routes)
	}
}

func testDigestClaimExclusive(t *testing.T, h Harness) {
	q := open(t, h, Options{})
	ctx := t.Context()
	claimers := []relay.DigestStore{q}
	if h.Shared {
		claimers = append(claimers, open(t, h, Options{}))
	}
	if ok, err := q.ClaimDigest(ctx, "fb", time.Hour); !ok || err != nil {
		t.Fatalf("first claim: %v %v", ok, err)
	}
	for i, c := range claimers {
		if ok, err := c.ClaimDigest(ctx, "fb", time.Hour); ok || err != nil {
			t.Errorf("claimer %d claimed a held digest: %v %v", i, ok, err)
		}
	}
	if ok, _ := claimers[len(claimers)-1].ClaimDigest(ctx, "other-route", time.Hour); !ok {
		t.Error("another route's digest could not be claimed")
	}
	if err := q.ReleaseDigest(ctx, "fb"); err != nil {
		t.Fatal(err)
	}
	last := claimers[len(claimers)-1]
	if ok, _ := last.ClaimDigest(ctx, "fb", 150*time.Millisecond); !ok {
		t.Fatal("a released digest could not be claimed")
	}
	time.Sleep(250 * time.Millisecond)
	if ok, _ := q.ClaimDigest(ctx, "fb", time.Hour); !ok {
		t.Error("a lapsed claim still held")
	}
}
