package relay_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/config/configtest"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/memqueue"
	"github.com/hookmail/hookmail/relay/outbox"
	"github.com/hookmail/hookmail/relay/relaytest"
	"github.com/hookmail/hookmail/relay/webhook"
)

const testSecret = configtest.Secret

const formType = "application/x-www-form-urlencoded"

// readTestdata reads one of the gateway's wire bodies, which the webhook
// package's tests keep.
func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("webhook", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testConfig(t testing.TB) *config.Config { return configtest.Config(t) }

// testEnv is the webhook receiver and the workers on one in-memory queue,
// wired as serve wires them on the spool. The workers run only while a
// test runs them (run, runUntil).
type testEnv struct {
	cfg     *config.Config
	store   *memqueue.Store
	queue   *memqueue.Queue
	sender  relay.Sender
	workers *relay.Workers
	handler http.Handler // the webhook
	reg     *prometheus.Registry
	logs    *relaytest.LogBuffer
}

// envSetup is what an envOption changes.
type envSetup struct {
	store   *memqueue.Store
	sender  relay.Sender
	now     func() time.Time
	digests func(*memqueue.Queue) relay.DigestStore
	media   relay.MediaFetcher
}

type envOption func(*envSetup)

// withSender delivers with s instead of an outbox in cfg.Outbox.Dir.
func withSender(s relay.Sender) envOption { return func(e *envSetup) { e.sender = s } }

// withMedia makes the workers fetch remote files with f.
func withMedia(f relay.MediaFetcher) envOption { return func(e *envSetup) { e.media = f } }

// withClock sets the clock of the receiver, the queue and the workers.
func withClock(now func() time.Time) envOption { return func(e *envSetup) { e.now = now } }

// withStore opens the queue on s, as a restart opens the same database.
func withStore(s *memqueue.Store) envOption { return func(e *envSetup) { e.store = s } }

// withDigests gives the workers wrap(queue) as their digest store.
func withDigests(wrap func(*memqueue.Queue) relay.DigestStore) envOption {
	return func(e *envSetup) { e.digests = wrap }
}

func newTestEnv(t testing.TB, cfg *config.Config, opts ...envOption) *testEnv {
	t.Helper()
	setup := envSetup{store: memqueue.NewStore(), now: time.Now}
	for _, o := range opts {
		o(&setup)
	}
	q := memqueue.Open(setup.store, memqueue.WithDedupWindow(cfg.Dedup.Window), memqueue.WithMaxEvents(cfg.Spool.MaxEvents), memqueue.WithClock(setup.now))
	t.Cleanup(func() { q.Close() })
	if setup.sender == nil {
		ob, err := outbox.New(cfg.Outbox.Dir)
		if err != nil {
			t.Fatal(err)
		}
		setup.sender = ob
	}
	var digests relay.DigestStore = q
	if setup.digests != nil {
		digests = setup.digests(q)
	}
	rules, err := relay.NewRules(cfg)
	if err != nil {
		t.Fatal(err)
	}
	logs := &relaytest.LogBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the log:\n%s", logs)
		}
	})
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	workers := relay.NewWorkers(rules, q, relay.QueueLocal, digests, setup.store, setup.sender, setup.media, log, reg)
	workers.SetClock(setup.now)
	secrets := webhook.NewKeys(cfg.Webhook.Secrets)
	rc := &webhook.Receiver{
		Config: &cfg.Webhook, Keys: func(string) webhook.Keys { return secrets }, Queue: relay.PriorityEnqueuer{Queue: q, Rules: workers.Rules},
		Metrics: webhook.NewMetrics(reg), Log: log, Now: setup.now,
	}
	gateway, _ := cfg.Webhook.Source(config.GatewaySource)
	return &testEnv{cfg: cfg, store: setup.store, queue: q, sender: setup.sender, workers: workers, handler: rc.Handler(gateway), reg: reg, logs: logs}
}

// restart stops env's instance for good (its queue closed) and starts a new
// one on the same store and sender, with fresh logs and metrics.
func (env *testEnv) restart(t *testing.T) *testEnv {
	t.Helper()
	if err := env.queue.Close(); err != nil {
		t.Fatal(err)
	}
	return newTestEnv(t, env.cfg, withStore(env.store), withSender(env.sender))
}

// reload swaps in cfg's rules, as a config reload does.
func (env *testEnv) reload(t testing.TB, cfg *config.Config) {
	t.Helper()
	rules, err := relay.NewRules(cfg)
	if err != nil {
		t.Error(err)
		return
	}
	env.workers.SetRules(rules)
}

// post posts body to the webhook and fails the test unless it is queued.
func (env *testEnv) post(t *testing.T, contentType, body string) {
	t.Helper()
	if rec := post(t, env.handler, contentType, body); rec.Code != http.StatusOK {
		t.Fatalf("post: %d %s", rec.Code, rec.Body)
	}
}

func post(t *testing.T, h http.Handler, contentType, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/webhook", strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// run runs env's workers until the returned stop is called.
func (env *testEnv) run(t *testing.T) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = env.workers.Run(ctx) }()
	return func() { cancel(); <-done }
}

// runUntil runs env's workers until cond holds, then stops them.
func (env *testEnv) runUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	stop := env.run(t)
	defer stop()
	waitFor(t, what, cond)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stats is env's queue's snapshot; the memqueue's Stats cannot fail.
func (env *testEnv) stats(t *testing.T) relay.Stats {
	t.Helper()
	st, err := env.queue.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (env *testEnv) deadLetters(t *testing.T) []relay.Item {
	t.Helper()
	page, err := env.queue.List(t.Context(), relay.Filter{State: relay.StateDead})
	if err != nil {
		t.Fatal(err)
	}
	return page.Items
}

// collected counts the events route's digest holds.
func (env *testEnv) collected(t *testing.T, route string) int {
	t.Helper()
	_, n, err := env.queue.Digest(t.Context(), route, 0)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// metric reads the counter or gauge name from env's registry, the series
// whose labels include labels (name, value, name, value...).
func (env *testEnv) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	return metricIn(t, env.reg, name, labels...)
}

// metricIn is testEnv.metric on any registry.
func metricIn(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !hasLabels(m, labels) {
				continue
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("no series %s%q", name, labels)
	return 0
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool {
			return l.GetName() == labels[i] && l.GetValue() == labels[i+1]
		}) {
			return false
		}
	}
	return true
}

// fakeSender fails or succeeds on demand, for the retry paths the outbox
// cannot produce.
type fakeSender struct {
	send func(ctx context.Context, m *relay.Message) error
}

var _ relay.Sender = (*fakeSender)(nil)

func (f *fakeSender) Send(ctx context.Context, m *relay.Message) error { return f.send(ctx, m) }

// reply is a mail server's reply as relay/smtp's Sender returns it,
// classified by its code: 5xx permanent, 4xx temporary.
func reply(code int, msg string) error {
	class := relay.Temporary
	if code >= 500 {
		class = relay.Permanent
	}
	return &relay.ClassedError{Err: &textproto.Error{Code: code, Msg: msg}, Class: class}
}
