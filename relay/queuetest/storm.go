package queuetest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

// stormRoute is a storm route of threshold events in window.
func stormRoute(threshold int, window time.Duration) *config.Route {
	return &config.Route{Name: "catch-all", To: []string{"ops@example.com"}, Storm: &config.Storm{Threshold: threshold, Window: window}}
}

// count counts ev in route's storm for conv.
func count(t *testing.T, q relay.DigestStore, route *config.Route, conv string, ev *relay.Event) relay.StormCount {
	t.Helper()
	c, err := q.Storm(t.Context(), route, conv, ev)
	if err != nil {
		t.Fatalf("storm count of %s: %v", ev.ID, err)
	}
	return c
}

// digestIDs are the ids of the events the digest named name holds.
func digestIDs(t *testing.T, q relay.DigestStore, name string) []string {
	t.Helper()
	entries, n, err := q.Digest(t.Context(), name, 0)
	if err != nil || n != len(entries) {
		t.Fatalf("digest %s: %d of %d, %v", name, len(entries), n, err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Event.ID)
	}
	return out
}

// testStormCounts: a window emails its first threshold events and folds
// the rest into one digest; counting an event again decides the same; a
// window outlives a reopen; another conversation has a window of its own.
func testStormCounts(t *testing.T, h Harness) {
	q := open(t, h, Options{})
	route := stormRoute(2, time.Hour)
	const conv, other = "0123456789abcdef01234567", "76543210fedcba9876543210"
	if c := count(t, q, route, conv, event(0, "sms")); c.Fold != "" || c.Ends.IsZero() {
		t.Fatalf("the window's first event: %+v, want it emailed", c)
	}
	if c := count(t, q, route, conv, event(1, "sms")); c.Fold != "" {
		t.Fatalf("the second of threshold 2: %+v, want it emailed", c)
	}
	third := count(t, q, route, conv, event(2, "sms"))
	name, start, ok := relay.ParseStormDigest(third.Fold)
	if !ok || name != route.Name || !third.Added || !third.Started || !third.Ends.Equal(start.Add(time.Hour)) {
		t.Fatalf("the third event: %+v (route %q, start %v, %v), want it folded, starting the storm, the window ending an hour after its start", third, name, start, ok)
	}
	if c := count(t, q, route, conv, event(0, "sms")); c.Fold != "" {
		t.Errorf("an emailed event counted again: %+v, want it emailed again", c)
	}
	if c := count(t, q, route, conv, event(2, "sms")); c.Fold != third.Fold || c.Added || c.Started {
		t.Errorf("a folded event counted again: %+v, want it folded into %s once", c, third.Fold)
	}
	if c := count(t, q, route, other, event(3, "sms")); c.Fold != "" {
		t.Errorf("another conversation's first event: %+v, want it emailed", c)
	}
	if h.Shared {
		q = open(t, h, Options{}) // another instance
	} else {
		_ = q.Close()
		q = open(t, h, Options{})
	}
	if c := count(t, q, route, conv, event(4, "sms")); c.Fold != third.Fold || !c.Added || c.Started {
		t.Errorf("after a reopen: %+v, want it folded into the same window's digest", c)
	}
	if c := count(t, q, route, conv, event(1, "sms")); c.Fold != "" {
		t.Errorf("after a reopen, an emailed event counted again: %+v, want it emailed again", c)
	}
	if got, want := digestIDs(t, q, third.Fold), []string{event(2, "").ID, event(4, "").ID}; !slices.Equal(got, want) {
		t.Errorf("the storm's digest holds %v, want %v", got, want)
	}
	if e, _, _ := q.Digest(t.Context(), third.Fold, 1); len(e) != 1 || !slices.Equal(e[0].To, route.To) || e[0].Event.Data["message"] != "event 2" {
		t.Errorf("a folded entry %+v lacks the event or the route's recipients", e)
	}
	if routes, err := q.DigestRoutes(t.Context()); err != nil || !slices.Equal(routes, []string{third.Fold}) {
		t.Errorf("digest routes %v %v, want the storm's digest", routes, err)
	}
	// A reload raised the threshold: a folded event stays folded, a new
	// one is emailed.
	raised := stormRoute(5, time.Hour)
	if c := count(t, q, raised, conv, event(2, "sms")); c.Fold != third.Fold {
		t.Errorf("a folded event after the threshold was raised: %+v, want it still folded", c)
	}
	if c := count(t, q, raised, conv, event(5, "sms")); c.Fold != "" {
		t.Errorf("a new event after the threshold was raised: %+v, want it emailed", c)
	}
}

// testStormWindowEnds: the storm ends with its window; the next event
// opens a new window, whose overflow goes to a digest of its own. An event
// folded in the window that ended and counted again stays in its digest.
func testStormWindowEnds(t *testing.T, h Harness) {
	q := open(t, h, Options{})
	const window = time.Second
	route := stormRoute(1, window)
	const conv = "0123456789abcdef01234567"
	count(t, q, route, conv, event(0, "sms"))
	first := count(t, q, route, conv, event(1, "sms"))
	if first.Fold == "" {
		t.Fatal("the second of threshold 1 was not folded")
	}
	time.Sleep(time.Until(first.Ends) + 100*time.Millisecond)
	if c := count(t, q, route, conv, event(1, "sms")); c.Fold != first.Fold || c.Added {
		t.Errorf("a folded event counted again after its window: %+v, want it left in %s", c, first.Fold)
	}
	if c := count(t, q, route, conv, event(2, "sms")); c.Fold != "" {
		t.Fatalf("the first event after the window: %+v, want it emailed", c)
	}
	second := count(t, q, route, conv, event(3, "sms"))
	if second.Fold == "" || second.Fold == first.Fold || !second.Started || !second.Ends.After(first.Ends) {
		t.Fatalf("the next window's overflow: %+v, want a storm of its own after %+v", second, first)
	}
	if got := digestIDs(t, q, first.Fold); !slices.Equal(got, []string{event(1, "").ID}) {
		t.Errorf("the first window's digest holds %v", got)
	}
	if got := digestIDs(t, q, second.Fold); !slices.Equal(got, []string{event(3, "").ID}) {
		t.Errorf("the second window's digest holds %v", got)
	}
}

// testStormCountsAtOnce: counts of one conversation at once, from several
// goroutines (and instances, on a shared store), email threshold events in
// all and fold the rest, and one of them starts the storm.
func testStormCountsAtOnce(t *testing.T, h Harness) {
	stores := []relay.DigestStore{open(t, h, Options{})}
	if h.Shared {
		stores = append(stores, open(t, h, Options{}))
	}
	route := stormRoute(5, time.Hour)
	const conv, n = "0123456789abcdef01234567", 40
	var mu sync.Mutex
	var emailed, folded, started int
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c, err := stores[i%len(stores)].Storm(t.Context(), route, conv, event(i, "sms"))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Errorf("count %d: %v", i, err)
			case c.Fold == "":
				emailed++
			default:
				folded++
			}
			if c.Started {
				started++
			}
		})
	}
	wg.Wait()
	if emailed != 5 || folded != n-5 || started != 1 {
		t.Errorf("%d emailed, %d folded, %d starts; want 5, %d, 1", emailed, folded, started, n-5)
	}
}
