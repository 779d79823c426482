package relay

import (
	"context"
	"errors"
	"fmt"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hookmail/hookmail/config"
)

func digestConfig(t *testing.T, spoolDir, outboxDir string) *config.Config {
	t.Helper()
	cfg := testConfig(t)
	cfg.Spool.Dir, cfg.Outbox.Dir = spoolDir, outboxDir
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
	h := env.relay.Handler()
	for i := from; i < from+n; i++ {
		body := fmt.Sprintf("secret=%s&type=notifications&data[id]=%d&data[package]=com.facebook.katana&data[title]=Facebook&data[content]=comment+number+%d", testSecret, i, i)
		if rec := post(t, h, formType, body); rec.Code != 200 {
			t.Fatalf("post %d: %d %s", i, rec.Code, rec.Body)
		}
	}
}

// runUntil runs the workers until cond holds (or 15 s pass), then stops them.
func runUntil(t *testing.T, env *testEnv, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = env.relay.Run(ctx) }()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("timed out waiting for %s\n%s", what, env.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}

func emls(t *testing.T, dir string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
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

// TestDigestOf50EventsAcrossARestart: 30 notifications are collected, the
// relay stops and a new one opens the same spool; 20 more make 50, the
// route's max_events, and one email lists all 50 in order.
func TestDigestOf50EventsAcrossARestart(t *testing.T) {
	spoolDir, outboxDir := t.TempDir(), t.TempDir()
	env := newTestEnv(t, digestConfig(t, spoolDir, outboxDir))
	postNotifications(t, env, 0, 30)
	runUntil(t, env, "30 collected", func() bool {
		st, _ := env.spool.Stats(t.Context())
		return st.Depth == 0
	})
	if got := emls(t, outboxDir); len(got) != 0 {
		t.Fatalf("%d emails before the digest is due, want 0", len(got))
	}
	env.spool.Close()

	env2 := newTestEnv(t, digestConfig(t, spoolDir, outboxDir))
	if _, n, _ := env2.spool.Digest(t.Context(), "facebook-digest", 0); n != 30 {
		t.Fatalf("after the restart the digest holds %d events, want 30", n)
	}
	postNotifications(t, env2, 30, 20)
	// An SMS on the same relay is emailed at once, as usual.
	if rec := post(t, env2.relay.Handler(), formType, string(readTestdata(t, "sms.form"))); rec.Code != 200 {
		t.Fatal(rec.Code)
	}
	runUntil(t, env2, "the digest email", func() bool { return len(emls(t, outboxDir)) == 2 })

	var digest string
	for _, e := range emls(t, outboxDir) {
		if strings.Contains(e, "facebook-digest digest") {
			digest = e
		}
	}
	if digest == "" {
		t.Fatalf("no digest among the emails:\n%s", strings.Join(emls(t, outboxDir), "\n----\n"))
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
	if _, n, _ := env2.spool.Digest(t.Context(), "facebook-digest", 0); n != 0 {
		t.Errorf("%d events still collected after the digest went out", n)
	}
	if n := testutil.CollectAndCount(env2.relay.digests.size); n != 1 {
		t.Errorf("digest size histogram has %d series, want 1", n)
	}
}

// TestDigestSentWhenTheWindowEnds: a digest below max_events goes out once
// every has passed since its oldest event.
func TestDigestSentWhenTheWindowEnds(t *testing.T) {
	outboxDir := t.TempDir()
	cfg := digestConfig(t, t.TempDir(), outboxDir)
	env := newTestEnv(t, cfg)
	clock := &testClock{now: time.Now()}
	env.relay.now = clock.Now
	env.spool.now = clock.Now
	postNotifications(t, env, 0, 3)
	runUntil(t, env, "3 collected", func() bool {
		_, n, _ := env.spool.Digest(t.Context(), "facebook-digest", 0)
		return n == 3
	})
	if len(emls(t, outboxDir)) != 0 {
		t.Fatal("digest sent before its window ended")
	}
	clock.Add(time.Hour)
	runUntil(t, env, "the digest after an hour", func() bool { return len(emls(t, outboxDir)) == 1 })
	if e := emls(t, outboxDir)[0]; !strings.Contains(e, "Subject: Facebook: 3 events (facebook-digest digest)") {
		t.Errorf("digest:\n%s", e)
	}
}

// forgetfulSpool fails Forget a given number of times, as a full disk would.
type forgetfulSpool struct {
	*Spool
	fails atomic.Int32
}

func (f *forgetfulSpool) Forget(ctx context.Context, route string, ids []string) error {
	if f.fails.Add(-1) >= 0 {
		return errors.New("write spool.db: no space left on device")
	}
	return f.Spool.Forget(ctx, route, ids)
}

// TestDigestEdgeCases: a digest whose events cannot be cleared after it was
// sent is not sent again; a route a reload renames still sends what it had
// collected; a digest refused for good past retry.lifetime puts its events
// in the dead letters.
func TestDigestEdgeCases(t *testing.T) {
	t.Run("forget fails after sending", func(t *testing.T) {
		outboxDir := t.TempDir()
		cfg := digestConfig(t, t.TempDir(), outboxDir)
		cfg.Retry.Initial, cfg.Retry.Max = 50*time.Millisecond, 50*time.Millisecond
		env := newTestEnv(t, cfg)
		fs := &forgetfulSpool{Spool: env.spool}
		fs.fails.Store(3)
		env.relay.queue = fs
		postNotifications(t, env, 0, 50)
		runUntil(t, env, "the digest sent and cleared", func() bool {
			_, n, _ := env.spool.Digest(t.Context(), "facebook-digest", 0)
			return n == 0 && len(emls(t, outboxDir)) >= 1
		})
		if n := len(emls(t, outboxDir)); n != 1 {
			t.Errorf("%d digest emails, want 1", n)
		}
	})
	t.Run("route renamed by a reload", func(t *testing.T) {
		outboxDir := t.TempDir()
		cfg := digestConfig(t, t.TempDir(), outboxDir)
		env := newTestEnv(t, cfg)
		postNotifications(t, env, 0, 3)
		runUntil(t, env, "3 collected", func() bool { _, n, _ := env.spool.Digest(t.Context(), "facebook-digest", 0); return n == 3 })
		renamed := *cfg
		renamed.Routes = slices.Clone(cfg.Routes)
		renamed.Routes[0].Name = "fb-digest"
		if _, err := env.relay.Reload(&renamed); err != nil {
			t.Fatal(err)
		}
		runUntil(t, env, "the orphaned digest", func() bool { return len(emls(t, outboxDir)) == 1 })
		e := emls(t, outboxDir)[0]
		if !strings.Contains(e, "To: <me@example.com>") || !strings.Contains(e, "Facebook: 3 events (facebook-digest digest)") {
			t.Errorf("orphaned digest:\n%.600s", e)
		}
	})
	t.Run("refused past retry.lifetime", func(t *testing.T) {
		cfg := digestConfig(t, t.TempDir(), t.TempDir())
		cfg.Routes[0].Digest.MaxEvents = 2
		cfg.Retry.Lifetime = time.Millisecond
		env := newTestEnv(t, cfg)
		env.relay.sender = &fakeSender{send: func(context.Context, *Message) error {
			return &textproto.Error{Code: 550, Msg: "5.1.1 no such user"}
		}}
		postNotifications(t, env, 0, 2)
		runUntil(t, env, "the digest's events dead", func() bool { st, _ := env.spool.Stats(t.Context()); return st.Dead == 2 })
		dead, _ := env.spool.List(t.Context(), StateDead, 0)
		if len(dead) != 2 || !strings.Contains(dead[0].DeadReason, "digest of route facebook-digest refused") {
			t.Errorf("dead letters %+v", dead)
		}
		if _, n, _ := env.spool.Digest(t.Context(), "facebook-digest", 0); n != 0 {
			t.Errorf("%d still collected", n)
		}
	})
}

// TestDigestBytesCount: collected events count in the spool's bytes (so
// spool.max_bytes bounds them), and a fresh count at open agrees.
func TestDigestBytesCount(t *testing.T) {
	spoolDir := t.TempDir()
	env := newTestEnv(t, digestConfig(t, spoolDir, t.TempDir()))
	postNotifications(t, env, 0, 10)
	runUntil(t, env, "10 collected", func() bool { _, n, _ := env.spool.Digest(t.Context(), "facebook-digest", 0); return n == 10 })
	kept, _ := env.spool.Stats(t.Context())
	if kept.Depth != 0 || kept.Bytes == 0 {
		t.Fatalf("stats with 10 collected: %+v, want bytes counted", kept)
	}
	env.spool.Close()
	s, err := OpenSpool(spoolDir, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fresh, _ := s.Stats(t.Context())
	if fresh.Bytes != kept.Bytes {
		t.Errorf("bytes kept %d, counted at open %d", kept.Bytes, fresh.Bytes)
	}
	entries, _, _ := s.Digest(t.Context(), "facebook-digest", 0)
	ids := []string{entries[0].Event.ID, entries[1].Event.ID}
	if err := s.Forget(t.Context(), "facebook-digest", ids[:1]); err != nil {
		t.Fatal(err)
	}
	if err := s.BuryDigest(t.Context(), "facebook-digest", ids[1:], "test"); err != nil {
		t.Fatal(err)
	}
	after, _ := s.Stats(t.Context())
	s.Close()
	s2, err := OpenSpool(spoolDir, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	again, _ := s2.Stats(t.Context())
	if after.Bytes != again.Bytes || again.Dead != 1 {
		t.Errorf("after forget and bury: kept %+v, counted %+v", after, again)
	}
}
