package web

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// pageCSP is every page's Content-Security-Policy: scripts, styles and
// frames from the page's own origin only, never inline; no page may frame
// it. The email HTML is framed from its own URL with its own policy
// (frameCSP): a srcdoc frame would inherit this one, which refuses the
// inline styles every email has.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// frameCSP is the policy of an email's HTML shown in a frame: sandboxed
// even when opened on its own (no scripts, an origin of its own, no forms),
// inline styles and data: images only, nothing loaded from anywhere, and
// framed by the admin page alone.
const frameCSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; " +
	"frame-ancestors 'self'; base-uri 'none'; form-action 'none'"

// securityHeaders sets what every answer carries. Referrer-Policy
// same-origin keeps the Origin of the page's own POSTs (no-referrer would
// make browsers send Origin: null) and sends no address elsewhere.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", pageCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// frameHeaders replace the page's policy for an email's HTML.
func frameHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", frameCSP)
	h.Set("X-Frame-Options", "SAMEORIGIN")
	h.Set("Content-Type", "text/html; charset=utf-8")
}

// sameOrigin refuses a POST that a page of another origin sent, before
// anything else looks at it. Browsers name the sending page's origin in
// Origin on every POST (Referer when an old one sends no Origin) and say
// in Sec-Fetch-Site how it relates to this one; a request that names no
// origin at all is refused too, as only a browser may carry the session.
func (s *server) sameOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := checkOrigin(r); err != nil {
			s.Log.Warn("admin page: a cross-origin request refused", "remote", r.RemoteAddr, "path", r.URL.Path, "why", err.Error())
			s.fail(w, r, http.StatusForbidden, "Refused: this form was not sent from the admin page itself ("+err.Error()+").")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func checkOrigin(r *http.Request) error {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return errors.New("Sec-Fetch-Site is " + site)
	}
	origin, from := r.Header.Get("Origin"), "Origin"
	if origin == "" {
		origin, from = r.Header.Get("Referer"), "Referer"
	}
	if origin == "" {
		return errors.New("neither Origin nor Referer says where it came from")
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
		return errors.New(from + " is another origin than " + r.Host)
	}
	return nil
}

// checkCSRF refuses a form without its session's CSRF token, after
// bounding its body to limit bytes.
func (s *server) checkCSRF(limit int64, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		if err := r.ParseForm(); err != nil {
			s.fail(w, r, http.StatusRequestEntityTooLarge, "The form is too large.")
			return
		}
		got, want := r.PostForm.Get("csrf"), sessionOf(r).csrf
		if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
			s.Log.Warn("admin page: a form without its CSRF token refused", "remote", r.RemoteAddr, "path", r.URL.Path)
			s.fail(w, r, http.StatusForbidden, "Refused: the form's security token is missing or out of date. Reload the page and try again.")
			return
		}
		next(w, r)
	}
}
