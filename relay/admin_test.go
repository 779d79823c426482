package relay

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
)

// TestAdminAPIThroughClient drives the admin endpoint of a relay on a real
// spool with the client the queue commands use.
func TestAdminAPIThroughClient(t *testing.T) {
	cfg := testConfig(t)
	cfg.Admin.Token = "admin-token-123"
	env := newTestEnv(t, cfg)
	srv := httptest.NewServer(env.relay.AdminHandler())
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	ctx := t.Context()

	if rec := post(t, env.relay.Handler(), formType, string(readTestdata(t, "sms.form"))); rec.Code != 200 {
		t.Fatal(rec.Code)
	}
	if rec := post(t, env.relay.Handler(), formType, string(readTestdata(t, "ussd.form"))); rec.Code != 200 {
		t.Fatal(rec.Code)
	}

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
		{"from a web page (Origin)", map[string]string{AdminHeader: "1", "Origin": "http://evil.example", "Authorization": "Bearer admin-token-123"}, http.StatusForbidden},
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
	items, err := c.List(ctx, StateWaiting, 0)
	if err != nil || len(items) != 2 {
		t.Fatalf("list: %d, %v", len(items), err)
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
	if bytes.Contains(raw, []byte("dedup")) || !bytes.Contains(raw, []byte(items[0].Event.ID)) {
		t.Errorf("the admin API shows the dedup key:\n%s", raw)
	}
	if _, err := c.Show(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("show unknown: %v, want ErrNotFound", err)
	}
	if err := c.Drop(ctx, items[1].Event.ID); err != nil {
		t.Fatal(err)
	}
	it, _ := env.spool.Lease(ctx)
	if err := env.spool.Bury(ctx, it, "test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Drop(ctx, items[1].Event.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("drop twice: %v, want ErrNotFound", err)
	}
	if n, err := c.RequeueDead(ctx); n != 1 || err != nil {
		t.Fatalf("requeue dead: %d, %v", n, err)
	}
	if st, _ := c.Stats(ctx); st.Depth != 1 || st.Dead != 0 {
		t.Errorf("after drop and requeue: %+v", st)
	}
	it, _ = env.spool.Lease(ctx)
	if err := c.Requeue(ctx, it.Event.ID); !errors.Is(err, ErrBusy) {
		t.Errorf("requeue while delivering: %v, want ErrBusy", err)
	}
	out.Reset()
	items, _ = c.List(ctx, StateWaiting, 0)
	if err := PrintItems(&out, items, time.Now()); err != nil || !strings.Contains(out.String(), "delivering") || !strings.Contains(out.String(), "1 event(s)") {
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
func tcpAdminClient(addr string, token config.Secret) *AdminClient {
	return NewAdminClient(&config.Config{Admin: config.Admin{Listen: addr, Token: token}})
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
		cfg := config.Default()
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
	env := newTestEnv(t, testConfig(t))
	h := env.relay.AdminHandler()
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
