// Package admin is the queue-management side of hookmail: the admin API a
// running hookmail serves, the client the `hookmail queue` commands use,
// and the text they print.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

// MaxPage is the most items one listing page holds, whatever its limit
// asks: a page is built whole in memory, in the serving hookmail, and a
// backlog can hold a million events. Past it, Next is the cursor of the
// rest.
const MaxPage = 1000

// NewHandler serves insp as JSON under /admin/v1/, describing items with
// the rules rules returns (those in force). With a token set, every request
// must carry it as "Authorization: Bearer <token>".
//
//	GET    /admin/v1/stats                              StatsView
//	GET    /admin/v1/events?state=&type=&limit=&after=  PageView (state waiting or dead; at most MaxPage)
//	GET    /admin/v1/events/{id}                        Detail
//	POST   /admin/v1/events/{id}/retry                  due now
//	DELETE /admin/v1/events/{id}                        dropped for good
//	POST   /admin/v1/dead/retry?type=                   every dead letter (of the type) due now
//	GET    /debug/pprof/...                             Go's profiles (net/http/pprof)
func NewHandler(insp relay.Inspector, rules func() *relay.Rules, token config.Secret, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/v1/stats", func(w http.ResponseWriter, r *http.Request) {
		st, err := insp.Stats(r.Context())
		reply(w, ViewStats(st), err)
	})
	mux.HandleFunc("GET /admin/v1/events", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f := relay.Filter{State: relay.State(q.Get("state")), Type: q.Get("type"), After: q.Get("after")}
		if f.State == "" {
			f.State = relay.StateWaiting
		}
		if f.State != relay.StateWaiting && f.State != relay.StateDead {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "state must be waiting or dead"})
			return
		}
		limit, _ := strconv.Atoi(q.Get("limit"))
		f.Limit = MaxPage
		if limit > 0 && limit < MaxPage {
			f.Limit = limit
		}
		page, err := insp.List(r.Context(), f)
		view := PageView{Items: []ItemView{}, Next: page.Next}
		for i := range page.Items {
			view.Items = append(view.Items, ViewItem(&page.Items[i]))
		}
		reply(w, view, err)
	})
	mux.HandleFunc("GET /admin/v1/events/{id}", func(w http.ResponseWriter, r *http.Request) {
		it, err := insp.Get(r.Context(), r.PathValue("id"))
		if err != nil {
			reply(w, nil, err)
			return
		}
		reply(w, Describe(rules(), it), nil)
	})
	mux.HandleFunc("POST /admin/v1/events/{id}/retry", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		err := insp.Requeue(r.Context(), id)
		if err == nil {
			log.Info("event requeued by an operator", "id", id, "remote", r.RemoteAddr)
		}
		reply(w, map[string]any{"requeued": 1}, err)
	})
	mux.HandleFunc("DELETE /admin/v1/events/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		err := insp.Drop(r.Context(), id)
		if err == nil {
			log.Info("event dropped by an operator", "id", id, "remote", r.RemoteAddr)
		}
		reply(w, map[string]any{"dropped": 1}, err)
	})
	mux.HandleFunc("POST /admin/v1/dead/retry", func(w http.ResponseWriter, r *http.Request) {
		n, err := insp.RequeueDead(r.Context(), relay.Filter{Type: r.URL.Query().Get("type")})
		if n > 0 || err == nil { // some may be requeued before an error
			log.Info("dead letters requeued by an operator", "count", n, "remote", r.RemoteAddr)
		}
		reply(w, map[string]any{"requeued": n}, err)
	})
	// Go's profiler, for finding where hookmail's CPU and memory go
	// (bench/README.md shows how to take a profile under load). It is
	// behind the same checks as the queue commands.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not found"})
	})
	want := sha256.Sum256([]byte(token.Reveal()))
	// A web page open on this machine can send requests to the endpoint
	// too. A cross-site POST or DELETE is refused by the browser's own
	// Sec-Fetch-Site or Origin (CrossOriginProtection); any cross-site
	// request lacks AdminHeader, which a browser cannot add without a CORS
	// preflight that is never granted; a DNS-rebinding page arrives with a
	// Host that is not an address.
	sameOrigin := http.NewCrossOriginProtection()
	return sameOrigin.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(AdminHeader) != "1" || (token == "" && !loopbackHost(r.Host)) {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "the admin endpoint answers the hookmail queue commands only"})
			return
		}
		if token != "" {
			got, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			h := sha256.Sum256([]byte(got))
			if subtle.ConstantTimeCompare(h[:], want[:]) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="hookmail admin"`)
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong admin token (admin.token)"})
				return
			}
		}
		ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
		defer cancel()
		mux.ServeHTTP(w, r.WithContext(ctx))
	}))
}

// AdminHeader must be "1" on every admin request; the queue commands set it.
const AdminHeader = "X-Hookmail-Admin"

// loopbackHost reports whether a request's Host names this machine by a
// loopback address or "localhost".
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	return config.IsLoopback(strings.Trim(host, "[]"))
}

// reply answers v, or the error with the status its kind calls for.
func reply(w http.ResponseWriter, v any, err error) {
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, v)
	case errors.Is(err, relay.ErrNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
	case errors.Is(err, relay.ErrBusy):
		writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
	default:
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
	}
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
