package web

import (
	"crypto/sha256"
	"crypto/subtle"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
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

// loginLimiter limits failed logins per client address, so a token
// cannot be guessed at speed, and logs them without flooding the log.
type loginLimiter struct {
	mu     sync.Mutex
	byAddr map[string]*loginClient
	now    func() time.Time
}

type loginClient struct {
	lim *rate.Limiter
	// warned is when a refusal for the limit was last logged.
	warned time.Time
}

func newLoginLimiter(now func() time.Time) *loginLimiter {
	return &loginLimiter{byAddr: map[string]*loginClient{}, now: now}
}

// client returns addr's limiter.
func (l *loginLimiter) client(addr string) *loginClient {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.byAddr) >= maxLoginClients {
		for a, c := range l.byAddr {
			if c.lim.TokensAt(now) >= loginBurst {
				delete(l.byAddr, a)
			}
		}
	}
	c := l.byAddr[addr]
	if c == nil {
		c = &loginClient{lim: rate.NewLimiter(rate.Every(loginEvery), loginBurst)}
		l.byAddr[addr] = c
	}
	return c
}

// clientAddr is the request's client address without its port. Behind a
// reverse proxy it is the proxy's, so all its clients share one limit.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
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
	addr := clientAddr(r)
	c := s.logins.client(addr)
	now := s.Now()
	res := c.lim.ReserveN(now, 1)
	if wait := res.DelayFrom(now); wait > 0 {
		res.CancelAt(now)
		s.logins.mu.Lock()
		warn := now.Sub(c.warned) >= time.Minute
		if warn {
			c.warned = now
		}
		s.logins.mu.Unlock()
		if warn {
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
	res.CancelAt(now)
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
