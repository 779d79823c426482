package web

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/config/configtest"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/memqueue"
	"github.com/hookmail/hookmail/relay/relaytest"
)

const (
	testToken  = "web-test-admin-token-0123456789"
	testHost   = "admin.test:9090"
	testOrigin = "http://admin.test:9090"
)

// testEnv is the admin page on an in-memory queue, with a clock the test
// moves, requests as a browser on the page's own origin sends them, and
// the session of the last login.
type testEnv struct {
	cfg   *config.Config
	rules *relay.Rules
	queue *memqueue.Queue
	h     http.Handler
	logs  *relaytest.LogBuffer

	mu     sync.Mutex
	now    time.Time
	hour   relay.OutcomeSummary
	reload ReloadStatus

	cookie, csrf string
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	cfg := configtest.Config(t)
	cfg.Admin.Listen, cfg.Admin.Token = "127.0.0.1:9090", testToken
	cfg.Webhook.SourceList = []config.Source{{Name: "android", Path: "/android", Format: config.FormatSMSGate, Secrets: []config.Secret{"android-signing-key"}}}
	cfg.Routes = append([]config.Route{
		{Name: "android-sms", Match: map[string]string{"source": "android"}, To: []string{"phone@example.com"}},
		{Name: "otp-digest", Match: map[string]string{"message": "(?i)otp"}, To: []string{"otp@example.com"}, Digest: &config.Digest{Every: time.Hour}},
	}, cfg.Routes...)
	cfg.Routes[len(cfg.Routes)-1].Storm = &config.Storm{Threshold: 10, Window: time.Minute}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	rules, err := relay.NewRules(cfg)
	if err != nil {
		t.Fatal(err)
	}
	env := &testEnv{cfg: cfg, rules: rules, logs: &relaytest.LogBuffer{}, now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	env.reload = ReloadStatus{OK: true, At: env.now, Loaded: env.now, Trigger: "start"}
	env.queue = memqueue.Open(memqueue.NewStore(), memqueue.WithClock(env.clock))
	env.h, err = New(Options{
		Inspector: env.queue, Digests: env.queue,
		Rules:    func() *relay.Rules { return env.rules },
		Outcomes: func() relay.OutcomeSummary { env.mu.Lock(); defer env.mu.Unlock(); return env.hour },
		Reload:   func() ReloadStatus { env.mu.Lock(); defer env.mu.Unlock(); return env.reload },
		Token:    testToken, Where: "the test's memory",
		Log: slog.New(slog.NewTextHandler(env.logs, nil)), Now: env.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if strings.Contains(env.logs.String(), testToken) {
			t.Error("the admin token reached the log")
		}
		if t.Failed() {
			t.Logf("the log:\n%s", env.logs)
		}
	})
	return env
}

func (env *testEnv) clock() time.Time {
	env.mu.Lock()
	defer env.mu.Unlock()
	return env.now
}

func (env *testEnv) advance(d time.Duration) {
	env.mu.Lock()
	defer env.mu.Unlock()
	env.now = env.now.Add(d)
}

// request is a request as the page's own forms and links send it: to
// testHost, a POST with its Origin, with the session's cookie.
func (env *testEnv) request(method, target string, form url.Values) *http.Request {
	var r *http.Request
	if method == http.MethodPost {
		r = httptest.NewRequest(method, target, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Origin", testOrigin)
		r.Header.Set("Sec-Fetch-Site", "same-origin")
	} else {
		r = httptest.NewRequest(method, target, nil)
	}
	r.Host = testHost
	r.RemoteAddr = "192.0.2.10:50000"
	if env.cookie != "" {
		r.AddCookie(&http.Cookie{Name: cookieName, Value: env.cookie})
	}
	return r
}

func (env *testEnv) serve(r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	env.h.ServeHTTP(rec, r)
	return rec
}

func (env *testEnv) get(target string) *httptest.ResponseRecorder {
	return env.serve(env.request(http.MethodGet, target, nil))
}

// post sends a form with the session's CSRF token.
func (env *testEnv) post(target string, form url.Values) *httptest.ResponseRecorder {
	if form == nil {
		form = url.Values{}
	}
	if !form.Has("csrf") {
		form.Set("csrf", env.csrf)
	}
	return env.serve(env.request(http.MethodPost, target, form))
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// login logs in with the token and keeps the session's cookie and CSRF
// token.
func (env *testEnv) login(t *testing.T) {
	t.Helper()
	rec := env.serve(env.request(http.MethodPost, "/login", url.Values{"token": {testToken}}))
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("login: %d\n%s", rec.Code, rec.Body)
	}
	for _, c := range rec.Result().Cookies() {
		if c.Name == cookieName {
			env.cookie = c.Value
		}
	}
	page := env.get("/")
	m := csrfField.FindStringSubmatch(page.Body.String())
	if env.cookie == "" || m == nil {
		t.Fatalf("no session after login: cookie %q, page %d\n%s", env.cookie, page.Code, page.Body)
	}
	env.csrf = m[1]
}

// enqueue stores an event received now.
func (env *testEnv) enqueue(t *testing.T, id, typ, source string, data map[string]string) *relay.Event {
	t.Helper()
	ev := &relay.Event{ID: id, Source: source, Type: typ, Data: data, Received: env.clock()}
	if source == "android" {
		ev.Format = relay.FormatSMSGate
		ev.Content = relay.Content{From: data["phone"], Text: data["message"]}
	}
	if err := env.queue.Enqueue(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	env.advance(time.Second)
	return ev
}

// settle leases every item due and buries those in dead with a refusal
// of route sms; the others are retried an hour later.
func (env *testEnv) settle(t *testing.T, dead ...string) {
	t.Helper()
	for {
		// Lease looks at the context before the queue: too short a one
		// can end before a busy machine gets to look.
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		l, err := env.queue.Lease(ctx)
		cancel()
		if err != nil {
			return
		}
		p := relay.Progress{Attempts: 1, LastError: "smtp RCPT TO <sms@example.com>: 550 5.1.1 no such user",
			History: []relay.Attempt{{At: env.clock(), What: "attempt 1 failed: smtp RCPT TO <sms@example.com>: 550 5.1.1 no such user"}}}
		if slices.Contains(dead, l.Item.Event.ID) {
			p.Refused = map[string]string{"sms": p.LastError}
			err = env.queue.Bury(t.Context(), l, "permanent error: "+p.LastError, p)
		} else {
			err = env.queue.Retry(t.Context(), l, env.clock().Add(time.Hour), p)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// mustContain fails unless body holds every one of want.
func mustContain(t *testing.T, what, body string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("%s lacks %q", what, w)
		}
	}
}

// mustNotContain fails when body holds any of bad.
func mustNotContain(t *testing.T, what, body string, bad ...string) {
	t.Helper()
	for _, b := range bad {
		if strings.Contains(body, b) {
			t.Errorf("%s holds %q", what, b)
		}
	}
}
