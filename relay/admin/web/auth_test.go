package web

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestNewNeedsToken(t *testing.T) {
	if _, err := New(Options{}); err == nil || !strings.Contains(err.Error(), "admin.token") {
		t.Fatalf("New without a token: %v, want an error naming admin.token", err)
	}
	if _, err := New(Options{Token: testToken}); err == nil {
		t.Fatal("New without a queue: no error")
	}
}

// TestSignInRequired: without a session every page sends the browser to
// the login form and back, the overview's refresh answers 401, and every
// action does nothing. The style sheet and the script need no session.
func TestSignInRequired(t *testing.T) {
	env := newTestEnv(t)
	env.enqueue(t, "ev-1", "sms", "gateway", map[string]string{"phone": "+1555", "message": "hi"})
	for _, target := range []string{"/", "/queue", "/queue?type=sms&after=x", "/dead", "/events/ev-1", "/events/ev-1/email.html",
		"/events/ev-1/drop", "/routes", "/previews/p/email.html", "/nowhere"} {
		rec := env.get(target)
		want := "/login?" + url.Values{"next": {target}}.Encode()
		if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != want {
			t.Errorf("GET %s signed out: %d to %q, want 303 to %q", target, rec.Code, rec.Header().Get("Location"), want)
		}
	}
	if rec := env.get("/overview/live"); rec.Code != http.StatusUnauthorized {
		t.Errorf("the overview's refresh signed out: %d, want 401", rec.Code)
	}
	for _, target := range []string{"/events/ev-1/retry", "/events/ev-1/drop", "/dead/retry", "/routes/try", "/logout"} {
		rec := env.post(target, url.Values{"csrf": {"anything"}})
		if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/login" {
			t.Errorf("POST %s signed out: %d to %q, want 303 to /login", target, rec.Code, rec.Header().Get("Location"))
		}
	}
	if _, err := env.queue.Get(t.Context(), "ev-1"); err != nil {
		t.Errorf("the event is gone after the actions signed out: %v", err)
	}
	for _, file := range []string{"/static/app.css", "/static/app.js"} {
		if rec := env.get(file); rec.Code != http.StatusOK || rec.Body.Len() == 0 {
			t.Errorf("GET %s signed out: %d, %d bytes", file, rec.Code, rec.Body.Len())
		}
	}
	if rec := env.get("/static/"); rec.Code != http.StatusNotFound {
		t.Errorf("GET /static/: %d, want 404 (no listing)", rec.Code)
	}
	if rec := env.get("/login"); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `<label for="token">Admin token</label>`) {
		t.Errorf("the login form: %d\n%s", rec.Code, rec.Body)
	}
}

// TestLogin: a wrong token is refused and logged (never the token); the
// right one opens a session whose cookie no script reads, no other site
// sends, that expires, and is Secure over TLS; the browser goes back where
// it was sent from, never to another site.
func TestLogin(t *testing.T) {
	env := newTestEnv(t)
	rec := env.serve(env.request(http.MethodPost, "/login", url.Values{"token": {"not-the-token"}, "next": {"/dead"}}))
	if rec.Code != http.StatusUnauthorized || len(rec.Result().Cookies()) != 0 {
		t.Fatalf("a wrong token: %d, cookies %v; want 401 and none", rec.Code, rec.Result().Cookies())
	}
	mustContain(t, "the refusal", rec.Body.String(), "That is not the admin token", `name="next" value="/dead"`)
	mustContain(t, "the log", env.logs.String(), `level=WARN msg="admin page: failed login: wrong token" remote=192.0.2.10`)
	mustNotContain(t, "the log", env.logs.String(), "not-the-token")

	for _, tc := range []struct {
		next, want string
		tls        bool
	}{
		{"/dead?type=sms", "/dead?type=sms", false},
		{"", "/", false},
		{"//evil.example/x", "/", false},
		{"https://evil.example/", "/", false},
		{`/\evil.example`, "/", false},
		{"/events/x", "/events/x", true},
	} {
		r := env.request(http.MethodPost, "/login", url.Values{"token": {testToken}, "next": {tc.next}})
		if tc.tls {
			r.TLS = &tls.ConnectionState{}
		}
		rec := env.serve(r)
		if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != tc.want {
			t.Errorf("login to %q: %d to %q, want 303 to %q", tc.next, rec.Code, rec.Header().Get("Location"), tc.want)
		}
		cookies := rec.Result().Cookies()
		if len(cookies) != 1 {
			t.Fatalf("login set %d cookies", len(cookies))
		}
		c := cookies[0]
		if c.Name != cookieName || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" ||
			c.MaxAge != int(DefaultSessionTTL/time.Second) || c.Secure != tc.tls || len(c.Value) < 40 {
			t.Errorf("the session cookie: %+v; want HttpOnly, SameSite=Strict, Max-Age 12h, Secure=%v, a long value", c, tc.tls)
		}
	}
}

// TestLoginRateLimited: past five failed logins an address waits, right
// token or not, and is logged once a minute; other addresses are not held
// up, and the limit refills.
func TestLoginRateLimited(t *testing.T) {
	env := newTestEnv(t)
	try := func(addr, token string) int {
		r := env.request(http.MethodPost, "/login", url.Values{"token": {token}})
		r.RemoteAddr = addr + ":4000"
		return env.serve(r).Code
	}
	for i := range loginBurst {
		if code := try("198.51.100.7", "guess"); code != http.StatusUnauthorized {
			t.Fatalf("failed login %d: %d, want 401", i+1, code)
		}
	}
	r := env.request(http.MethodPost, "/login", url.Values{"token": {testToken}})
	r.RemoteAddr = "198.51.100.7:4000"
	rec := env.serve(r)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "20" {
		t.Fatalf("the right token past the limit: %d, Retry-After %q; want 429 and 20", rec.Code, rec.Header().Get("Retry-After"))
	}
	mustContain(t, "the refusal", rec.Body.String(), "Too many failed logins from your address. Try again in 20 s.")
	if code := try("198.51.100.7", "guess"); code != http.StatusTooManyRequests {
		t.Errorf("another guess: %d, want 429", code)
	}
	if n := strings.Count(env.logs.String(), "too many failed logins"); n != 1 {
		t.Errorf("the limit logged %d times, want once", n)
	}
	if code := try("198.51.100.8", testToken); code != http.StatusSeeOther {
		t.Errorf("another address: %d, want 303", code)
	}
	// An IPv6 client is its /64: guessing from another of its addresses
	// each time does not pass the limit.
	for i := range loginBurst {
		if code := try(fmt.Sprintf("[2001:db8:0:7::%x]", i+1), "guess"); code != http.StatusUnauthorized {
			t.Fatalf("failed IPv6 login %d: %d, want 401", i+1, code)
		}
	}
	if code := try("[2001:db8:0:7:ffff::1]", "guess"); code != http.StatusTooManyRequests {
		t.Errorf("a guess from yet another address of the /64: %d, want 429", code)
	}
	if code := try("[2001:db8:0:8::1]", testToken); code != http.StatusSeeOther {
		t.Errorf("another /64: %d, want 303", code)
	}
	env.advance(loginEvery)
	if code := try("198.51.100.7", testToken); code != http.StatusSeeOther {
		t.Errorf("after %s: %d, want the login through", loginEvery, code)
	}
	// A right token gives back what it took: logging in again and again
	// never locks out.
	for range 2 * loginBurst {
		if code := try("198.51.100.9", testToken); code != http.StatusSeeOther {
			t.Fatalf("a repeated right login: %d", code)
		}
	}
}

// TestSessionEnds: a session ends when it expires, at logout, and when
// its browser logs in again.
func TestSessionEnds(t *testing.T) {
	env := newTestEnv(t)
	env.login(t)
	if rec := env.get("/queue"); rec.Code != http.StatusOK {
		t.Fatalf("signed in: %d", rec.Code)
	}
	env.advance(DefaultSessionTTL - time.Second)
	if rec := env.get("/queue"); rec.Code != http.StatusOK {
		t.Fatalf("a second before it expires: %d", rec.Code)
	}
	env.advance(time.Second)
	if rec := env.get("/queue"); rec.Code != http.StatusSeeOther {
		t.Errorf("an expired session: %d, want 303 to the login", rec.Code)
	}

	env.login(t)
	rec := env.post("/logout", nil)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/login" {
		t.Fatalf("logout: %d to %q", rec.Code, rec.Header().Get("Location"))
	}
	if c := rec.Result().Cookies(); len(c) != 1 || c[0].MaxAge >= 0 || c[0].Value != "" {
		t.Errorf("logout cookie %+v; want it cleared", c)
	}
	if rec := env.get("/queue"); rec.Code != http.StatusSeeOther {
		t.Errorf("after logout the old cookie still works: %d", rec.Code)
	}

	env.login(t)
	old := env.cookie
	env.login(t) // with the old session's cookie, as a browser sends it
	if env.cookie == old {
		t.Fatal("a second login kept the session")
	}
	env.cookie = old
	if rec := env.get("/queue"); rec.Code != http.StatusSeeOther {
		t.Errorf("the session a new login replaced still works: %d, want 303 to the login", rec.Code)
	}
}
