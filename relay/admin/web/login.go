package web

import (
	"crypto/sha256"
	"crypto/subtle"
	"math"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/time/rate"

	"github.com/hookmail/hookmail/relay/ratelimit"
)

// Failed logins are limited per client address: loginBurst at once, then
// one each loginEvery.
const (
	loginBurst = 5
	loginEvery = 20 * time.Second
	// maxLoginClients bounds the addresses remembered; past it those
	// whose limit has refilled are forgotten.
	maxLoginClients = 10000
)

// newLoginLimiter limits failed logins per client address (behind a
// reverse proxy, the proxy's: all its clients share one limit), so a
// token cannot be guessed at speed.
func newLoginLimiter(now func() time.Time) *ratelimit.Limiter {
	return ratelimit.New(rate.Every(loginEvery), loginBurst, maxLoginClients, now)
}

func (s *server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "login", "Log in", loginView{Next: localPath(r.URL.Query().Get("next"))})
}

type loginView struct {
	Next  string
	Error string
}

// login checks the token in constant time and opens a session. Every
// attempt takes one from the client's limit; a right one gives it back.
func (s *server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, smallForm)
	_ = r.ParseForm()
	view := loginView{Next: localPath(r.PostForm.Get("next"))}
	addr, client := ratelimit.ClientIP(r.RemoteAddr), ratelimit.ClientNet(r.RemoteAddr)
	giveBack, wait := s.logins.Take(client)
	if wait > 0 {
		if s.logins.Warn(client, time.Minute) {
			s.Log.Warn("admin page: login refused: too many failed logins from this address", "remote", addr, "retry_after", wait.Round(time.Second).String())
		}
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		view.Error = "Too many failed logins from your address. Try again in " + strconv.Itoa(secs) + " s."
		s.render(w, r, http.StatusTooManyRequests, "login", "Log in", view)
		return
	}
	got := sha256.Sum256([]byte(r.PostForm.Get("token")))
	want := sha256.Sum256([]byte(s.Token.Reveal()))
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		s.Log.Warn("admin page: failed login: wrong token", "remote", addr)
		view.Error = "That is not the admin token (admin.token)."
		s.render(w, r, http.StatusUnauthorized, "login", "Log in", view)
		return
	}
	giveBack()
	// The session the browser had, if any, ends: a login never leaves
	// two sessions of one browser open, one of them forgotten.
	if c, err := r.Cookie(cookieName); err == nil {
		s.sessions.end(c.Value)
	}
	id, sess := s.sessions.start()
	http.SetCookie(w, cookie(r, id, sess.expires, s.SessionTTL))
	s.Log.Info("admin page: logged in", "remote", addr)
	http.Redirect(w, r, view.Next, http.StatusSeeOther)
}

func (s *server) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(cookieName); err == nil {
		s.sessions.end(c.Value)
	}
	gone := cookie(r, "", time.Unix(0, 0), 0)
	gone.MaxAge = -1
	http.SetCookie(w, gone)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
