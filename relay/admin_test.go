package relay

import (
	"bytes"
	"errors"
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

	if _, err := NewAdminClient(addr, "wrong").Stats(ctx); err == nil || !strings.Contains(err.Error(), "admin token") {
		t.Fatalf("wrong token: %v, want refused", err)
	}
	resp, err := http.Get(srv.URL + "/admin/v1/stats")
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()

	c := NewAdminClient(addr, cfg.Admin.Token)
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

func TestAdminListenNeedsTokenOffLoopback(t *testing.T) {
	for _, tc := range []struct {
		listen string
		token  config.Secret
		ok     bool
	}{
		{"127.0.0.1:8081", "", true},
		{"[::1]:8081", "", true},
		{"localhost:8081", "", true},
		{"", "", true},
		{":8081", "", false},
		{"0.0.0.0:8081", "", false},
		{"10.0.0.5:8081", "", false},
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
