package admin

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/config/configtest"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/memqueue"
)

// testEnv is the admin handler on an in-memory queue.
type testEnv struct {
	cfg   *config.Config
	queue *memqueue.Queue
	h     http.Handler
	logs  *bytes.Buffer
}

func newTestEnv(t *testing.T, token config.Secret) *testEnv {
	t.Helper()
	cfg := configtest.Default(t)
	cfg.Webhook.Secrets = []config.Secret{"s"}
	cfg.Admin.Token = token
	cfg.Routes = []config.Route{
		{Name: "sms", Match: map[string]string{"type": "sms"}, To: []string{"sms@example.com"}},
		{Name: "everything-else", To: []string{"all@example.com"}},
	}
	rules, err := relay.NewRules(cfg)
	if err != nil {
		t.Fatal(err)
	}
	q := memqueue.Open(memqueue.NewStore())
	logs := &bytes.Buffer{}
	h := NewHandler(q, func() *relay.Rules { return rules }, token, slog.New(slog.NewTextHandler(logs, nil)))
	return &testEnv{cfg: cfg, queue: q, h: h, logs: logs}
}

func (env *testEnv) enqueue(t *testing.T, id, typ string, data map[string]string) {
	t.Helper()
	ev := &relay.Event{ID: id, Source: "gateway", Type: typ, Data: data, Received: time.Now()}
	if err := env.queue.Enqueue(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
}

// TestAdminAPIThroughClient drives the admin endpoint with the client the
// queue commands use.
func TestAdminAPIThroughClient(t *testing.T) {
	env := newTestEnv(t, "admin-token-123")
	cfg := env.cfg
	srv := httptest.NewServer(env.h)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	ctx := t.Context()

	env.enqueue(t, "01900000-0000-7000-8000-000000000001", "sms", map[string]string{"phone": "+639760713666", "message": "Hello"})
	env.enqueue(t, "01900000-0000-7000-8000-000000000002", "ussd", map[string]string{"code": "*143#", "response": "Sorry"})

	if _, err := tcpAdminClient(addr, "wrong").Stats(ctx); err == nil || !strings.Contains(err.Error(), "admin token") {
		t.Fatalf("wrong token: %v, want refused", err)
	}
	for _, tc := range []struct {
		name    string
		headers map[string]string
		want    int
	}{
		{"a plain request, as a web page could send", nil, http.StatusForbidden},
		{"the admin header, no token", map[string]string{AdminHeader: "1"}, http.StatusUnauthorized},
		{"from another site's page (Origin)", map[string]string{AdminHeader: "1", "Origin": "http://evil.example", "Authorization": "Bearer admin-token-123"}, http.StatusForbidden},
		{"from another site's page (Sec-Fetch-Site)", map[string]string{AdminHeader: "1", "Sec-Fetch-Site": "cross-site", "Authorization": "Bearer admin-token-123"}, http.StatusForbidden},
		{"from its own origin, as a browser sends a same-origin POST", map[string]string{AdminHeader: "1", "Origin": srv.URL, "Sec-Fetch-Site": "same-origin", "Authorization": "Bearer admin-token-123"}, http.StatusOK},
	} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/admin/v1/dead/retry", nil)
		for k, v := range tc.headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != tc.want {
			t.Fatalf("%s: %v %v, want %d", tc.name, resp.StatusCode, err, tc.want)
		}
		resp.Body.Close()
	}

	c := tcpAdminClient(addr, cfg.Admin.Token)
	st, err := c.Stats(ctx)
	if err != nil || st.Depth != 2 || st.ByType["sms"].Waiting != 1 {
		t.Fatalf("stats %+v, %v", st, err)
	}
	page, err := c.List(ctx, relay.Filter{State: relay.StateWaiting, Limit: 1})
	if err != nil || len(page.Items) != 1 || page.Next == "" {
		t.Fatalf("list one: %+v, %v; want one and a cursor", page, err)
	}
	rest, err := c.List(ctx, relay.Filter{State: relay.StateWaiting, After: page.Next})
	if err != nil || len(rest.Items) != 1 || rest.Next != "" {
		t.Fatalf("the next page: %+v, %v", rest, err)
	}
	items := append(page.Items, rest.Items...)
	if ussd, _ := c.List(ctx, relay.Filter{State: relay.StateWaiting, Type: "ussd"}); len(ussd.Items) != 1 || ussd.Items[0].Event.Type != "ussd" {
		t.Errorf("list ussd: %+v", ussd)
	}
	d, err := c.Show(ctx, items[0].Event.ID)
	if err != nil || d.Route != "sms" || !strings.Contains(d.Email, "Subject: SMS from +639760713666") {
		t.Fatalf("show: %+v, %v", d, err)
	}
	var out bytes.Buffer
	if err := PrintDetail(&out, d, time.Now()); err != nil || !strings.Contains(out.String(), "route:        sms") || !strings.Contains(out.String(), "Message-ID:") {
		t.Errorf("printed detail:\n%s", out.String())
	}
	// The dedup key hashes the sender's secret with fields an operator
	// sees: shown, it would let a reader test guesses of the secret.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/admin/v1/events/"+items[0].Event.ID, nil)
	req.Header.Set(AdminHeader, "1")
	req.Header.Set("Authorization", "Bearer "+cfg.Admin.Token.Reveal())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if bytes.Contains(bytes.ToLower(raw), []byte("dedup")) || !bytes.Contains(raw, []byte(items[0].Event.ID)) {
		t.Errorf("the admin API shows the dedup key:\n%s", raw)
	}
	if _, err := c.Show(ctx, "nope"); !errors.Is(err, relay.ErrNotFound) {
		t.Errorf("show unknown: %v, want ErrNotFound", err)
	}
	if err := c.Drop(ctx, items[1].Event.ID); err != nil {
		t.Fatal(err)
	}
	l, _ := env.queue.Lease(ctx)
	if err := env.queue.Bury(ctx, l, "test", relay.Progress{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Drop(ctx, items[1].Event.ID); !errors.Is(err, relay.ErrNotFound) {
		t.Errorf("drop twice: %v, want ErrNotFound", err)
	}
	if n, err := c.RequeueDead(ctx, relay.Filter{}); n != 1 || err != nil {
		t.Fatalf("requeue dead: %d, %v", n, err)
	}
	if st, _ := c.Stats(ctx); st.Depth != 1 || st.Dead != 0 {
		t.Errorf("after drop and requeue: %+v", st)
	}
	l, _ = env.queue.Lease(ctx)
	if err := c.Requeue(ctx, l.Item.Event.ID); !errors.Is(err, relay.ErrBusy) {
		t.Errorf("requeue while delivering: %v, want ErrBusy", err)
	}
	out.Reset()
	page, _ = c.List(ctx, relay.Filter{State: relay.StateWaiting})
	w := NewItemWriter(&out, false, time.Now())
	if err := errors.Join(w.Write(page.Items), w.Close(page.Next)); err != nil || !strings.Contains(out.String(), "delivering") || !strings.Contains(out.String(), "1 event(s)") {
		t.Errorf("printed list:\n%s", out.String())
	}
	if !strings.Contains(env.logs.String(), "dead letters requeued by an operator") {
		t.Error("operator actions are not logged")
	}
	if strings.Contains(env.logs.String(), "admin-token-123") {
		t.Error("the admin token reached the log")
	}
}

// TestAdminListenOnTCPNeedsToken: any local user can reach a TCP port,
// loopback too, so only the owner-only socket goes without a token.
func tcpAdminClient(addr string, token config.Secret) *Client {
	return NewClient(&config.Config{Admin: config.Admin{Listen: addr, Token: token}})
}

func TestAdminListenOnTCPNeedsToken(t *testing.T) {
	for _, tc := range []struct {
		listen string
		token  config.Secret
		ok     bool
	}{
		{"unix", "", true},
		{"unix:/run/hookmail/admin.sock", "", true},
		{"", "", true},
		{"off", "", true},
		{"127.0.0.1:8081", "", false},
		{"[::1]:8081", "", false},
		{"localhost:8081", "", false},
		{":8081", "", false},
		{"10.0.0.5:8081", "", false},
		{"127.0.0.1:8081", "tok", true},
		{"10.0.0.5:8081", "tok", true},
	} {
		cfg := configtest.Default(t)
		cfg.Webhook.Secrets = []config.Secret{"s"}
		cfg.Admin.Listen, cfg.Admin.Token = tc.listen, tc.token
		err := cfg.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("admin.listen %q token %q: %v, want ok=%v", tc.listen, tc.token, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "admin.token") {
			t.Errorf("error does not name admin.token: %v", err)
		}
	}
}

// TestAdminRefusesRebindingHosts: without a token the endpoint answers only
// requests addressed to a loopback host, so a DNS-rebinding page (Host:
// evil.example) gets nothing.
func TestAdminRefusesRebindingHosts(t *testing.T) {
	h := newTestEnv(t, "").h
	for host, want := range map[string]int{
		"127.0.0.1:8081":   http.StatusOK,
		"[::1]:8081":       http.StatusOK,
		"localhost:8081":   http.StatusOK,
		"evil.example:80":  http.StatusForbidden,
		"evil.example":     http.StatusForbidden,
		"192.168.1.5:8081": http.StatusForbidden,
	} {
		req := httptest.NewRequest(http.MethodGet, "/admin/v1/stats", nil)
		req.Host = host
		req.Header.Set(AdminHeader, "1")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("Host %s: %d, want %d", host, rec.Code, want)
		}
	}
}

// TestAdminServesProfiles: Go's profiler answers on the admin endpoint,
// behind the same checks as the queue commands.
func TestAdminServesProfiles(t *testing.T) {
	h := newTestEnv(t, "").h
	for _, tc := range []struct {
		name   string
		header bool
		want   int
	}{
		{"with the admin header", true, http.StatusOK},
		{"without it", false, http.StatusForbidden},
	} {
		req := httptest.NewRequest(http.MethodGet, "/debug/pprof/heap?debug=1", nil)
		req.Host = "127.0.0.1:8081"
		if tc.header {
			req.Header.Set(AdminHeader, "1")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, rec.Code, tc.want)
		}
		if tc.want == http.StatusOK && !strings.Contains(rec.Body.String(), "heap profile") {
			t.Errorf("%s: not a heap profile: %.100q", tc.name, rec.Body.String())
		}
	}
}

// TestAdminListPagesAtMost: a listing page holds at most MaxPage items,
// whatever limit it asks (0, the CLI's "all", included), and gives the
// cursor of the rest: the serving hookmail never builds a page of its
// whole backlog. (Before, limit 0 or a large limit listed everything in
// one response.)
func TestAdminListPagesAtMost(t *testing.T) {
	env := newTestEnv(t, "admin-token-123")
	srv := httptest.NewServer(env.h)
	defer srv.Close()
	c := tcpAdminClient(strings.TrimPrefix(srv.URL, "http://"), "admin-token-123")
	for i := range MaxPage + 5 {
		env.enqueue(t, fmt.Sprintf("01900000-0000-7000-8000-%012d", i), "sms", map[string]string{"phone": "+15550001", "message": "hi"})
	}
	for _, limit := range []int{0, MaxPage + 1, 10 * MaxPage} {
		page, err := c.List(t.Context(), relay.Filter{State: relay.StateWaiting, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != MaxPage || page.Next == "" {
			t.Errorf("limit %d: %d items, next %q; want %d and a cursor", limit, len(page.Items), page.Next, MaxPage)
			continue
		}
		rest, err := c.List(t.Context(), relay.Filter{State: relay.StateWaiting, Limit: limit, After: page.Next})
		if err != nil || len(rest.Items) != 5 || rest.Next != "" {
			t.Errorf("limit %d, after the cursor: %d items, next %q, %v; want the last 5", limit, len(rest.Items), rest.Next, err)
		}
	}
	if page, _ := c.List(t.Context(), relay.Filter{State: relay.StateWaiting, Limit: 7}); len(page.Items) != 7 {
		t.Errorf("limit 7: %d items", len(page.Items))
	}
}
