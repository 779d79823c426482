package relay_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/memqueue"
)

func digestConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg := testConfig(t)
	cfg.Routes = []config.Route{
		{Name: "facebook-digest", Match: map[string]string{"type": "notification", "package": `^com\.facebook\.`},
			To: []string{"me@example.com"}, Digest: &config.Digest{Every: time.Hour, MaxEvents: 50}},
		{Name: "default", To: []string{"ops@example.com"}},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func postNotifications(t *testing.T, env *testEnv, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		env.post(t, formType, fmt.Sprintf("secret=%s&type=notifications&data[id]=%d&data[package]=com.facebook.katana&data[title]=Facebook&data[content]=comment+number+%d", testSecret, i, i))
	}
}

// emls returns the emails in the outbox dir.
func emls(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// testClock is a settable clock.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestDigestOf50EventsAcrossARestart: 30 notifications are collected, the
// instance stops and a new one opens the same queue; 20 more make 50, the
// route's max_events, and one email lists all 50 in order.
func TestDigestOf50EventsAcrossARestart(t *testing.T) {
	cfg := digestConfig(t)
	env := newTestEnv(t, cfg)
	postNotifications(t, env, 0, 30)
	env.runUntil(t, "30 collected", func() bool { return env.stats(t).Depth == 0 })
	if got := emls(t, cfg.Outbox.Dir); len(got) != 0 {
		t.Fatalf("%d emails before the digest is due, want 0", len(got))
	}

	env2 := env.restart(t)
	if n := env2.collected(t, "facebook-digest"); n != 30 {
		t.Fatalf("after the restart the digest holds %d events, want 30", n)
	}
	postNotifications(t, env2, 30, 20)
	// An SMS on the same instance is emailed at once, as usual.
	env2.post(t, formType, string(readTestdata(t, "sms.form")))
	env2.runUntil(t, "the digest email", func() bool { return len(emls(t, cfg.Outbox.Dir)) == 2 })

	var digest string
	for _, e := range emls(t, cfg.Outbox.Dir) {
		if strings.Contains(e, "facebook-digest digest") {
			digest = e
		}
	}
	if digest == "" {
		t.Fatalf("no digest among the emails:\n%s", strings.Join(emls(t, cfg.Outbox.Dir), "\n----\n"))
	}
	for _, want := range []string{"Subject: Facebook: 50 events (facebook-digest digest)", "To: <me@example.com>", "50 =C3=97 Notification"} {
		if !strings.Contains(digest, want) {
			t.Errorf("digest lacks %q", want)
		}
	}
	// In order: comment 0 first, comment 49 last.
	text := digest[:strings.Index(digest, "text/html")]
	first, last := strings.Index(text, "comment number 0\r\n"), strings.Index(text, "comment number 49\r\n")
	if first < 0 || last < first || strings.Count(text, "comment number ") != 50 {
		t.Errorf("digest text does not list 50 comments in order (first at %d, last at %d):\n%s", first, last, text)
	}
	if n := env2.collected(t, "facebook-digest"); n != 0 {
		t.Errorf("%d events still collected after the digest went out", n)
	}
	if n, err := testutil.GatherAndCount(env2.reg, "hookmail_digest_size_events"); err != nil || n != 1 {
		t.Errorf("digest size histogram has %d series (%v), want 1", n, err)
	}
}

// TestDigestSentWhenTheWindowEnds: a digest below max_events goes out once
// every has passed since its oldest event.
func TestDigestSentWhenTheWindowEnds(t *testing.T) {
	cfg := digestConfig(t)
	clock := &testClock{now: time.Now()}
	env := newTestEnv(t, cfg, withClock(clock.Now))
	postNotifications(t, env, 0, 3)
	env.runUntil(t, "3 collected", func() bool { return env.collected(t, "facebook-digest") == 3 })
	if len(emls(t, cfg.Outbox.Dir)) != 0 {
		t.Fatal("digest sent before its window ended")
	}
	clock.Add(time.Hour)
	env.runUntil(t, "the digest after an hour", func() bool { return len(emls(t, cfg.Outbox.Dir)) == 1 })
	if e := emls(t, cfg.Outbox.Dir)[0]; !strings.Contains(e, "Subject: Facebook: 3 events (facebook-digest digest)") {
		t.Errorf("digest:\n%s", e)
	}
}

// TestDigestPendingOnEveryInstance: two instances share one queue; after
// either sends the digest, both report nothing pending, so the gauge of
// the instance that did not send it does not keep its last count.
func TestDigestPendingOnEveryInstance(t *testing.T) {
	cfg := digestConfig(t)
	clock := &testClock{now: time.Now()}
	a := newTestEnv(t, cfg, withClock(clock.Now))
	b := newTestEnv(t, cfg, withStore(a.store), withSender(a.sender), withClock(clock.Now))
	pending := func(env *testEnv) float64 {
		return env.metric(t, "hookmail_digest_pending_events", "route", "facebook-digest")
	}
	postNotifications(t, a, 0, 3)
	stopA, stopB := a.run(t), b.run(t)
	defer stopA()
	defer stopB()
	waitFor(t, "both instances to count 3 pending", func() bool { return pending(a) == 3 && pending(b) == 3 })
	clock.Add(time.Hour)
	waitFor(t, "the digest email", func() bool { return len(emls(t, cfg.Outbox.Dir)) == 1 })
	waitFor(t, "both instances to count none pending", func() bool { return pending(a) == 0 && pending(b) == 0 })
}

// forgetfulQueue fails Forget a given number of times, as a full disk would.
type forgetfulQueue struct {
	*memqueue.Queue
	fails atomic.Int32
}

func (f *forgetfulQueue) Forget(ctx context.Context, route string, ids []string) error {
	if f.fails.Add(-1) >= 0 {
		return errors.New("write spool.db: no space left on device")
	}
	return f.Queue.Forget(ctx, route, ids)
}

// TestDigestEdgeCases: a digest whose events cannot be cleared after it was
// sent is not sent again; a route a reload renames still sends what it had
// collected; a digest refused for good past retry.lifetime puts its events
// in the dead letters.
func TestDigestEdgeCases(t *testing.T) {
	t.Run("forget fails after sending", func(t *testing.T) {
		cfg := digestConfig(t)
		cfg.Retry.Initial, cfg.Retry.Max = 50*time.Millisecond, 50*time.Millisecond
		env := newTestEnv(t, cfg, withDigests(func(q *memqueue.Queue) relay.DigestStore {
			fq := &forgetfulQueue{Queue: q}
			fq.fails.Store(3)
			return fq
		}))
		postNotifications(t, env, 0, 50)
		env.runUntil(t, "the digest sent and cleared", func() bool {
			return env.collected(t, "facebook-digest") == 0 && len(emls(t, cfg.Outbox.Dir)) >= 1
		})
		if n := len(emls(t, cfg.Outbox.Dir)); n != 1 {
			t.Errorf("%d digest emails, want 1", n)
		}
	})
	t.Run("route renamed by a reload", func(t *testing.T) {
		cfg := digestConfig(t)
		env := newTestEnv(t, cfg)
		postNotifications(t, env, 0, 3)
		env.runUntil(t, "3 collected", func() bool { return env.collected(t, "facebook-digest") == 3 })
		renamed := *cfg
		renamed.Routes = slices.Clone(cfg.Routes)
		renamed.Routes[0].Name = "fb-digest"
		env.reload(t, &renamed)
		env.runUntil(t, "the orphaned digest", func() bool { return len(emls(t, cfg.Outbox.Dir)) == 1 })
		e := emls(t, cfg.Outbox.Dir)[0]
		if !strings.Contains(e, "To: <me@example.com>") || !strings.Contains(e, "Facebook: 3 events (facebook-digest digest)") {
			t.Errorf("orphaned digest:\n%.600s", e)
		}
	})
	t.Run("refused past retry.lifetime", func(t *testing.T) {
		cfg := digestConfig(t)
		cfg.Routes[0].Digest.MaxEvents = 2
		cfg.Retry.Lifetime = time.Millisecond
		env := newTestEnv(t, cfg, withSender(&fakeSender{send: func(context.Context, *relay.Message) error {
			return reply(550, "5.1.1 no such user")
		}}))
		postNotifications(t, env, 0, 2)
		env.runUntil(t, "the digest's events dead", func() bool { return env.stats(t).Dead == 2 })
		dead := env.deadLetters(t)
		if len(dead) != 2 || !strings.Contains(dead[0].DeadReason, "digest of route facebook-digest refused") {
			t.Errorf("dead letters %+v", dead)
		}
		if n := env.collected(t, "facebook-digest"); n != 0 {
			t.Errorf("%d still collected", n)
		}
	})
}

// TestPendingDigests: each route with collected events, with when its
// digest is due: digest.every after the oldest event, at once at
// max_events or when the config no longer has the route.
func TestPendingDigests(t *testing.T) {
	cfg := digestConfig(t)
	cfg.Routes = append(cfg.Routes, config.Route{Name: "small", To: []string{"a@example.com"}, Digest: &config.Digest{Every: time.Hour, MaxEvents: 2}})
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now := t0
	q := memqueue.Open(memqueue.NewStore(), memqueue.WithClock(func() time.Time { return now }))
	collect := func(route string, ids ...string) {
		t.Helper()
		for _, id := range ids {
			if err := q.Collect(t.Context(), &config.Route{Name: route}, &relay.Event{ID: id, Type: "notification"}); err != nil {
				t.Fatal(err)
			}
			now = now.Add(time.Minute)
		}
	}
	collect("facebook-digest", "1", "2")
	collect("small", "3", "4")
	collect("renamed", "5")
	got, err := relay.PendingDigests(t.Context(), q, cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := []relay.PendingDigest{
		{Route: "facebook-digest", Events: 2, Oldest: t0, Due: t0.Add(time.Hour)},
		{Route: "renamed", Events: 1, Oldest: t0.Add(4 * time.Minute), Due: t0.Add(4 * time.Minute), Gone: true},
		{Route: "small", Events: 2, Oldest: t0.Add(2 * time.Minute), Due: t0.Add(2 * time.Minute)},
	}
	if !slices.Equal(got, want) {
		t.Errorf("pending digests:\n%+v\nwant\n%+v", got, want)
	}
}

// countingDigests counts the digest reads that decode every event a
// digest holds, and the claims.
type countingDigests struct {
	*memqueue.Queue
	fullReads, claims atomic.Int32
}

func (c *countingDigests) Digest(ctx context.Context, route string, limit int) ([]relay.DigestEntry, int, error) {
	if limit != 1 {
		c.fullReads.Add(1)
	}
	return c.Queue.Digest(ctx, route, limit)
}

func (c *countingDigests) ClaimDigest(ctx context.Context, route string, ttl time.Duration) (bool, error) {
	c.claims.Add(1)
	return c.Queue.ClaimDigest(ctx, route, ttl)
}

// TestDigestNotDueReadsItsOldestEventOnly: while a digest waits for its
// window to end, the once-a-second look at it reads its oldest event and
// a count: it neither claims the digest nor decodes the events it holds
// (an MMS's pictures among them) until the digest is due.
func TestDigestNotDueReadsItsOldestEventOnly(t *testing.T) {
	cfg := digestConfig(t)
	clock := &testClock{now: time.Now()}
	var store *countingDigests
	env := newTestEnv(t, cfg, withClock(clock.Now), withDigests(func(q *memqueue.Queue) relay.DigestStore {
		store = &countingDigests{Queue: q}
		return store
	}))
	postNotifications(t, env, 0, 3)
	pending := func() float64 { return env.metric(t, "hookmail_digest_pending_events", "route", "facebook-digest") }
	stop := env.run(t)
	waitFor(t, "3 pending", func() bool { return pending() == 3 })
	time.Sleep(1500 * time.Millisecond) // another look at it or two, a second apart
	stop()
	if full, claims := store.fullReads.Load(), store.claims.Load(); full != 0 || claims != 0 {
		t.Errorf("before the digest was due: %d reads of all its events, %d claims; want none", full, claims)
	}
	clock.Add(time.Hour)
	env.runUntil(t, "the digest after an hour", func() bool { return len(emls(t, cfg.Outbox.Dir)) == 1 })
	if full, claims := store.fullReads.Load(), store.claims.Load(); full != 1 || claims != 1 {
		t.Errorf("sending the digest: %d reads of all its events, %d claims; want one each", full, claims)
	}
}

// keepingDigests buries nothing, as BuryDigest does with events another
// route still owes.
type keepingDigests struct{ *memqueue.Queue }

func (keepingDigests) BuryDigest(context.Context, string, []string, string) (int, error) {
	return 0, nil
}

// TestRefusedDigestKeptForAnotherRouteWaitsForTheBackoff: a digest refused
// past retry.lifetime whose events stay collected (another route owes
// them) is tried again at the retry backoff, not at the next look a second
// later, which sent the same refused email to the server every second for
// as long as the other route kept the events.
func TestRefusedDigestKeptForAnotherRouteWaitsForTheBackoff(t *testing.T) {
	cfg := digestConfig(t)
	cfg.Retry.Lifetime, cfg.Retry.Initial, cfg.Retry.Max = time.Millisecond, time.Minute, time.Minute
	clock := &testClock{now: time.Now()}
	var sends atomic.Int32
	env := newTestEnv(t, cfg, withClock(clock.Now), withSender(&fakeSender{send: func(context.Context, *relay.Message) error {
		sends.Add(1)
		return reply(550, "5.1.1 no such user")
	}}), withDigests(func(q *memqueue.Queue) relay.DigestStore { return keepingDigests{q} }))
	postNotifications(t, env, 0, 1)
	env.runUntil(t, "1 collected", func() bool { return env.collected(t, "facebook-digest") == 1 })
	clock.Add(time.Hour)
	stop := env.run(t)
	waitFor(t, "the digest's first send", func() bool { return sends.Load() >= 1 })
	time.Sleep(2500 * time.Millisecond) // two more looks at it, a second apart
	stop()
	if n := sends.Load(); n != 1 {
		t.Errorf("the refused digest was sent %d times in 2.5 s, want once, then again after the backoff", n)
	}
	logs := env.logs.String()
	if strings.Count(logs, "the events another route still owes stay collected") != 1 || strings.Contains(logs, "its events are in the dead letters") {
		t.Errorf("the log should say once that the events stay collected, and not that they are in the dead letters:\n%s", logs)
	}
}
