package relay

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hookmail/hookmail/config"
)

// ItemDetail is what `hookmail queue show` prints: the item with its history,
// the route that takes it, and the email it renders to now.
type ItemDetail struct {
	Item  Item   `json:"item"`
	Route string `json:"route,omitempty"`
	// Email is the whole message as it would be sent now (RFC 5322).
	Email string `json:"email,omitempty"`
	// RenderError says why no email could be made, when none could.
	RenderError string `json:"render_error,omitempty"`
}

// Describer renders an item for ItemDetail with the config in force.
type Describer struct {
	Renderer *Renderer
	Router   *Router
	From     string
}

// describer is a Describer on the live config, read at each call.
func (r *Relay) describer(it *Item) *ItemDetail {
	return r.live.Load().describer().Describe(it)
}

// Describe fills in the route and email of it.
func (d Describer) Describe(it *Item) *ItemDetail {
	out := &ItemDetail{Item: *it}
	route := d.Router.Match(&it.Event)
	if route == nil {
		out.RenderError = "no route takes this event"
		return out
	}
	out.Route = route.Name
	msg, err := d.Renderer.Render(&it.Event, route, d.From)
	var raw []byte
	if err == nil {
		raw, err = msg.Encode()
	}
	if err != nil {
		out.RenderError = err.Error()
		return out
	}
	out.Email = string(raw)
	return out
}

// AdminHandler serves the queue-management API the `hookmail queue`
// commands use while hookmail runs. It is nil when the queue offers no
// Inspector.
func (r *Relay) AdminHandler() http.Handler {
	insp, ok := r.queue.(Inspector)
	if !ok {
		return nil
	}
	return NewAdminHandler(insp, r.describer, r.cfg.Admin.Token, r.log)
}

// NewAdminHandler serves insp as JSON under /admin/v1/. With a token set,
// every request must carry it as "Authorization: Bearer <token>".
//
//	GET    /admin/v1/stats                 Stats
//	GET    /admin/v1/events?state=&limit=  []Item (state waiting or dead)
//	GET    /admin/v1/events/{id}           ItemDetail
//	POST   /admin/v1/events/{id}/retry     due now
//	DELETE /admin/v1/events/{id}           dropped for good
//	POST   /admin/v1/dead/retry            every dead letter due now
func NewAdminHandler(insp Inspector, describe func(*Item) *ItemDetail, token config.Secret, log interface {
	Info(string, ...any)
}) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/v1/stats", func(w http.ResponseWriter, r *http.Request) {
		st, err := insp.Stats(r.Context())
		adminReply(w, st, err)
	})
	mux.HandleFunc("GET /admin/v1/events", func(w http.ResponseWriter, r *http.Request) {
		state := State(r.URL.Query().Get("state"))
		if state == "" {
			state = StateWaiting
		}
		if state != StateWaiting && state != StateDead {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "state must be waiting or dead"})
			return
		}
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		items, err := insp.List(r.Context(), state, max(limit, 0))
		if items == nil {
			items = []Item{}
		}
		adminReply(w, items, err)
	})
	mux.HandleFunc("GET /admin/v1/events/{id}", func(w http.ResponseWriter, r *http.Request) {
		it, err := insp.Get(r.Context(), r.PathValue("id"))
		if err != nil {
			adminReply(w, nil, err)
			return
		}
		adminReply(w, describe(it), nil)
	})
	mux.HandleFunc("POST /admin/v1/events/{id}/retry", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		err := insp.Requeue(r.Context(), id)
		if err == nil {
			log.Info("event requeued by an operator", "id", id, "remote", r.RemoteAddr)
		}
		adminReply(w, map[string]any{"requeued": 1}, err)
	})
	mux.HandleFunc("DELETE /admin/v1/events/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		err := insp.Drop(r.Context(), id)
		if err == nil {
			log.Info("event dropped by an operator", "id", id, "remote", r.RemoteAddr)
		}
		adminReply(w, map[string]any{"dropped": 1}, err)
	})
	mux.HandleFunc("POST /admin/v1/dead/retry", func(w http.ResponseWriter, r *http.Request) {
		n, err := insp.RequeueDead(r.Context())
		if err == nil {
			log.Info("dead letters requeued by an operator", "count", n, "remote", r.RemoteAddr)
		}
		adminReply(w, map[string]any{"requeued": n}, err)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not found"})
	})
	want := sha256.Sum256([]byte(token.Reveal()))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Only the queue commands may call: a web page open on this machine
		// can send requests to loopback too. A browser adds Origin to
		// cross-site requests and cannot add AdminHeader without a CORS
		// preflight, which is never granted; a DNS-rebinding page also
		// arrives with a Host that is not an address.
		if r.Header.Get("Origin") != "" || r.Header.Get(AdminHeader) != "1" || (token == "" && !loopbackHost(r.Host)) {
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
	})
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

// adminReply answers v, or the error with the status its kind calls for.
func adminReply(w http.ResponseWriter, v any, err error) {
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, v)
	case errors.Is(err, ErrNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
	case errors.Is(err, ErrBusy):
		writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
	default:
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
	}
}
