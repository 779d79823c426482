package app

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/config/configtest"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/memqueue"
	"github.com/hookmail/hookmail/relay/outbox"
	"github.com/hookmail/hookmail/relay/relaytest"
)

const testSecret = configtest.Secret

const formType = "application/x-www-form-urlencoded"

func testConfig(t testing.TB) *config.Config { return configtest.Config(t) }

// testEnv is hookmail wired as Serve wires it, on a spool in a temp dir
// and the outbox, without listeners: h serves what the webhook port does.
type testEnv struct {
	cfg     *config.Config
	backend *Backend
	s       *server
	h       http.Handler
	logs    *relaytest.LogBuffer
}

func newTestEnv(t testing.TB, cfg *config.Config, sender relay.Sender) *testEnv {
	t.Helper()
	logs := &relaytest.LogBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	backend, err := OpenBackend(cfg, log, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { backend.Close() })
	if sender == nil {
		if sender, err = outbox.New(cfg.Outbox.Dir); err != nil {
			t.Fatal(err)
		}
	}
	rules, err := relay.NewRules(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(Options{Config: cfg, Log: log}, prometheus.NewRegistry(), rules, backend, sender)
	return &testEnv{cfg: cfg, backend: backend, s: s, h: s.handler(backend.Queue), logs: logs}
}

func (env *testEnv) post(t *testing.T, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/webhook", strings.NewReader(body))
	req.Header.Set("Content-Type", formType)
	rec := httptest.NewRecorder()
	env.h.ServeHTTP(rec, req)
	return rec
}

// run runs the workers until the returned stop is called.
func (env *testEnv) run(t *testing.T) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = env.s.workers.Run(ctx) }()
	return func() { cancel(); <-done }
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestHealthAndMetricsEndpoints(t *testing.T) {
	env := newTestEnv(t, testConfig(t), nil)
	srv := httptest.NewServer(env.h)
	defer srv.Close()
	for path, want := range map[string]string{"/healthz": `"ok"`, "/readyz": `"ready"`, "/metrics": `hookmail_queue_depth{queue="local"} 0`} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d %s, want 200 containing %s", path, resp.StatusCode, body, want)
		}
	}
	problems, err := testutil.GatherAndLint(env.s.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric lint: %s: %s", p.Metric, p.Text)
	}
}

// TestQueueGaugesMarkedLocal: on the spool the gauges that describe the
// queue say queue="local", each instance's own to add up; see
// TestQueueGaugesMarkedShared for Postgres.
func TestQueueGaugesMarkedLocal(t *testing.T) {
	env := newTestEnv(t, withDigestRoute(t, testConfig(t)), nil)
	checkQueueMark(t, env.h, "local")
}

// withDigestRoute adds a digest route to cfg, and a storm to its first
// route, so the per-route digest and storm gauges exist.
func withDigestRoute(t *testing.T, cfg *config.Config) *config.Config {
	t.Helper()
	cfg.Routes[0].Storm = &config.Storm{Threshold: 10, Window: time.Minute}
	cfg.Routes = append(cfg.Routes, config.Route{Name: "digest", Match: map[string]string{"type": "notification"},
		To: []string{"digest@example.com"}, Digest: &config.Digest{Every: time.Hour, MaxEvents: 10}})
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// queueGauges are the metrics that describe the queue rather than this
// process, and carry the queue label.
var queueGauges = []string{"hookmail_queue_depth", "hookmail_queue_oldest_age_seconds",
	"hookmail_dead_letters", "hookmail_digest_pending_events", "hookmail_storms_active"}

var (
	sampleLine = regexp.MustCompile(`^(hookmail_[a-z_]+)(\{.*\})? `)
	queueLabel = regexp.MustCompile(`[{,]queue="([^"]*)"`)
)

// checkQueueMark scrapes h's /metrics: every series of queueGauges has
// queue=want, and no other hookmail series has a queue label.
func checkQueueMark(t *testing.T, h http.Handler, want string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Body)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		name, got := m[1], ""
		if q := queueLabel.FindStringSubmatch(m[2]); q != nil {
			got = q[1]
		}
		switch {
		case slices.Contains(queueGauges, name):
			seen[name] = true
			if got != want {
				t.Errorf("%s: queue=%q, want %q", line, got, want)
			}
		case got != "":
			t.Errorf("%s: a queue label on a metric of this process", line)
		}
	}
	for _, name := range queueGauges {
		if !seen[name] {
			t.Errorf("/metrics has no %s", name)
		}
	}
	if !strings.Contains(rec.Body.String(), "\nhookmail_queue_up 1\n") {
		t.Errorf("/metrics lacks hookmail_queue_up 1 with no label: this instance's view of the queue")
	}
}

// TestWebhookPaths: the webhook answers on its path and with a trailing
// slash, and never redirects: a gateway would follow a 301 with a GET that
// has no body, and the event would be lost.
func TestWebhookPaths(t *testing.T) {
	env := newTestEnv(t, testConfig(t), nil)
	body := "secret=" + testSecret + "&type=sms"
	for path, want := range map[string]int{
		"/webhook":       200,
		"/webhook/":      200,
		"//webhook":      404,
		"/x/../webhook":  404,
		"/webhook/extra": 404,
		"/other":         404,
	} {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		req.URL.Path = path
		req.Header.Set("Content-Type", formType)
		rec := httptest.NewRecorder()
		env.h.ServeHTTP(rec, req)
		if rec.Code != want || rec.Header().Get("Location") != "" {
			t.Errorf("POST %s: %d (Location %q), want %d and no redirect", path, rec.Code, rec.Header().Get("Location"), want)
		}
	}
}

// countingQueue counts the calls that /readyz and /metrics make.
type countingQueue struct {
	relay.Queue
	ready, stats atomic.Int64
}

func (q *countingQueue) Ready(ctx context.Context) error {
	q.ready.Add(1)
	return q.Queue.Ready(ctx)
}

func (q *countingQueue) Stats(ctx context.Context) (relay.Stats, error) {
	q.stats.Add(1)
	return q.Queue.Stats(ctx)
}

// TestProbeFloodsAreCached: a flood of /readyz and /metrics makes at most
// one readiness probe (a write and an fsync) and one gathering per second.
func TestProbeFloodsAreCached(t *testing.T) {
	cfg := testConfig(t)
	env := newTestEnv(t, cfg, nil)
	q := &countingQueue{Queue: env.backend.Queue}
	env.backend.Queue = q
	rules, _ := relay.NewRules(cfg)
	ob, _ := outbox.New(cfg.Outbox.Dir)
	s := newServer(Options{Config: cfg, Log: slog.New(slog.DiscardHandler)}, prometheus.NewRegistry(), rules, env.backend, ob)
	h := s.handler(q)
	start := time.Now()
	for range 300 {
		for _, path := range []string{"/readyz", "/metrics"} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			if rec.Code != http.StatusOK {
				t.Fatalf("%s: %d", path, rec.Code)
			}
		}
	}
	allowed := int64(time.Since(start)/replyCacheTTL) + 1
	if n := q.ready.Load(); n > allowed {
		t.Errorf("300 /readyz made %d readiness probes, want at most %d", n, allowed)
	}
	if n := q.stats.Load(); n > allowed {
		t.Errorf("300 /metrics gathered the queue %d times, want at most %d", n, allowed)
	}
}

// TestReadyzWhenQueueFull: ready means the queue accepts writes now, so a
// spool at spool.max_events is not ready, and says why.
func TestReadyzWhenQueueFull(t *testing.T) {
	cfg := testConfig(t)
	cfg.Spool.MaxEvents = 1
	env := newTestEnv(t, cfg, nil)
	if rec := env.post(t, "secret="+testSecret+"&type=sms&data[message]=one"); rec.Code != http.StatusOK {
		t.Fatalf("first event: %d", rec.Code)
	}
	rec := httptest.NewRecorder()
	env.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || !bytes.Contains(rec.Body.Bytes(), []byte("spool.max_events")) {
		t.Errorf("/readyz with the spool full: %d %s; want 503 naming spool.max_events", rec.Code, rec.Body)
	}
}

// TestDigestRouteNeedsADigestStore: a backend that keeps no digests
// refuses a digest route at start, naming the route, rather than failing
// every event it takes.
func TestDigestRouteNeedsADigestStore(t *testing.T) {
	cfg := testConfig(t)
	cfg.Routes[0].Digest = &config.Digest{Every: time.Hour}
	b := &Backend{}
	err := b.Check(cfg)
	var p *config.Problem
	if !errors.As(err, &p) || p.Key != "routes[0].digest" {
		t.Fatalf("check: %v, want a problem with routes[0].digest", err)
	}
	b.Digests = memqueue.Open(memqueue.NewStore())
	if err := b.Check(cfg); err != nil {
		t.Errorf("with a digest store: %v", err)
	}

	// A storm folds into digests: the same.
	cfg = testConfig(t)
	cfg.Routes[0].Storm = &config.Storm{Threshold: 5, Window: time.Minute}
	if err := (&Backend{}).Check(cfg); !errors.As(err, &p) || p.Key != "routes[0].storm" {
		t.Errorf("check of a storm route: %v, want a problem with routes[0].storm", err)
	}
	if err := b.Check(cfg); err != nil {
		t.Errorf("storm route with a digest store: %v", err)
	}
}

// TestDrainingAnswers: during the drain /readyz answers 503 "shutting
// down" at once, though a 200 was cached a moment before, while the
// webhook is still stored and answered 200, closing its connection.
func TestDrainingAnswers(t *testing.T) {
	env := newTestEnv(t, testConfig(t), nil)
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		env.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec
	}
	if rec := get("/readyz"); rec.Code != http.StatusOK {
		t.Fatalf("/readyz before the drain: %d %s", rec.Code, rec.Body)
	}
	env.s.stopping.Store(true)
	rec := get("/readyz")
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), `"error":"shutting down"`) {
		t.Errorf("/readyz during the drain: %d %s; want 503 shutting down", rec.Code, rec.Body)
	}
	if rec := get("/healthz"); rec.Code != http.StatusOK {
		t.Errorf("/healthz during the drain: %d; hookmail is still alive", rec.Code)
	}
	rec = env.post(t, "secret="+testSecret+"&type=sms&data[message]=during+the+drain")
	if rec.Code != http.StatusOK || rec.Header().Get("Connection") != "close" {
		t.Errorf("webhook during the drain: %d, Connection %q; want 200 and close", rec.Code, rec.Header().Get("Connection"))
	}
	if st, err := env.backend.Queue.Stats(t.Context()); err != nil || st.Depth != 1 {
		t.Errorf("queue depth %d (%v) after a webhook during the drain, want 1", st.Depth, err)
	}
}

// TestReloadTakesShutdownDrain: shutdown.drain reloads, so a new value
// applies to the very restart that follows it.
func TestReloadTakesShutdownDrain(t *testing.T) {
	cfg := testConfig(t)
	env := newTestEnv(t, cfg, nil)
	next := *cfg
	next.Shutdown.Drain = 42 * time.Second
	env.s.opts.Load = func() (*config.Config, error) { return &next, nil }
	env.s.reload("test")
	if got := time.Duration(env.s.drainFor.Load()); got != 42*time.Second {
		t.Errorf("drain after the reload: %s, want 42s", got)
	}
	if strings.Contains(env.logs.String(), "shutdown") {
		t.Errorf("the reload names shutdown.drain as needing a restart:\n%s", env.logs)
	}
}
