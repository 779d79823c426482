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
	if moved, err := q.BuryDigest(ctx, "fb", []string{event(2, "").ID}, "digest refused"); err != nil || moved != 1 {
		t.Fatalf("bury: %d moved, %v; want 1", moved, err)
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

// testBuryDigestNeverLoses: an event one route collected for a digest and
// another still owes (a route with continue) stays collected when the
// digest is refused, so its waiting item is neither overwritten nor
// counted twice; the next refused digest buries it once the queue is done
// with it. An event buried from two digests is one dead letter, counted
// once, with both burials in its history.
func testBuryDigestNeverLoses(t *testing.T, h Harness) {
	q := open(t, h, Options{})
	ctx := t.Context()
	waiting, twice := event(1, "sms"), event(2, "sms")
	enqueue(t, q, waiting)
	a, b := &config.Route{Name: "a", To: []string{"a@example.com"}}, &config.Route{Name: "b", To: []string{"b@example.com"}}
	for _, c := range []struct {
		rt *config.Route
		ev *relay.Event
	}{{a, waiting}, {a, twice}, {b, twice}} {
		if err := q.Collect(ctx, c.rt, c.ev); err != nil {
			t.Fatal(err)
		}
	}
	if moved, err := q.BuryDigest(ctx, "a", []string{waiting.ID, twice.ID}, "refused by a"); err != nil || moved != 1 {
		t.Fatalf("bury a's digest: %d moved, %v; want 1, the waiting event kept", moved, err)
	}
	if moved, err := q.BuryDigest(ctx, "b", []string{twice.ID}, "refused by b"); err != nil || moved != 1 {
		t.Fatalf("bury b's digest: %d moved, %v; want 1", moved, err)
	}
	if entries, n, err := q.Digest(ctx, "a", 0); err != nil || n != 1 || entries[0].Event.ID != waiting.ID {
		t.Errorf("route a's digest: %d entries %v, want the waiting event still collected", n, err)
	}
	if it, err := q.Get(ctx, waiting.ID); err != nil || it.State != relay.StateWaiting || it.DeadReason != "" {
		t.Errorf("the waiting event: %+v %v, want it waiting still", it, err)
	}
	it, err := q.Get(ctx, twice.ID)
	if err != nil || it.State != relay.StateDead || it.DeadReason != "refused by b" || len(it.History) != 2 ||
		it.History[0].What != "moved to the dead letters from route a's digest: refused by a" {
		t.Errorf("the event buried twice: %+v %v", it, err)
	}
	if st := stats(t, q); st.Dead != 1 || st.Depth != 1 || st.ByType["sms"] != (relay.TypeCount{Waiting: 1, Dead: 1}) {
		t.Errorf("stats %+v, want 1 waiting and 1 dead", st)
	}
	// Dropped, the dead letter leaves no count behind.
	if err := q.Drop(ctx, twice.ID); err != nil {
		t.Fatal(err)
	}
	if st := stats(t, q); st.Dead != 0 || st.ByType["sms"] != (relay.TypeCount{Waiting: 1}) {
		t.Errorf("stats after dropping the dead letter %+v, want none dead", st)
	}
}
