package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestActionsNeedCSRFAndSameOrigin: every action is refused with 403, and
// changes nothing, without the session's CSRF token, with another's, or
// sent from a page of another origin (by Origin, by Referer when there is
// no Origin, by Sec-Fetch-Site), or naming no origin at all.
func TestActionsNeedCSRFAndSameOrigin(t *testing.T) {
	env := newTestEnv(t)
	env.enqueue(t, "ev-dead", "sms", "gateway", map[string]string{"phone": "+1555", "message": "hi"})
	env.settle(t, "ev-dead")
	env.login(t)
	other := newTestEnv(t) // another session's token
	other.login(t)

	actions := []struct {
		target string
		form   url.Values
	}{
		{"/events/ev-dead/retry", nil},
		{"/events/ev-dead/drop", nil},
		{"/dead/retry", nil},
		{"/routes/try", url.Values{"type": {"sms"}}},
		{"/logout", nil},
	}
	refusals := []struct {
		name string
		// formEdit changes the form, edit the request.
		formEdit func(form url.Values)
		edit     func(r *http.Request)
		why      string
	}{
		{name: "no CSRF token", formEdit: func(f url.Values) { f.Del("csrf") }, why: "security token is missing"},
		{name: "a wrong CSRF token", formEdit: func(f url.Values) { f.Set("csrf", "x"+env.csrf[1:]) }, why: "security token is missing"},
		{name: "another session's CSRF token", formEdit: func(f url.Values) { f.Set("csrf", other.csrf) }, why: "security token is missing"},
		{name: "another origin", edit: func(r *http.Request) {
			r.Header.Set("Origin", "http://evil.example")
			r.Header.Del("Sec-Fetch-Site")
		}, why: "Origin is another origin than admin.test:9090"},
		{name: "another port", edit: func(r *http.Request) {
			r.Header.Set("Origin", "http://admin.test:8080")
			r.Header.Del("Sec-Fetch-Site")
		}, why: "Origin is another origin"},
		{name: "Origin null", edit: func(r *http.Request) {
			r.Header.Set("Origin", "null")
			r.Header.Del("Sec-Fetch-Site")
		}, why: "Origin is another origin"},
		{name: "another site, by Sec-Fetch-Site", edit: func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "cross-site") }, why: "Sec-Fetch-Site is cross-site"},
		{name: "the same site, another origin", edit: func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "same-site") }, why: "Sec-Fetch-Site is same-site"},
		{name: "another origin by Referer", edit: func(r *http.Request) {
			r.Header.Del("Origin")
			r.Header.Del("Sec-Fetch-Site")
			r.Header.Set("Referer", "http://evil.example/page")
		}, why: "Referer is another origin"},
		{name: "no origin at all", edit: func(r *http.Request) {
			r.Header.Del("Origin")
			r.Header.Del("Sec-Fetch-Site")
		}, why: "neither Origin nor Referer"},
	}
	for _, a := range actions {
		for _, rf := range refusals {
			form := url.Values{"csrf": {env.csrf}}
			for k, v := range a.form {
				form[k] = v
			}
			if rf.formEdit != nil {
				rf.formEdit(form)
			}
			r := env.request(http.MethodPost, a.target, form)
			if rf.edit != nil {
				rf.edit(r)
			}
			rec := env.serve(r)
			if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), rf.why) {
				t.Errorf("POST %s with %s: %d, want 403 saying %q\n%s", a.target, rf.name, rec.Code, rf.why, rec.Body)
			}
		}
	}
	it, err := env.queue.Get(t.Context(), "ev-dead")
	if err != nil || it.State != "dead" {
		t.Fatalf("after the refused actions the dead letter is %+v, %v; want it untouched", it, err)
	}
	if rec := env.get("/queue"); rec.Code != http.StatusOK {
		t.Errorf("the refused logout logged out: %d", rec.Code)
	}
	mustContain(t, "the log", env.logs.String(), "admin page: a cross-origin request refused", "admin page: a form without its CSRF token refused")

	// A browser that sends Referer but no Origin, from the page itself.
	r := env.request(http.MethodPost, "/events/ev-dead/retry", url.Values{"csrf": {env.csrf}})
	r.Header.Del("Origin")
	r.Header.Del("Sec-Fetch-Site")
	r.Header.Set("Referer", testOrigin+"/events/ev-dead")
	if rec := env.serve(r); rec.Code != http.StatusSeeOther {
		t.Errorf("a same-origin POST by Referer: %d, want it through\n%s", rec.Code, rec.Body)
	}
	// A login from another origin is refused too, before the token is
	// looked at.
	r = env.request(http.MethodPost, "/login", url.Values{"token": {testToken}})
	r.Header.Set("Origin", "http://evil.example")
	r.Header.Del("Sec-Fetch-Site")
	if rec := env.serve(r); rec.Code != http.StatusForbidden || len(rec.Result().Cookies()) != 0 {
		t.Errorf("a cross-origin login: %d, cookies %v; want 403 and none", rec.Code, rec.Result().Cookies())
	}
}

// TestSecurityHeaders: every answer carries the page's policy (scripts and
// styles of its own origin only, never framed), nosniff and the referrer
// policy that keeps Origin; an email's HTML carries a sandboxing policy
// of its own.
func TestSecurityHeaders(t *testing.T) {
	env := newTestEnv(t)
	env.enqueue(t, "ev-1", "sms", "gateway", map[string]string{"phone": "+1555", "message": "hi"})
	env.login(t)
	for _, target := range []string{"/", "/overview/live", "/queue", "/dead", "/events/ev-1", "/events/ev-1/drop", "/routes", "/login", "/nowhere", "/events/nope"} {
		rec := env.get(target)
		h := rec.Header()
		if h.Get("Content-Security-Policy") != pageCSP || h.Get("X-Content-Type-Options") != "nosniff" ||
			h.Get("Referrer-Policy") != "same-origin" || h.Get("X-Frame-Options") != "DENY" || h.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s (%d): headers %v", target, rec.Code, h)
		}
	}
	for _, directive := range []string{"script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "default-src 'none'"} {
		if !strings.Contains(pageCSP, directive+";") && !strings.HasSuffix(pageCSP, directive) {
			t.Errorf("the page's policy lacks %s", directive)
		}
	}
	mustNotContain(t, "the page's policy", pageCSP, "unsafe")
	rec := env.get("/events/ev-1/email.html")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Security-Policy") != frameCSP || rec.Header().Get("X-Frame-Options") != "SAMEORIGIN" {
		t.Errorf("the email frame: %d, headers %v", rec.Code, rec.Header())
	}
	if !strings.HasPrefix(frameCSP, "sandbox;") || strings.Contains(frameCSP, "script") || strings.Contains(frameCSP, "allow-") {
		t.Errorf("the frame's policy %q must sandbox, and allow no script", frameCSP)
	}
}
