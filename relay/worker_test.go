package relay_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/textproto"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/memqueue"
	"github.com/hookmail/hookmail/relay/relaytest"
)

func TestDeliveryOutcomes(t *testing.T) {
	tests := []struct {
		name      string
		routes    []config.Route
		send      func(calls int32) error
		wantDepth int
		wantDead  int
		wantCalls int32
		wantDeath string
		// wantConfig counts failures with reason="config"
		wantConfig float64
		// wantHour is the admin page's last hour: sent, temporary,
		// permanent, config, dead; wantCause its latest cause.
		wantHour  [5]int
		wantCause string
	}{
		{
			name:      "temporary error is retried, then delivered",
			send:      func(calls int32) error { return map[bool]error{true: errors.New("451 try again")}[calls == 1] },
			wantCalls: 2,
			wantHour:  [5]int{1, 1, 0, 0, 0},
			wantCause: "temporary: 451 try again",
		},
		{
			name:      "permanent error goes to the dead letters at once",
			send:      func(int32) error { return relay.PermanentErr(errors.New("550 no such user")) },
			wantDead:  1,
			wantCalls: 1,
			wantDeath: "permanent error: 550 no such user",
			wantHour:  [5]int{0, 0, 1, 0, 1},
			wantCause: "permanent: 550 no such user",
		},
		{
			name: "authentication failure is retried and counted as config",
			send: func(calls int32) error {
				if calls == 1 {
					// relay/smtp's class for a 535 (see its TestClassify).
					return &relay.ClassedError{Err: &textproto.Error{Code: 535, Msg: "5.7.8 Username and Password not accepted"}, Class: relay.Config,
						Fix: "the server refused the login or wants one: check smtp.username and smtp.password"}
				}
				return nil
			},
			wantCalls:  2,
			wantConfig: 1,
			wantHour:   [5]int{1, 0, 0, 1, 0},
			wantCause:  `config: 535 "5.7.8 Username and Password not accepted"`,
		},
		{
			name:      "no route takes the event",
			routes:    []config.Route{{Name: "only-ussd", Match: map[string]string{"type": "ussd"}, To: []string{"a@example.com"}}},
			send:      func(int32) error { return nil },
			wantDead:  1,
			wantCalls: 0,
			wantDeath: relay.ReasonNoRoute,
			wantHour:  [5]int{0, 0, 0, 0, 1},
			wantCause: "dead: no route",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Retry.Initial = 20 * time.Millisecond
			cfg.Retry.Max = 40 * time.Millisecond
			if tt.routes != nil {
				cfg.Routes = tt.routes
			}
			var calls atomic.Int32
			env := newTestEnv(t, cfg, withSender(&fakeSender{send: func(context.Context, *relay.Message) error {
				return tt.send(calls.Add(1))
			}}))
			env.post(t, formType, string(readTestdata(t, "sms.form")))
			env.runUntil(t, "the event to settle", func() bool {
				st := env.stats(t)
				return st.Depth == tt.wantDepth && st.Dead == tt.wantDead
			})
			if got := env.metric(t, "hookmail_emails_failed_total", "type", "sms", "reason", "config"); got != tt.wantConfig {
				t.Errorf("config failures counted = %v, want %v", got, tt.wantConfig)
			}
			h := env.workers.Outcomes()
			if got := [5]int{h.Sent, h.Temporary, h.Permanent, h.Config, h.Dead}; got != tt.wantHour {
				t.Errorf("last hour sent, temporary, permanent, config, dead = %v, want %v", got, tt.wantHour)
			}
			if len(h.Causes) != 1 || h.Causes[0].Class+": "+h.Causes[0].Error != tt.wantCause || h.Causes[0].Count != 1 {
				t.Errorf("last hour's causes = %+v, want %q once", h.Causes, tt.wantCause)
			}
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("send called %d times, want %d", got, tt.wantCalls)
			}
			if tt.wantDeath != "" && !strings.Contains(env.logs.String(), "dead letters") {
				t.Errorf("no log line about the dead letter:\n%s", env.logs)
			}
			if tt.wantDeath != "" {
				dead := env.deadLetters(t)
				if len(dead) != 1 || dead[0].DeadReason != tt.wantDeath {
					t.Errorf("dead letters = %+v, want one with reason %q", dead, tt.wantDeath)
				}
			}
		})
	}
}

func TestRetryLifetimeBuriesWithLastError(t *testing.T) {
	cfg := testConfig(t)
	cfg.Retry.Initial = 10 * time.Millisecond
	cfg.Retry.Max = 20 * time.Millisecond
	cfg.Retry.Lifetime = 150 * time.Millisecond
	env := newTestEnv(t, cfg, withSender(&fakeSender{send: func(context.Context, *relay.Message) error {
		return errors.New("dial tcp: connection refused")
	}}))
	env.post(t, formType, string(readTestdata(t, "sms.form")))
	env.runUntil(t, "the event to die", func() bool { return env.stats(t).Dead == 1 })
	dead := env.deadLetters(t)
	if len(dead) != 1 || !strings.Contains(dead[0].DeadReason, "retry.lifetime") || !strings.Contains(dead[0].DeadReason, "connection refused") || dead[0].Attempts < 2 {
		t.Fatalf("dead letter = %+v; want the lifetime reason, the last error and several attempts", dead)
	}
	// The error was the same every time: logged as a warning once, then at debug.
	if n := strings.Count(env.logs.String(), "level=WARN msg=\"delivery failed; will retry\""); n != 1 {
		t.Errorf("warned %d times about the same error, want 1", n)
	}
}

// TestShutdownFinishesOnlyTheEmailInHand stops the workers with a backlog
// queued: each finishes the attempt it holds, and the rest stay queued.
func TestShutdownFinishesOnlyTheEmailInHand(t *testing.T) {
	cfg := testConfig(t)
	started := make(chan struct{}, 50)
	release := make(chan struct{})
	var sent atomic.Int32
	env := newTestEnv(t, cfg, withSender(&fakeSender{send: func(ctx context.Context, _ *relay.Message) error {
		started <- struct{}{}
		<-release
		sent.Add(1)
		return ctx.Err() // the attempt's context must outlive the shutdown
	}}))
	for range 50 {
		env.post(t, formType, string(readTestdata(t, "sms.form")))
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = env.workers.Run(ctx) }()
	for range cfg.SMTP.Workers {
		<-started
	}
	cancel() // SIGTERM while every worker holds an email
	close(release)
	<-done
	if got := int(sent.Load()); got != cfg.SMTP.Workers {
		t.Errorf("%d emails sent after shutdown began, want %d (one per worker)", got, cfg.SMTP.Workers)
	}
	st, err := env.queue.Stats(t.Context())
	if err != nil || st.Depth != 50-cfg.SMTP.Workers || st.Dead != 0 {
		t.Errorf("after shutdown: %+v, %v; want %d still queued, none dead", st, err, 50-cfg.SMTP.Workers)
	}
}

// TestLogLines: one line for the accepted event and one for its delivery,
// with the event id, type, route and the server's reply; no message text
// at info level.
func TestLogLines(t *testing.T) {
	var calls atomic.Int32
	env := newTestEnv(t, testConfig(t), withSender(&fakeSender{send: func(_ context.Context, m *relay.Message) error {
		m.Receipt = "250 2.0.0 Ok: queued as 4F2A"
		calls.Add(1)
		return nil
	}}))
	env.post(t, formType, string(readTestdata(t, "sms.form")))
	// The log is complete once the workers are stopped.
	env.runUntil(t, "the email", func() bool { return calls.Load() == 1 })
	var queued, sent string
	for _, l := range strings.Split(env.logs.String(), "\n") {
		if strings.Contains(l, "level=INFO") && strings.Contains(l, "Hello World") {
			t.Errorf("message text at info level: %s", l)
		}
		switch {
		case strings.Contains(l, `msg="event queued"`):
			queued = l
		case strings.Contains(l, `msg="email sent"`):
			sent = l
		}
	}
	for _, want := range []string{"id=", "type=sms"} {
		if !strings.Contains(queued, want) {
			t.Errorf("queued line lacks %s: %s", want, queued)
		}
	}
	for _, want := range []string{"id=", "type=sms", "route=sms", `reply="250 2.0.0 Ok: queued as 4F2A"`, "message_id="} {
		if !strings.Contains(sent, want) {
			t.Errorf("sent line lacks %s: %s", want, sent)
		}
	}
}

// TestFailureLoggedOncePerCause: a mail server down fails every event the
// same way; that is logged once (the rest at debug), again after a
// success, and again by a restarted hookmail, which remembers nothing.
func TestFailureLoggedOncePerCause(t *testing.T) {
	cfg := testConfig(t)
	cfg.Retry.Initial, cfg.Retry.Max = 5*time.Millisecond, 10*time.Millisecond
	down := errors.New("smtp connect 127.0.0.1:25: dial tcp 127.0.0.1:25: connect: connection refused")
	var calls atomic.Int32
	var succeedOnce atomic.Bool
	env := newTestEnv(t, cfg, withSender(&fakeSender{send: func(context.Context, *relay.Message) error {
		calls.Add(1)
		if succeedOnce.CompareAndSwap(true, false) {
			return nil
		}
		return down
	}}))
	for range 5 {
		env.post(t, formType, string(readTestdata(t, "ussd.form")))
	}
	const warned = `level=WARN msg="delivery failed; will retry"`
	env.runUntil(t, "every event to fail a few times", func() bool { return calls.Load() >= 20 })
	if n := strings.Count(env.logs.String(), warned); n != 1 {
		t.Errorf("warned %d times about one cause over %d failures of 5 events, want once:\n%s", n, calls.Load(), env.logs)
	}
	if !strings.Contains(env.logs.String(), `level=DEBUG msg="delivery failed again; will retry"`) {
		t.Error("the repeats were not logged at debug")
	}

	// A restart: new workers on the same queue log the cause again.
	restarted := env.restart(t)
	stop := restarted.run(t)
	waitFor(t, "the restarted workers to warn", func() bool { return strings.Contains(restarted.logs.String(), warned) })
	// A success clears the cause: the next failure is logged again.
	succeedOnce.Store(true)
	waitFor(t, "the warning after a success", func() bool { return strings.Count(restarted.logs.String(), warned) == 2 })
	stop()
	if n := strings.Count(restarted.logs.String(), warned); n != 2 {
		t.Errorf("after the restart warned %d times, want twice (once at start, once after the success):\n%s", n, restarted.logs)
	}
}

// TestConfigFailureLogsTheHint: a failure no retry fixes is an ERROR with
// send-test's hint, once; it counts as reason="config" and the event stays
// queued, not dead.
func TestConfigFailureLogsTheHint(t *testing.T) {
	cfg := testConfig(t)
	// Attempts go on past retry.lifetime: a config error waits for its fix,
	// never for the dead letters.
	cfg.Retry.Initial, cfg.Retry.Max, cfg.Retry.Lifetime = 5*time.Millisecond, 10*time.Millisecond, 20*time.Millisecond
	// relay/smtp's class and hint for an untrusted certificate (see its
	// TestClassify and TestHint).
	untrusted := &relay.ClassedError{
		Err:   fmt.Errorf("smtp connect mail.example.com:587: %w", &tls.CertificateVerificationError{Err: errors.New("x509: certificate signed by unknown authority")}),
		Class: relay.Config,
		Fix:   "the server's certificate is not trusted: set smtp.ca_file to the CA that signed it, or smtp.host to the name on the certificate",
	}
	var calls atomic.Int32
	env := newTestEnv(t, cfg, withSender(&fakeSender{send: func(context.Context, *relay.Message) error {
		calls.Add(1)
		return untrusted
	}}))
	env.post(t, formType, string(readTestdata(t, "ussd.form")))
	env.runUntil(t, "attempts past retry.lifetime", func() bool { return calls.Load() >= 8 })
	var errorLines []string
	for _, l := range strings.Split(env.logs.String(), "\n") {
		if strings.Contains(l, "level=ERROR") {
			errorLines = append(errorLines, l)
		}
	}
	if len(errorLines) != 1 || !strings.Contains(errorLines[0], "config error") || !strings.Contains(errorLines[0], `fix="`+relay.Hint(untrusted)+`"`) {
		t.Errorf("ERROR lines %q, want one naming the config error with fix=%q", errorLines, relay.Hint(untrusted))
	}
	if got := env.metric(t, "hookmail_emails_failed_total", "type", "ussd", "reason", "config"); got < 5 {
		t.Errorf("config failures counted = %v, want one per attempt (%d)", got, calls.Load())
	}
	st, err := env.queue.Stats(t.Context())
	if err != nil || st.Depth != 1 || st.Dead != 0 {
		t.Errorf("queue %+v, %v; want the event queued, none dead", st, err)
	}
}

// TestSlowSendKeepsItsLease: a send that takes several lease timeouts
// keeps its lease extended, so no other worker leases the event and sends
// it again meanwhile.
func TestSlowSendKeepsItsLease(t *testing.T) {
	cfg := testConfig(t)
	cfg.SMTP.Workers = 2
	q := memqueue.Open(memqueue.NewStore(), memqueue.WithLeaseTimeout(time.Second))
	t.Cleanup(func() { q.Close() })
	rules, err := relay.NewRules(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var sends atomic.Int32
	sender := &fakeSender{send: func(ctx context.Context, _ *relay.Message) error {
		sends.Add(1)
		select { // three and a half lease timeouts
		case <-time.After(3500 * time.Millisecond):
		case <-ctx.Done():
		}
		return nil
	}}
	w := relay.NewWorkers(rules, q, relay.QueueLocal, q, nil, sender, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	ev := &relay.Event{ID: "slow", Source: "gateway", Type: relay.TypeSMS, Data: map[string]string{"phone": "+1", "message": "hi"}, Received: time.Now()}
	if err := q.Enqueue(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := q.Stats(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if st.Depth == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	if n := sends.Load(); n != 1 {
		t.Errorf("the event was sent %d times, want once: its lease lapsed during the send", n)
	}
}

// ctxQueue honours the context of each settle, as Postgres does, where the
// in-memory queue ignores it.
type ctxQueue struct{ relay.Queue }

func (q ctxQueue) Ack(ctx context.Context, l *relay.Lease) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return q.Queue.Ack(ctx, l)
}

func (q ctxQueue) Retry(ctx context.Context, l *relay.Lease, next time.Time, p relay.Progress) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return q.Queue.Retry(ctx, l, next, p)
}

func (q ctxQueue) Bury(ctx context.Context, l *relay.Lease, reason string, p relay.Progress) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return q.Queue.Bury(ctx, l, reason, p)
}

// oneLeased stores the sample SMS "ev" in a fresh in-memory queue (seen
// through wrap, if not nil) and leases it, for workers on cfg sending with
// sender and logging to logs (nil: discarded).
func oneLeased(t *testing.T, cfg *config.Config, wrap func(relay.Queue) relay.Queue, sender relay.Sender, logs io.Writer) (*relay.Workers, *memqueue.Queue, *relay.Lease) {
	t.Helper()
	mq := memqueue.Open(memqueue.NewStore())
	t.Cleanup(func() { mq.Close() })
	var q relay.Queue = mq
	if wrap != nil {
		q = wrap(mq)
	}
	rules, err := relay.NewRules(cfg)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	if logs != nil {
		log = slog.New(slog.NewTextHandler(logs, nil))
	}
	w := relay.NewWorkers(rules, q, relay.QueueLocal, mq, nil, sender, nil, log, prometheus.NewRegistry())
	ev := &relay.Event{ID: "ev", Source: "gateway", Type: relay.TypeSMS, Data: map[string]string{"phone": "+1", "message": "hi"}, Received: time.Now()}
	if err := q.Enqueue(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	l, err := q.Lease(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return w, mq, l
}

// TestAttemptThatRunsOutStoresItsResult: an attempt whose context ends
// while it sends (sendTimeout, after a slow server) still stores what it
// did, on a queue that honours contexts: the email sent is acked, a
// failure retried with its attempt counted, a refusal buried. (Before, the
// result was stored on the attempt's context and failed with it, so the
// event came back and its routes were emailed again.)
func TestAttemptThatRunsOutStoresItsResult(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply error
		want  func(st relay.Stats, it *relay.Item) bool
	}{
		{"sent", nil, func(st relay.Stats, _ *relay.Item) bool { return st.Depth == 0 && st.Dead == 0 }},
		{"deferred", errors.New("smtp DATA: 451 4.3.0 try again later"), func(st relay.Stats, it *relay.Item) bool {
			return st.Depth == 1 && it != nil && it.Attempts == 1 && it.State == relay.StateWaiting
		}},
		{"refused", relay.PermanentErr(errors.New("smtp RCPT TO <ops@example.com>: 550 5.1.1 no such user")), func(st relay.Stats, _ *relay.Item) bool {
			return st.Depth == 0 && st.Dead == 1
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			attempt, runOut := context.WithCancel(t.Context())
			defer runOut()
			sender := &fakeSender{send: func(context.Context, *relay.Message) error {
				runOut() // the attempt's time is up as the server answers
				return tc.reply
			}}
			w, mq, l := oneLeased(t, testConfig(t), func(q relay.Queue) relay.Queue { return ctxQueue{q} }, sender, nil)
			w.Deliver(attempt, l)
			st, err := mq.Stats(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			it, _ := mq.Get(t.Context(), "ev")
			if st.Delivering != 0 || !tc.want(st, it) {
				t.Errorf("after the attempt: %+v, item %+v; want its result stored", st, it)
			}
		})
	}
}

// TestStopPutsBackTheRoutesNotBegun: a worker told to stop finishes the
// email in hand and puts the event's other routes back in the queue, not
// counted as an attempt, instead of sending them all while the shutdown
// waits. (Before, it went on through every route.)
func TestStopPutsBackTheRoutesNotBegun(t *testing.T) {
	cfg := testConfig(t)
	cfg.Routes = []config.Route{
		{Name: "first", To: []string{"a@example.com"}, Continue: true},
		{Name: "second", To: []string{"b@example.com"}, Continue: true},
		{Name: "third", To: []string{"c@example.com"}},
	}
	stop := make(chan struct{})
	var sent []string
	sender := &fakeSender{send: func(_ context.Context, m *relay.Message) error {
		if sent = append(sent, m.Route); len(sent) == 1 {
			close(stop) // SIGTERM while the first email goes out
		}
		return nil
	}}
	w, q, l := oneLeased(t, cfg, nil, sender, nil)
	w.DeliverUntil(t.Context(), l, stop, nil)
	it, err := q.Get(t.Context(), "ev")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sent, []string{"first"}) || !slices.Equal(it.Delivered, []string{"first"}) ||
		it.State != relay.StateWaiting || it.Attempts != 0 || it.NextAttempt.After(time.Now()) {
		t.Errorf("sent %v; the event: delivered %v, %s, %d attempts, due %s; want the first route sent and the event waiting, due, not counted",
			sent, it.Delivered, it.State, it.Attempts, it.NextAttempt)
	}
}

// TestLostLeaseSendsNoMore: once the queue says a worker's lease is gone
// (it lapsed, or an operator requeued or dropped the event), the worker
// sends none of the event's routes not begun: whoever holds it now does.
// (Before, it went on through every route.)
func TestLostLeaseSendsNoMore(t *testing.T) {
	cfg := testConfig(t)
	cfg.Routes = []config.Route{
		{Name: "first", To: []string{"a@example.com"}, Continue: true},
		{Name: "second", To: []string{"b@example.com"}},
	}
	lost := make(chan struct{})
	var sent []string
	sender := &fakeSender{send: func(_ context.Context, m *relay.Message) error {
		if sent = append(sent, m.Route); len(sent) == 1 {
			close(lost) // the lease lapses while the first email goes out
		}
		return nil
	}}
	logs := &relaytest.LogBuffer{}
	w, _, l := oneLeased(t, cfg, nil, sender, logs)
	w.DeliverUntil(t.Context(), l, nil, lost)
	if !slices.Equal(sent, []string{"first"}) || !strings.Contains(logs.String(), "the lease on this event was lost") {
		t.Errorf("sent %v, want the first route's email only, and the loss logged:\n%s", sent, logs)
	}
}

// TestHungAttemptLetsItsLeaseLapse: a worker whose attempt never ends
// extends its lease for the attempt's time and its result's store, then
// lets it lapse, so the event is offered again. (Before, a lease extended
// on a context the attempt's timeout did not end was kept for ever.)
func TestHungAttemptLetsItsLeaseLapse(t *testing.T) {
	cfg := testConfig(t)
	cfg.SMTP.Workers = 1
	q := memqueue.Open(memqueue.NewStore(), memqueue.WithLeaseTimeout(300*time.Millisecond))
	t.Cleanup(func() { q.Close() })
	rules, err := relay.NewRules(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hung, sending := make(chan struct{}), make(chan struct{})
	sender := &fakeSender{send: func(context.Context, *relay.Message) error {
		close(sending) // once: the worker hangs here
		<-hung
		return nil
	}}
	w := relay.NewWorkers(rules, q, relay.QueueLocal, q, nil, sender, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	w.SetHangAfter(time.Second)
	ev := &relay.Event{ID: "hung", Source: "gateway", Type: relay.TypeSMS, Data: map[string]string{"phone": "+1", "message": "hi"}, Received: time.Now()}
	if err := q.Enqueue(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	defer func() { cancel(); close(hung); <-done }()
	<-sending
	// Extended while the attempt may still end (TestSlowSendKeepsItsLease),
	// then let go: another worker can take it.
	lctx, lcancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer lcancel()
	l, err := q.Lease(lctx)
	if err != nil {
		t.Fatalf("the hung attempt's event was not offered again: %v", err)
	}
	if l.Item.Event.ID != ev.ID {
		t.Errorf("leased %s", l.Item.Event.ID)
	}
}
