// Package web is hookmail's admin page: the queue, the dead letters, the
// digests and the routes in a browser, served on the admin endpoint next to
// its JSON API. It is server-rendered html/template with its templates and
// files embedded, a small script that refreshes the overview, and forms that
// work without it. A browser logs in with admin.token and gets a session
// cookie; every form that changes something carries the session's CSRF token
// and must come from the page's own origin.
package web

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/ratelimit"
)

// Options are what the page shows and works on.
type Options struct {
	// Inspector is the queue the page lists and changes.
	Inspector relay.Inspector
	// Digests are the collected digests; nil when the backend keeps none.
	Digests relay.DigestStore
	// Rules returns the rules in force: routes, templates, the config.
	Rules func() *relay.Rules
	// Outcomes sums up the last hour's deliveries (default: none).
	Outcomes func() relay.OutcomeSummary
	// Reload says how the last config load went (default: loaded).
	Reload func() ReloadStatus
	// Token is admin.token, which a browser logs in with; New refuses an
	// empty one.
	Token config.Secret
	// Where names the queue backend, for the overview.
	Where string
	Log   *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// SessionTTL is how long a login lasts (default DefaultSessionTTL).
	SessionTTL time.Duration
}

// ReloadStatus is how the last config load went.
type ReloadStatus struct {
	// OK is false when the last reload was refused, and the config loaded
	// before stays in force.
	OK bool
	// At is when the config was last loaded or a reload refused.
	At time.Time
	// Loaded is when the config in force was loaded.
	Loaded time.Time
	// Trigger says what asked for the last load: start, SIGHUP, file change.
	Trigger string
	// Err says why the last reload was refused.
	Err string
}

// DefaultSessionTTL is how long a login lasts: a working day.
const DefaultSessionTTL = 12 * time.Hour

// requestTimeout bounds the work of one request on the queue.
const requestTimeout = time.Minute

// server is the page's handlers and what they share.
type server struct {
	Options
	sessions *sessions
	logins   *ratelimit.Limiter
	pages    templates
}

// New returns the admin page's handler. It serves every path but the JSON
// API's, which the caller routes to the API.
func New(o Options) (http.Handler, error) {
	switch {
	case o.Token == "":
		return nil, errors.New("the admin page needs admin.token: a browser logs in with it")
	case o.Inspector == nil || o.Rules == nil:
		return nil, errors.New("the admin page needs a queue to inspect and the rules in force")
	}
	if o.Outcomes == nil {
		o.Outcomes = func() relay.OutcomeSummary { return relay.OutcomeSummary{} }
	}
	if o.Reload == nil {
		o.Reload = func() ReloadStatus { return ReloadStatus{OK: true, Trigger: "start"} }
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.SessionTTL = cmp.Or(o.SessionTTL, DefaultSessionTTL)
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &server{Options: o, sessions: newSessions(o.Now, o.SessionTTL), logins: newLoginLimiter(o.Now)}
	var err error
	if s.pages, err = parseTemplates(s.funcs()); err != nil {
		return nil, err
	}
	return s.routes(), nil
}

// routes registers every page and action, each with what guards it: a
// page needs a session; an action needs a session, the page's own origin
// and the session's CSRF token.
func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	page := func(pattern string, h http.HandlerFunc) { mux.Handle("GET "+pattern, s.signedIn(h)) }
	action := func(pattern string, limit int64, h http.HandlerFunc) {
		mux.Handle("POST "+pattern, s.sameOrigin(s.signedIn(s.checkCSRF(limit, h))))
	}
	mux.Handle("GET /static/", http.StripPrefix("/static/", staticFiles()))
	mux.HandleFunc("GET /login", s.loginPage)
	mux.Handle("POST /login", s.sameOrigin(http.HandlerFunc(s.login)))
	action("/logout", smallForm, s.logout)

	page("/{$}", s.overview)
	page("/overview/live", s.overviewLive)
	page("/queue", s.list(false))
	page("/dead", s.list(true))
	action("/dead/retry", smallForm, s.retryDead)
	page("/events/{id}", s.event)
	page("/events/{id}/email.html", s.eventEmail)
	action("/events/{id}/retry", smallForm, s.retry)
	page("/events/{id}/drop", s.dropConfirm)
	action("/events/{id}/drop", smallForm, s.drop)
	page("/routes", s.routesPage)
	action("/routes/try", tryForm, s.try)
	page("/previews/{id}/email.html", s.previewEmail)
	mux.Handle("/", s.signedIn(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, http.StatusNotFound, "There is no such page.")
	}))
	return securityHeaders(withTimeout(mux))
}

// Form bodies are bounded: the try form carries a webhook body, up to
// webhook.max_body_bytes (2 MiB at most) and URL-encoded, three times
// longer at worst; the others a few fields.
const (
	smallForm = 64 << 10
	tryForm   = 3*(2<<20) + smallForm
)

func withTimeout(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
