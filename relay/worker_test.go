package relay

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hookmail/hookmail/config"
)

// fakeSender fails or succeeds on demand, for the retry paths the outbox
// cannot produce.
type fakeSender struct {
	send func(ctx context.Context, m *Message) error
}

var _ Sender = (*fakeSender)(nil)

func (f *fakeSender) Send(ctx context.Context, m *Message) error { return f.send(ctx, m) }

// runRelay runs r's workers until the returned stop is called.
func runRelay(t *testing.T, r *Relay) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	return func() { cancel(); <-done }
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func emlFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestRestartWritesEachEventOnce accepts events, stops before any is
// written out, starts again, and expects each event written exactly once.
func TestRestartWritesEachEventOnce(t *testing.T) {
	cfg := testConfig(t)
	env := newTestEnv(t, cfg)
	h := env.relay.Handler()
	var ids []string
	for _, file := range []string{"sms.form", "whatsapp.form", "ussd.form", "notifications.form", "telegram.form"} {
		rec := post(t, h, formType, string(readTestdata(t, file)))
		var resp struct{ ID string }
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &resp) != nil {
			t.Fatalf("%s: %d %s", file, rec.Code, rec.Body)
		}
		ids = append(ids, resp.ID)
	}
	// A worker had taken one event when the process stopped.
	if _, err := env.spool.Lease(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := env.spool.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(emlFiles(t, cfg.Outbox.Dir)); n != 0 {
		t.Fatalf("%d emails written before the restart, want 0", n)
	}

	env2 := newTestEnv(t, cfg)
	stop := runRelay(t, env2.relay)
	waitFor(t, "the queue to drain", func() bool {
		st, err := env2.spool.Stats(t.Context())
		return err == nil && st.Depth == 0
	})
	stop()
	files := emlFiles(t, cfg.Outbox.Dir)
	if len(files) != len(ids) {
		t.Fatalf("%d emails written, want %d: %v", len(files), len(ids), files)
	}
	for _, id := range ids {
		matches, _ := filepath.Glob(filepath.Join(cfg.Outbox.Dir, id+".*.eml"))
		if len(matches) != 1 {
			t.Errorf("event %s written %d times, want once", id, len(matches))
		}
	}
	// The sms route took the sms; the catch-all took the rest.
	smsFile, _ := filepath.Glob(filepath.Join(cfg.Outbox.Dir, ids[0]+".sms.eml"))
	if len(smsFile) != 1 {
		t.Fatal("the sms event did not go through the sms route")
	}
	f, err := os.Open(smsFile[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	msg, err := mail.ReadMessage(f)
	if err != nil {
		t.Fatal(err)
	}
	for header, want := range map[string]string{
		"To":         "<sms@example.com>",
		"Cc":         "<cc@example.com>",
		"Message-Id": "<hookmail." + ids[0] + ".sms@localhost>",
		"Date":       "Thu, 24 Feb 2022 06:30:31 +0000",
	} {
		if got := msg.Header.Get(header); got != want {
			t.Errorf("%s = %q, want %q", header, got, want)
		}
	}
	if ct := msg.Header.Get("Content-Type"); !strings.HasPrefix(ct, "multipart/alternative") {
		t.Errorf("Content-Type = %q, want multipart/alternative", ct)
	}
}

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
	}{
		{
			name:      "temporary error is retried, then delivered",
			send:      func(calls int32) error { return map[bool]error{true: errors.New("451 try again")}[calls == 1] },
			wantCalls: 2,
		},
		{
			name:      "permanent error goes to the dead letters at once",
			send:      func(int32) error { return PermanentErr(errors.New("550 no such user")) },
			wantDead:  1,
			wantCalls: 1,
			wantDeath: "permanent error: 550 no such user",
		},
		{
			name: "authentication failure is retried and counted as config",
			send: func(calls int32) error {
				if calls == 1 {
					return &textproto.Error{Code: 535, Msg: "5.7.8 Username and Password not accepted"}
				}
				return nil
			},
			wantCalls:  2,
			wantConfig: 1,
		},
		{
			name:      "no route takes the event",
			routes:    []config.Route{{Name: "only-ussd", Match: map[string]string{"type": "ussd"}, To: []string{"a@example.com"}}},
			send:      func(int32) error { return nil },
			wantDead:  1,
			wantCalls: 0,
			wantDeath: ReasonNoRoute,
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
			env := newTestEnv(t, cfg)
			var calls atomic.Int32
			env.relay.sender = &fakeSender{send: func(_ context.Context, _ *Message) error {
				return tt.send(calls.Add(1))
			}}
			if rec := post(t, env.relay.Handler(), formType, string(readTestdata(t, "sms.form"))); rec.Code != 200 {
				t.Fatalf("post: %d", rec.Code)
			}
			stop := runRelay(t, env.relay)
			waitFor(t, "the event to settle", func() bool {
				st, _ := env.spool.Stats(t.Context())
				return st.Depth == tt.wantDepth && st.Dead == tt.wantDead
			})
			stop()
			if got := testutil.ToFloat64(env.relay.metrics.failed.WithLabelValues("sms", "config")); got != tt.wantConfig {
				t.Errorf("config failures counted = %v, want %v", got, tt.wantConfig)
			}
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("send called %d times, want %d", got, tt.wantCalls)
			}
			if tt.wantDeath != "" && !strings.Contains(env.logs.String(), "dead letters") {
				t.Errorf("no log line about the dead letter:\n%s", env.logs)
			}
			if tt.wantDeath != "" {
				dead := deadLetters(t, env.spool)
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
	env := newTestEnv(t, cfg)
	env.relay.sender = &fakeSender{send: func(context.Context, *Message) error { return errors.New("dial tcp: connection refused") }}
	post(t, env.relay.Handler(), formType, string(readTestdata(t, "sms.form")))
	stop := runRelay(t, env.relay)
	waitFor(t, "the event to die", func() bool {
		st, _ := env.spool.Stats(t.Context())
		return st.Dead == 1
	})
	stop()
	dead := deadLetters(t, env.spool)
	if len(dead) != 1 || !strings.Contains(dead[0].DeadReason, "retry.lifetime") || !strings.Contains(dead[0].DeadReason, "connection refused") || dead[0].Attempts < 2 {
		t.Fatalf("dead letter = %+v; want the lifetime reason, the last error and several attempts", dead)
	}
	// The error was the same every time: logged as a warning once, then at debug.
	if n := strings.Count(env.logs.String(), "level=WARN msg=\"delivery failed; will retry\""); n != 1 {
		t.Errorf("warned %d times about the same error, want 1", n)
	}
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	for attempt, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second} {
		for range 50 {
			got := Backoff(time.Second, 10*time.Second, attempt)
			if got < want/2 || got > want {
				t.Fatalf("Backoff(attempt %d) = %v, want within [%v, %v]", attempt, got, want/2, want)
			}
		}
	}
}

// TestShutdownFinishesOnlyTheEmailInHand stops the workers with a backlog
// queued: each finishes the attempt it holds, and the rest stay spooled.
func TestShutdownFinishesOnlyTheEmailInHand(t *testing.T) {
	cfg := testConfig(t)
	env := newTestEnv(t, cfg)
	h := env.relay.Handler()
	for range 50 {
		if rec := post(t, h, formType, string(readTestdata(t, "sms.form"))); rec.Code != 200 {
			t.Fatalf("post: %d", rec.Code)
		}
	}
	started := make(chan struct{}, 50)
	release := make(chan struct{})
	var sent atomic.Int32
	env.relay.sender = &fakeSender{send: func(ctx context.Context, _ *Message) error {
		started <- struct{}{}
		<-release
		sent.Add(1)
		return ctx.Err() // the attempt's context must outlive the shutdown
	}}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = env.relay.Run(ctx) }()
	for range cfg.SMTP.Workers {
		<-started
	}
	cancel() // SIGTERM while every worker holds an email
	close(release)
	<-done
	if got := int(sent.Load()); got != cfg.SMTP.Workers {
		t.Errorf("%d emails sent after shutdown began, want %d (one per worker)", got, cfg.SMTP.Workers)
	}
	st, err := env.spool.Stats(t.Context())
	if err != nil || st.Depth != 50-cfg.SMTP.Workers || st.Dead != 0 {
		t.Errorf("after shutdown: %+v, %v; want %d still queued, none dead", st, err, 50-cfg.SMTP.Workers)
	}
}

// TestLogLines: one line for the accepted event and one for its delivery,
// with the event id, type, route and the server's reply; no message text
// at info level.
func TestLogLines(t *testing.T) {
	env := newTestEnv(t, testConfig(t))
	var calls atomic.Int32
	env.relay.sender = &fakeSender{send: func(_ context.Context, m *Message) error {
		m.Receipt = "250 2.0.0 Ok: queued as 4F2A"
		calls.Add(1)
		return nil
	}}
	post(t, env.relay.Handler(), formType, string(readTestdata(t, "sms.form")))
	stop := runRelay(t, env.relay)
	waitFor(t, "the email", func() bool { return calls.Load() == 1 })
	stop() // the log is complete once the workers are stopped
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
	env := newTestEnv(t, cfg)
	down := errors.New("smtp connect 127.0.0.1:25: dial tcp 127.0.0.1:25: connect: connection refused")
	var calls atomic.Int32
	var succeedOnce atomic.Bool
	sender := &fakeSender{send: func(context.Context, *Message) error {
		calls.Add(1)
		if succeedOnce.CompareAndSwap(true, false) {
			return nil
		}
		return down
	}}
	env.relay.sender = sender
	for range 5 {
		if rec := post(t, env.relay.Handler(), formType, string(readTestdata(t, "ussd.form"))); rec.Code != 200 {
			t.Fatalf("post: %d", rec.Code)
		}
	}
	const warned = `level=WARN msg="delivery failed; will retry"`
	stop := runRelay(t, env.relay)
	waitFor(t, "every event to fail a few times", func() bool { return calls.Load() >= 20 })
	stop()
	if n := strings.Count(env.logs.String(), warned); n != 1 {
		t.Errorf("warned %d times about one cause over %d failures of 5 events, want once:\n%s", n, calls.Load(), env.logs)
	}
	if !strings.Contains(env.logs.String(), `level=DEBUG msg="delivery failed again; will retry"`) {
		t.Error("the repeats were not logged at debug")
	}

	// A restart: a new Relay on the same queue logs the cause again.
	logs := &lockedWriter{w: &bytes.Buffer{}}
	restarted, err := New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), prometheus.NewRegistry(), env.spool, sender)
	if err != nil {
		t.Fatal(err)
	}
	stop = runRelay(t, restarted)
	waitFor(t, "the restarted relay to warn", func() bool { return strings.Contains(logs.String(), warned) })
	// A success clears the cause: the next failure is logged again.
	succeedOnce.Store(true)
	waitFor(t, "the warning after a success", func() bool { return strings.Count(logs.String(), warned) == 2 })
	stop()
	if n := strings.Count(logs.String(), warned); n != 2 {
		t.Errorf("after the restart warned %d times, want twice (once at start, once after the success):\n%s", n, logs)
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
	env := newTestEnv(t, cfg)
	untrusted := fmt.Errorf("smtp connect mail.example.com:587: %w", &tls.CertificateVerificationError{Err: errors.New("x509: certificate signed by unknown authority")})
	var calls atomic.Int32
	env.relay.sender = &fakeSender{send: func(context.Context, *Message) error {
		calls.Add(1)
		return untrusted
	}}
	if rec := post(t, env.relay.Handler(), formType, string(readTestdata(t, "ussd.form"))); rec.Code != 200 {
		t.Fatalf("post: %d", rec.Code)
	}
	stop := runRelay(t, env.relay)
	waitFor(t, "attempts past retry.lifetime", func() bool { return calls.Load() >= 8 })
	stop()
	var errorLines []string
	for _, l := range strings.Split(env.logs.String(), "\n") {
		if strings.Contains(l, "level=ERROR") {
			errorLines = append(errorLines, l)
		}
	}
	if len(errorLines) != 1 || !strings.Contains(errorLines[0], "config error") || !strings.Contains(errorLines[0], `fix="`+Hint(untrusted)+`"`) {
		t.Errorf("ERROR lines %q, want one naming the config error with fix=%q", errorLines, Hint(untrusted))
	}
	if got := testutil.ToFloat64(env.relay.metrics.failed.WithLabelValues("ussd", "config")); got < 5 {
		t.Errorf("config failures counted = %v, want one per attempt (%d)", got, calls.Load())
	}
	st, err := env.spool.Stats(t.Context())
	if err != nil || st.Depth != 1 || st.Dead != 0 {
		t.Errorf("spool %+v, %v; want the event queued, none dead", st, err)
	}
}
