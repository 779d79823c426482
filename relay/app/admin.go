package app

import (
	"net/http"
	"strings"

	"github.com/hookmail/hookmail/relay/admin"
	"github.com/hookmail/hookmail/relay/admin/web"
)

// adminHandler serves the admin endpoint: the JSON API of the queue
// commands under /admin/ and Go's profiles under /debug/pprof/, and, with
// admin.token set (a browser logs in with it), the admin page on every
// other path. Without a token the API answers
// everything, as before the page.
func (s *server) adminHandler() (http.Handler, error) {
	b := s.backend
	api := admin.NewHandler(b.Inspector, s.workers.Rules, s.cfg.Admin.Token, s.log)
	if s.cfg.Admin.Token == "" {
		return api, nil
	}
	page, err := web.New(web.Options{
		Inspector: b.Inspector, Digests: b.Digests, Rules: s.workers.Rules, Outcomes: s.workers.Outcomes,
		Reload: s.reloads.Status, Token: s.cfg.Admin.Token, Where: b.Where, Log: s.log,
	})
	if err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The profiles too, behind the API's checks (the README's
		// Profiles): the page has no route for them.
		if strings.HasPrefix(r.URL.Path, "/admin/") || strings.HasPrefix(r.URL.Path, "/debug/pprof/") {
			api.ServeHTTP(w, r)
			return
		}
		page.ServeHTTP(w, r)
	}), nil
}
