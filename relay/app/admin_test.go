package app

import (
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay/admin"
)

// TestAdminPageOnAdminEndpointOnly: with admin.token the admin endpoint
// serves the page next to the API the queue commands use, on either queue
// backend, and shows the last reload; the webhook port never serves it;
// without a token the endpoint is the API alone, as before.
func TestAdminPageOnAdminEndpointOnly(t *testing.T) {
	t.Run("spool", func(t *testing.T) { testAdminPage(t, testConfig(t)) })
	t.Run("postgres", func(t *testing.T) { testAdminPage(t, postgresConfig(t)) })

	cfg := testConfig(t)
	cfg.Admin.Listen = "127.0.0.1:0"
	h, err := newTestEnv(t, cfg, nil).s.adminHandler()
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "hookmail queue commands only") {
		t.Errorf("without a token: %d %s, want the API's 403", rec.Code, rec.Body)
	}
}

func testAdminPage(t *testing.T, cfg *config.Config) {
	cfg.Admin.Listen, cfg.Admin.Token = "127.0.0.1:0", "app-test-admin-token-0123456789"
	env := newTestEnv(t, cfg, nil)
	env.s.opts.Load = func() (*config.Config, error) { return nil, errors.New("routes[0].to: nobody is not an address") }
	h, err := env.s.adminHandler()
	if err != nil {
		t.Fatal(err)
	}
	serve := func(h http.Handler, r *http.Request, cookies ...*http.Cookie) *httptest.ResponseRecorder {
		r.Host = "127.0.0.1:9090"
		for _, c := range cookies {
			r.AddCookie(c)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	for _, path := range []string{"/", "/login", "/queue", "/static/app.css"} {
		if rec := serve(env.h, httptest.NewRequest(http.MethodGet, path, nil)); rec.Code != http.StatusNotFound {
			t.Errorf("the webhook port's %s: %d, want 404", path, rec.Code)
		}
	}
	if rec := serve(h, httptest.NewRequest(http.MethodGet, "/queue", nil)); rec.Code != http.StatusSeeOther {
		t.Errorf("the page signed out: %d, want 303 to the login", rec.Code)
	}
	api := httptest.NewRequest(http.MethodGet, "/admin/v1/stats", nil)
	api.Header.Set(admin.AdminHeader, "1")
	api.Header.Set("Authorization", "Bearer "+cfg.Admin.Token.Reveal())
	if rec := serve(h, api); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"depth":0`) {
		t.Errorf("the API next to the page: %d %s", rec.Code, rec.Body)
	}
	// The profiles, behind the API's checks, as the README's Profiles says.
	prof := httptest.NewRequest(http.MethodGet, "/debug/pprof/heap?debug=1", nil)
	prof.Header.Set(admin.AdminHeader, "1")
	prof.Header.Set("Authorization", "Bearer "+cfg.Admin.Token.Reveal())
	if rec := serve(h, prof); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "heap profile") {
		t.Errorf("a profile with the token: %d %.200s", rec.Code, rec.Body)
	}
	if rec := serve(h, httptest.NewRequest(http.MethodGet, "/debug/pprof/heap?debug=1", nil)); rec.Code == http.StatusOK {
		t.Errorf("a profile without the token: %d, want it refused", rec.Code)
	}

	login := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(url.Values{"token": {cfg.Admin.Token.Reveal()}}.Encode()))
	login.Header.Set("Content-Type", formType)
	login.Header.Set("Origin", "http://127.0.0.1:9090")
	rec := serve(h, login)
	cookies := rec.Result().Cookies()
	if rec.Code != http.StatusSeeOther || len(cookies) != 1 {
		t.Fatalf("login: %d, cookies %v", rec.Code, cookies)
	}
	env.s.reload("SIGHUP")
	rec = serve(h, httptest.NewRequest(http.MethodGet, "/", nil), cookies...)
	for _, want := range []string{"The last reload (SIGHUP,", "routes[0].to: nobody is not an address", env.backend.Where} {
		if !strings.Contains(rec.Body.String(), html.EscapeString(want)) {
			t.Errorf("the overview lacks %q:\n%s", want, rec.Body)
		}
	}
	for i, phone := range []string{"%2B15550001111", "%2B639760713666"} {
		if rec := env.post(t, fmt.Sprintf("secret=%s&type=sms&data%%5Bid%%5D=%d&data%%5Bphone%%5D=%s&data%%5Bmessage%%5D=hi", testSecret, i, phone)); rec.Code != 200 {
			t.Fatalf("webhook: %d %s", rec.Code, rec.Body)
		}
	}
	rec = serve(h, httptest.NewRequest(http.MethodGet, "/queue?text=63976", nil), cookies...)
	if n := strings.Count(rec.Body.String(), `<a href="/events/`); rec.Code != http.StatusOK || n != 1 || !strings.Contains(rec.Body.String(), "&#43;639760713666") {
		t.Errorf("the queue filtered by a phone number lists %d events:\n%s", n, rec.Body)
	}
}
