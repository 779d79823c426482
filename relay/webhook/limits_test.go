package webhook

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay/ratelimit"
)

func received(t *testing.T, env *testEnv, typ, result string) float64 {
	t.Helper()
	return testutil.ToFloat64(env.rc.Metrics.received.WithLabelValues(SourceGateway, typ, result))
}

func TestWebhookDuplicateAnswers200AndStoresOnce(t *testing.T) {
	cfg := testConfig(t)
	cfg.Dedup.Window = time.Hour
	env := newTestEnv(t, cfg)
	h := env.rc.Handler(env.gateway())
	body := string(readTestdata(t, "sms.form"))
	var first, second struct{ Status, ID string }
	_ = json.Unmarshal(post(t, h, formType, body).Body.Bytes(), &first)
	rec := post(t, h, formType, body)
	_ = json.Unmarshal(rec.Body.Bytes(), &second)
	if rec.Code != http.StatusOK || first.Status != "queued" || second.Status != "duplicate" || second.ID != first.ID {
		t.Fatalf("first %+v, second %d %+v; want queued then duplicate with the first id", first, rec.Code, second)
	}
	// The same sender id on another type is another event.
	if rec := post(t, h, formType, strings.Replace(body, "type=sms", "type=ussd", 1)); !strings.Contains(rec.Body.String(), `"queued"`) {
		t.Errorf("same id, other type: %s", rec.Body)
	}
	if st, _ := env.queue.Stats(t.Context()); st.Depth != 2 {
		t.Errorf("depth %d, want 2", st.Depth)
	}
	if got := received(t, env, "sms", ResultDuplicate); got != 1 {
		t.Errorf("duplicate counted %v times, want 1", got)
	}
}

func TestWebhookQueueFullAnswers503(t *testing.T) {
	cfg := testConfig(t)
	cfg.Spool.MaxEvents = 1
	env := newTestEnv(t, cfg)
	h := env.rc.Handler(env.gateway())
	body := string(readTestdata(t, "sms.form"))
	if rec := post(t, h, formType, body); rec.Code != http.StatusOK {
		t.Fatalf("first: %d", rec.Code)
	}
	rec := post(t, h, formType, body)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), "queue is full") {
		t.Fatalf("past spool.max_events: %d %q %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	if got := received(t, env, "sms", ResultQueueFull); got != 1 {
		t.Errorf("queue_full counted %v, want 1", got)
	}
	if st, _ := env.queue.Stats(t.Context()); st.Depth != 1 {
		t.Errorf("depth %d, want 1: nothing half-written", st.Depth)
	}
}

// TestWebhookRateLimitPerClientIP: webhook.rate_limit keeps a bucket per
// client IP, an IPv6 one's per /64.
func TestWebhookRateLimitPerClientIP(t *testing.T) {
	cfg := testConfig(t)
	cfg.Webhook.RateLimit, cfg.Webhook.RateBurst = 1, 2
	env := newTestEnv(t, cfg)
	now := time.Unix(1_700_000_000, 0)
	env.rc.Now = func() time.Time { return now }
	h := env.rc.Handler(env.gateway())
	body := string(readTestdata(t, "sms.form"))
	from := func(ip string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/webhook", strings.NewReader(body))
		req.Header.Set("Content-Type", formType)
		req.RemoteAddr = ip + ":40000"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for i := range 2 {
		if rec := from("192.0.2.1"); rec.Code != http.StatusOK {
			t.Fatalf("request %d within the burst: %d", i, rec.Code)
		}
	}
	rec := from("192.0.2.1")
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("past the burst: %d Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	if rec := from("192.0.2.2"); rec.Code != http.StatusOK {
		t.Errorf("another client: %d, want its own bucket", rec.Code)
	}
	now = now.Add(time.Second)
	if rec := from("192.0.2.1"); rec.Code != http.StatusOK {
		t.Errorf("a second later: %d, want a token back", rec.Code)
	}
	if got := received(t, env, "none", ResultRateLimited); got != 1 {
		t.Errorf("rate_limited counted %v, want 1", got)
	}
	// An IPv6 client is its /64: taking another address for each request
	// does not pass the limit. (Before, each address had a bucket.)
	for i, addr := range []string{"[2001:db8:0:1::1]", "[2001:db8:0:1::2]"} {
		if rec := from(addr); rec.Code != http.StatusOK {
			t.Fatalf("IPv6 request %d within the burst: %d", i, rec.Code)
		}
	}
	if rec := from("[2001:db8:0:1:abcd::3]"); rec.Code != http.StatusTooManyRequests {
		t.Errorf("a third address of the same /64 past the burst: %d, want 429", rec.Code)
	}
	if rec := from("[2001:db8:0:2::1]"); rec.Code != http.StatusOK {
		t.Errorf("another /64: %d, want its own bucket", rec.Code)
	}
}

func TestIPLimiterForgetsQuietClients(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := ratelimit.New(10, 10, 0, func() time.Time { return now })
	for i := range 1000 {
		l.Take("198.51.100." + string(rune('a'+i%26)) + string(rune('a'+i/26)))
	}
	now = now.Add(2 * time.Minute)
	l.Take("203.0.113.1")
	if n := l.Len(); n != 1 {
		t.Errorf("%d client buckets kept after they went quiet, want 1", n)
	}
}

// TestConcurrencyCap: with every slot taken, a request whose body has
// arrived waits slotWait and gets 503 busy; once a slot frees, it gets in.
func TestConcurrencyCap(t *testing.T) {
	env := newTestEnv(t, testConfig(t))
	src := env.gateway()
	busy := make(slots, 1)
	if !busy.acquire(t.Context()) {
		t.Fatal("the only slot was not free")
	}
	call := func() *reqError {
		req := httptest.NewRequest(http.MethodPost, "/webhook", strings.NewReader("secret="+testSecret+"&type=sms&data[message]=hi"))
		req.Header.Set("Content-Type", formType)
		release := func() {}
		_, rerr := env.rc.receive(httptest.NewRecorder(), req, &src, formatOf(&src), DecodeOptions{}, busy, &release)
		return rerr
	}
	if rerr := call(); rerr != errBusy || rerr.status != http.StatusServiceUnavailable || rerr.retryAfter == "" {
		t.Fatalf("with the only slot taken: %+v, want busy", rerr)
	}
	busy.release()
	if rerr := call(); rerr != nil {
		t.Fatalf("after the slot freed: %+v", rerr)
	}
	if len(busy) != 1 {
		t.Errorf("a received request holds %d slots, want 1 (the caller releases it)", len(busy))
	}
}

// TestDedupKeepsSendersApart: the same data[id] from two gateways (each
// with its own secret) is two events, and so is the dashboard's test
// "notification" next to a real "notifications" with the same id.
func TestDedupKeepsSendersApart(t *testing.T) {
	cfg := testConfig(t)
	cfg.Dedup.Window = time.Hour
	env := newTestEnv(t, cfg)
	h := env.rc.Handler(env.gateway())
	status := func(secret, typ string) string {
		var r struct{ Status string }
		_ = json.Unmarshal(post(t, h, formType, "secret="+secret+"&type="+typ+"&data[id]=5&data[message]=x").Body.Bytes(), &r)
		return r.Status
	}
	for _, tc := range []struct{ secret, typ, want string }{
		{testSecret, "sms", "queued"},
		{"second-secret-for-rotation", "sms", "queued"},
		{testSecret, "sms", "duplicate"},
		{testSecret, "notifications", "queued"},
		{testSecret, "notification", "queued"},
		{testSecret, "notification", "duplicate"},
	} {
		if got := status(tc.secret, tc.typ); got != tc.want {
			t.Errorf("%s from secret %.6s…: %s, want %s", tc.typ, tc.secret, got, tc.want)
		}
	}
}

// TestDedupKeepsZenderSourcesApart: two zender sources that share a secret
// are two platforms: the same data[id] from each is two events, while each
// one's repeat is still a duplicate.
func TestDedupKeepsZenderSourcesApart(t *testing.T) {
	cfg := testConfig(t)
	cfg.Dedup.Window = time.Hour
	env := newTestEnv(t, cfg)
	branch := config.Source{Name: "branch", Path: "/hooks/branch", Format: config.FormatZender, MaxBodyBytes: cfg.Webhook.MaxBodyBytes}
	handlers := map[string]http.Handler{"gateway": env.rc.Handler(env.gateway()), "branch": env.rc.Handler(branch)}
	status := func(source string) string {
		var r struct{ Status string }
		_ = json.Unmarshal(post(t, handlers[source], formType, "secret="+testSecret+"&type=sms&data[id]=5&data[message]=x").Body.Bytes(), &r)
		return r.Status
	}
	for _, tc := range []struct{ source, want string }{
		{"gateway", "queued"}, {"branch", "queued"}, {"gateway", "duplicate"}, {"branch", "duplicate"},
	} {
		if got := status(tc.source); got != tc.want {
			t.Errorf("from %s: %s, want %s", tc.source, got, tc.want)
		}
	}
}
