package relay_test

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/memqueue"
	"github.com/hookmail/hookmail/relay/relaytest"
	"github.com/hookmail/hookmail/relay/spool"
)

// stormStore opens a queue backend on storage that outlives it, with the
// given clock, as a restart opens the same spool file again.
type stormStore func(t *testing.T, now func() time.Time) (relay.Queue, relay.DigestStore)

func memStormStore() stormStore {
	store := memqueue.NewStore()
	return func(t *testing.T, now func() time.Time) (relay.Queue, relay.DigestStore) {
		q := memqueue.Open(store, memqueue.WithClock(now))
		return q, q
	}
}

func spoolStormStore(dir string) stormStore {
	return func(t *testing.T, now func() time.Time) (relay.Queue, relay.DigestStore) {
		s, err := spool.Open(dir, spool.WithClock(now))
		if err != nil {
			t.Fatal(err)
		}
		return s, s
	}
}

// stormInstance is one hookmail's queue and workers, running.
type stormInstance struct {
	queue  relay.Queue
	reg    *prometheus.Registry
	stop   func()
	logs   *relaytest.LogBuffer
	closed bool
}

// startStorm opens the store and runs workers on it with cfg's rules.
func startStorm(t *testing.T, cfg *config.Config, open stormStore, clock *testClock, sender relay.Sender) *stormInstance {
	t.Helper()
	q, ds := open(t, clock.Now)
	rules, err := relay.NewRules(cfg)
	if err != nil {
		t.Fatal(err)
	}
	in := &stormInstance{queue: q, reg: prometheus.NewRegistry(), logs: &relaytest.LogBuffer{}}
	log := slog.New(slog.NewTextHandler(in.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w := relay.NewWorkers(rules, q, relay.QueueLocal, ds, relay.NewLocalPace(nil), sender, nil, log, in.reg)
	w.SetClock(clock.Now)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	in.stop = func() {
		if in.closed {
			return
		}
		in.closed = true
		cancel()
		<-done
		if err := q.Close(); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() {
		in.stop()
		if t.Failed() {
			t.Logf("the log:\n%s", in.logs)
		}
	})
	return in
}

// drain waits until the instance's queue is empty.
func (in *stormInstance) drain(t *testing.T) {
	t.Helper()
	waitFor(t, "the queue to drain", func() bool {
		st, err := in.queue.Stats(t.Context())
		return err == nil && st.Depth == 0
	})
}

// sentBy is what rec has sent so far, in order.
func sentBy(rec *recorder) []*relay.Message {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.sent)
}

// smsEvent is the i-th SMS from phone with text.
func smsEvent(i int, phone, text string, at time.Time) *relay.Event {
	return &relay.Event{
		ID: fmt.Sprintf("01900000-0000-7000-8000-%012d", i), Source: "gateway", Type: relay.TypeSMS,
		Data: map[string]string{"phone": phone, "message": text}, Received: at,
	}
}

func stormConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg := testConfig(t)
	cfg.Routes = []config.Route{{Name: "everything-else", To: []string{"ops@example.com"}, Storm: &config.Storm{Threshold: 5, Window: time.Minute}}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestStormAcrossARestart is the scenario: 200 SMS from one phone
// in 10 s on a route with storm {threshold: 5, window: 1m}, hookmail
// restarted after 100 of them. 5 are emailed one by one and, when the
// window ends, one digest lists the other 195 in order, in the
// conversation's thread; 5 SMS from another phone meanwhile are each
// emailed. No event is lost or listed twice. The next SMS after the window
// is emailed again: the storm ended by itself.
func TestStormAcrossARestart(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(t *testing.T) stormStore
	}{
		{"memqueue", func(*testing.T) stormStore { return memStormStore() }},
		{"spool", func(t *testing.T) stormStore { return spoolStormStore(t.TempDir()) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testStormAcrossARestart(t, tc.open(t))
		})
	}
}

func testStormAcrossARestart(t *testing.T, open stormStore) {
	const phone, other = "+63 976 071 3666", "+1 555 010 9999"
	cfg := stormConfig(t)
	clock := &testClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	start := clock.Now()
	rec := &recorder{}
	in := startStorm(t, cfg, open, clock, rec)
	n := 0
	post := func(phone, text string) {
		t.Helper()
		if err := in.queue.Enqueue(t.Context(), smsEvent(n, phone, text, clock.Now())); err != nil {
			t.Fatal(err)
		}
		n++
	}
	for i := range 200 {
		if i == 100 {
			in.drain(t)
			// The first instance started the storm and folded 95.
			if started, folded := metricIn(t, in.reg, "hookmail_storms_started_total", "route", "everything-else"),
				metricIn(t, in.reg, "hookmail_storm_events_folded_total", "route", "everything-else"); started != 1 || folded != 95 {
				t.Errorf("before the restart: %v storms started, %v events folded; want 1 and 95", started, folded)
			}
			in.stop()
			in = startStorm(t, cfg, open, clock, rec)
		}
		clock.Add(50 * time.Millisecond)
		post(phone, fmt.Sprintf("storm message %03d", i))
		if i%40 == 20 {
			post(other, fmt.Sprintf("other message %d", i/40))
		}
	}
	in.drain(t)

	var fromPhone, fromOther []*relay.Message
	for _, m := range sentBy(rec) {
		if strings.Contains(m.Text, "storm message") {
			fromPhone = append(fromPhone, m)
		} else {
			fromOther = append(fromOther, m)
		}
	}
	if len(fromPhone) != 5 || len(fromOther) != 5 {
		t.Fatalf("during the window: %d emails from the storm's phone, %d from the other; want 5 and 5", len(fromPhone), len(fromOther))
	}

	// The window started with the first SMS a worker took, within the 10 s
	// of posting (on a loaded machine the workers may lag the posts).
	clock.Add(start.Add(10*time.Second + time.Minute + time.Second).Sub(clock.Now()))
	waitFor(t, "the storm's digest", func() bool { return len(sentBy(rec)) == 11 })
	digest := sentBy(rec)[10]
	if want := "and 195 more SMS from " + phone; digest.Subject != want {
		t.Errorf("digest subject %q, want %q", digest.Subject, want)
	}
	if digest.ThreadID == "" || digest.ThreadID != fromPhone[0].ThreadID || !slices.Equal(digest.To, []string{"ops@example.com"}) {
		t.Errorf("digest thread %q to %v, want the conversation's thread %q, to the route's recipients", digest.ThreadID, digest.To, fromPhone[0].ThreadID)
	}

	// Every SMS of the phone once: emailed on its own, or listed in the
	// digest, in order.
	listed := regexp.MustCompile(`storm message (\d{3})`).FindAllStringSubmatch(digest.Text, -1)
	seen := map[string]int{}
	last := ""
	for _, m := range listed {
		seen[m[1]]++
		if m[1] < last {
			t.Errorf("digest lists message %s after %s", m[1], last)
		}
		last = m[1]
	}
	for _, m := range fromPhone {
		seen[regexp.MustCompile(`storm message (\d{3})`).FindStringSubmatch(m.Text)[1]]++
	}
	for i := range 200 {
		if k := fmt.Sprintf("%03d", i); seen[k] != 1 {
			t.Errorf("storm message %s reached the recipients %d times, want once", k, seen[k])
		}
	}
	if started, folded := metricIn(t, in.reg, "hookmail_storms_started_total", "route", "everything-else"),
		metricIn(t, in.reg, "hookmail_storm_events_folded_total", "route", "everything-else"); started != 0 || folded != 100 {
		t.Errorf("after the restart: %v storms started, %v events folded; want 0 (the storm went on) and 100", started, folded)
	}
	waitFor(t, "no storm active", func() bool { return metricIn(t, in.reg, "hookmail_storms_active", "route", "everything-else") == 0 })
	if problems, err := testutil.GatherAndLint(in.reg); err != nil || len(problems) > 0 {
		t.Errorf("metrics lint: %v %v", problems, err)
	}

	post(phone, "after the storm")
	waitFor(t, "the SMS after the window", func() bool { return len(sentBy(rec)) == 12 })
	if m := sentBy(rec)[11]; !strings.Contains(m.Text, "after the storm") || m.ThreadID != fromPhone[0].ThreadID {
		t.Errorf("after the window: %q in thread %q, want the SMS emailed on its own in the conversation's thread", m.Subject, m.ThreadID)
	}
}

// TestRenderStormDigestGolden: a storm's digest says how many more of the
// conversation's messages it lists, from whom, and that the route emailed
// the first of its window one by one; it joins the conversation's thread.
func TestRenderStormDigestGolden(t *testing.T) {
	r, err := relay.NewRenderer("", manila(t))
	if err != nil {
		t.Fatal(err)
	}
	route := &config.Route{Name: "everything-else", To: []string{"ops@example.com"}, Storm: &config.Storm{Threshold: 5, Window: time.Minute}}
	at := time.Unix(1645684300, 0)
	var entries []relay.DigestEntry
	for i, phone := range []string{"+63 976 071 3666", "+639760713666", "+63 976-071-3666"} {
		ev := smsEvent(i, phone, fmt.Sprintf("Code %d <b>now</b>", 100+i), at.Add(time.Duration(i)*time.Second))
		entries = append(entries, relay.DigestEntry{Event: *ev, Collected: ev.Received})
	}
	msg, err := r.RenderStormDigest(entries, route, "hookmail <hookmail@relay.example>")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "storm-digest.subject", msg.Subject+"\n")
	golden(t, "storm-digest.txt", msg.Text)
	golden(t, "storm-digest.html", msg.HTML)
	if want := relay.ThreadID(&entries[0].Event, "hookmail <hookmail@relay.example>"); msg.ThreadID != want || want == "" {
		t.Errorf("thread %q, want the conversation's %q", msg.ThreadID, want)
	}
	unthreaded := *route
	unthreaded.Thread = new(bool)
	if msg, err := r.RenderStormDigest(entries, &unthreaded, "h@example.com"); err != nil || msg.ThreadID != "" {
		t.Errorf("a route with thread: false: thread %q (%v), want none", msg.ThreadID, err)
	}
}

// TestStormDigestSubjects: the subject names the events by their type, one
// or several, and "events" when the conversation mixes types.
func TestStormDigestSubjects(t *testing.T) {
	r, err := relay.NewRenderer("", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	route := &config.Route{Name: "r", To: []string{"ops@example.com"}, Storm: &config.Storm{Threshold: 5, Window: time.Minute}}
	entry := func(typ string, data map[string]string) relay.DigestEntry {
		return relay.DigestEntry{Event: relay.Event{ID: "e", Type: typ, Data: data, Received: time.Unix(0, 0)}}
	}
	notif := entry(relay.TypeNotification, map[string]string{"package": "com.facebook.katana", "title": "Facebook", "content": "hi"})
	wa := entry(relay.TypeWhatsApp, map[string]string{"phone": "+639760713666", "wid": "1", "message": "hi"})
	dr := entry(relay.TypeStatus, map[string]string{"phone": "+639760713666", "status": "delivered"})
	sms := entry(relay.TypeSMS, map[string]string{"phone": "+639760713666", "message": "hi"})
	for _, tc := range []struct {
		entries []relay.DigestEntry
		want    string
	}{
		{[]relay.DigestEntry{notif}, "and 1 more notification from Facebook"},
		{[]relay.DigestEntry{notif, notif}, "and 2 more notifications from Facebook"},
		{[]relay.DigestEntry{wa, wa}, "and 2 more WhatsApp messages from +639760713666"},
		{[]relay.DigestEntry{sms, dr}, "and 2 more events from +639760713666"},
	} {
		msg, err := r.RenderStormDigest(tc.entries, route, "h@example.com")
		if err != nil || msg.Subject != tc.want {
			t.Errorf("subject %q (%v), want %q", msg.Subject, err, tc.want)
		}
	}
}

// TestStormOfARouteGone: when a reload takes the storm off its route, the
// storm's digest goes out at once, to the recipients its events were
// folded for; events that name no conversation are never folded.
func TestStormOfARouteGone(t *testing.T) {
	cfg := stormConfig(t)
	cfg.Routes[0].Storm.Threshold = 1
	rec := &recorder{}
	env := newTestEnv(t, cfg, withSender(rec))
	at := time.Now()
	for i, phone := range []string{"+639760713666", "+639760713666", "+639760713666", "", ""} {
		if err := env.queue.Enqueue(t.Context(), smsEvent(i, phone, fmt.Sprintf("message %d", i), at)); err != nil {
			t.Fatal(err)
		}
	}
	env.runUntil(t, "the events delivered", func() bool { return env.stats(t).Depth == 0 })
	if got := len(sentBy(rec)); got != 3 {
		t.Fatalf("%d emails, want 3: the storm's first, and both SMS without a number", got)
	}

	gone := stormConfig(t)
	gone.Routes[0].Storm = nil
	gone.Routes[0].To = []string{"someone-else@example.com"}
	env.reload(t, gone)
	env.runUntil(t, "the storm's digest", func() bool { return len(sentBy(rec)) == 4 })
	digest := sentBy(rec)[3]
	if digest.Subject != "and 2 more SMS from +639760713666" || !slices.Equal(digest.To, []string{"ops@example.com"}) || strings.Contains(digest.Text, "emailed the first") {
		t.Errorf("digest %q to %v:\n%s\nwant the 2 folded SMS, to the recipients they were folded for", digest.Subject, digest.To, digest.Text)
	}
}
