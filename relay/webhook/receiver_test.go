package webhook

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/config/configtest"
	"github.com/hookmail/hookmail/relay/memqueue"
	"github.com/hookmail/hookmail/relay/relaytest"
)

// testEnv is a receiver on an in-memory queue.
type testEnv struct {
	cfg   *config.Config
	queue *memqueue.Queue
	rc    *Receiver
	reg   *prometheus.Registry
	logs  *relaytest.LogBuffer
}

func testConfig(t testing.TB) *config.Config { return configtest.Config(t) }

func newTestEnv(t testing.TB, cfg *config.Config) *testEnv {
	t.Helper()
	q := memqueue.Open(memqueue.NewStore(), memqueue.WithDedupWindow(cfg.Dedup.Window), memqueue.WithMaxEvents(cfg.Spool.MaxEvents))
	t.Cleanup(func() { q.Close() })
	logs := &relaytest.LogBuffer{}
	reg := prometheus.NewRegistry()
	secrets := NewKeys(cfg.Webhook.Secrets)
	rc := &Receiver{
		Config: &cfg.Webhook, Keys: func(string) Keys { return secrets }, Queue: q, Metrics: NewMetrics(reg),
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	return &testEnv{cfg: cfg, queue: q, rc: rc, reg: reg, logs: logs}
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

func TestWebhookQueuesEachWireBody(t *testing.T) {
	env := newTestEnv(t, testConfig(t))
	h := env.rc.Handler(env.gateway())
	for _, file := range []string{"sms.form", "whatsapp.form", "ussd.form", "notifications.form"} {
		rec := post(t, h, formType, string(readTestdata(t, file)))
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: status %d body %s", file, rec.Code, rec.Body)
		}
		var resp struct{ Status, ID string }
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || resp.Status != "queued" || resp.ID == "" {
			t.Fatalf("%s: body %s", file, rec.Body)
		}
	}
	st, err := env.queue.Stats(t.Context())
	if err != nil || st.Depth != 4 {
		t.Fatalf("spool depth = %d (%v), want 4", st.Depth, err)
	}
	if got := testutil.ToFloat64(env.rc.Metrics.received.WithLabelValues(SourceGateway, "notification", ResultQueued)); got != 1 {
		t.Errorf("notification queued counter = %v, want 1", got)
	}
	if strings.Contains(env.logs.String(), testSecret) {
		t.Errorf("log contains the secret:\n%s", env.logs)
	}
}

func TestWebhookErrors(t *testing.T) {
	cfg := testConfig(t)
	cfg.Webhook.MaxBodyBytes = 1024
	env := newTestEnv(t, cfg)
	h := env.rc.Handler(env.gateway())
	big := "secret=" + testSecret + "&type=sms&data[message]=" + strings.Repeat("x", 2000)
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		wantStatus  int
		wantResult  string
		wantBody    string
	}{
		{"second secret accepted", "POST", "/webhook", formType, "secret=second-secret-for-rotation&type=sms", 200, ResultQueued, `"queued"`},
		{"unknown type accepted", "POST", "/webhook", formType, "secret=" + testSecret + "&type=telegram&data[x]=1", 200, ResultQueued, `"queued"`},
		{"wrong secret", "POST", "/webhook", formType, "secret=nope&type=sms", 401, ResultUnauthorized, `{"error":"missing or wrong secret","status":"error"}`},
		{"missing secret", "POST", "/webhook", formType, "type=sms", 401, ResultUnauthorized, `{"error":"missing or wrong secret","status":"error"}`},
		{"secret prefix", "POST", "/webhook", formType, "secret=" + testSecret[:39] + "&type=sms", 401, ResultUnauthorized, `missing or wrong secret`},
		{"missing type", "POST", "/webhook", formType, "secret=" + testSecret, 400, ResultInvalid, `missing type`},
		{"malformed form", "POST", "/webhook", formType, "secret=%zz", 400, ResultInvalid, `does not decode`},
		{"malformed JSON", "POST", "/webhook", "application/json", `{"secret":`, 400, ResultInvalid, `does not decode`},
		{"GET", "GET", "/webhook", "", "", 405, ResultInvalid, `only POST`},
		{"PUT", "PUT", "/webhook", formType, "secret=" + testSecret + "&type=sms", 405, ResultInvalid, `only POST`},
		{"too large", "POST", "/webhook", formType, big, 413, ResultTooLarge, `max_body_bytes`},
		{"unsupported type", "POST", "/webhook", "text/plain", "secret=" + testSecret, 415, ResultUnsupported, `unsupported content type`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "/", strings.NewReader(tt.body))
			req.URL.Path = tt.path
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Errorf("body = %s, want it to contain %s", rec.Body, tt.wantBody)
			}
			if strings.Contains(rec.Body.String(), testSecret) {
				t.Errorf("body echoes the secret: %s", rec.Body)
			}
			if tt.wantStatus == 405 && rec.Header().Get("Allow") != "POST" {
				t.Errorf("Allow = %q, want POST", rec.Header().Get("Allow"))
			}
			if loc := rec.Header().Get("Location"); loc != "" {
				t.Errorf("redirect to %s", loc)
			}
		})
	}
	// Every result was counted under a bounded type label.
	if got := testutil.ToFloat64(env.rc.Metrics.received.WithLabelValues(SourceGateway, "other", ResultQueued)); got != 1 {
		t.Errorf("unknown type counted as other: %v, want 1", got)
	}
	if got := testutil.ToFloat64(env.rc.Metrics.received.WithLabelValues(SourceGateway, "none", ResultTooLarge)); got != 1 {
		t.Errorf("too_large counter = %v, want 1", got)
	}
}

func TestWebhook503WhenQueueCannotWrite(t *testing.T) {
	env := newTestEnv(t, testConfig(t))
	h := env.rc.Handler(env.gateway())
	if err := env.queue.Close(); err != nil {
		t.Fatal(err)
	}
	rec := post(t, h, formType, string(readTestdata(t, "sms.form")))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("status = %d, Retry-After %q; want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	if got := testutil.ToFloat64(env.rc.Metrics.received.WithLabelValues(SourceGateway, "sms", ResultUnavailable)); got != 1 {
		t.Errorf("unavailable counter = %v, want 1", got)
	}
}

// gateway is the source webhook.path and webhook.secrets make.
func (e *testEnv) gateway() config.Source {
	src, ok := e.cfg.Webhook.Source(config.GatewaySource)
	if !ok {
		panic("no gateway source in the test config")
	}
	return src
}
