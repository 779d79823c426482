package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// cookieName is the session cookie's.
const cookieName = "hookmail-admin"

// maxSessions bounds the sessions kept; past it a login ends the oldest.
const maxSessions = 1000

// maxPreviews bounds the email previews a session keeps for its frames.
const maxPreviews = 4

// session is one browser's login. Sessions live in this process's memory
// only: a restart logs everyone out.
type session struct {
	csrf    string
	expires time.Time
	// previews are the HTML of the emails the try form rendered, by id,
	// for the frame that shows them; the oldest go first.
	previews []preview
}

type preview struct{ id, html string }

// sessions are the logins in force, by the SHA-256 of their cookie's
// value, so neither a lookup's timing nor a look at memory gives a cookie
// away.
type sessions struct {
	mu   sync.Mutex
	byID map[[32]byte]*session
	now  func() time.Time
	ttl  time.Duration
}

func newSessions(now func() time.Time, ttl time.Duration) *sessions {
	return &sessions{byID: map[[32]byte]*session{}, now: now, ttl: ttl}
}

// randomToken is 256 random bits, URL-safe.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// start opens a session and returns its cookie's value.
func (ss *sessions) start() (string, *session) {
	id := randomToken()
	sess := &session{csrf: randomToken(), expires: ss.now().Add(ss.ttl)}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	now := ss.now()
	for k, old := range ss.byID {
		if !now.Before(old.expires) {
			delete(ss.byID, k)
		}
	}
	if len(ss.byID) >= maxSessions {
		var oldest [32]byte
		var first *session
		for k, old := range ss.byID {
			if first == nil || old.expires.Before(first.expires) {
				oldest, first = k, old
			}
		}
		delete(ss.byID, oldest)
	}
	ss.byID[sha256.Sum256([]byte(id))] = sess
	return id, sess
}

// get returns the session of a cookie's value, or nil when it is unknown
// or expired.
func (ss *sessions) get(id string) *session {
	key := sha256.Sum256([]byte(id))
	ss.mu.Lock()
	defer ss.mu.Unlock()
	sess := ss.byID[key]
	if sess != nil && !ss.now().Before(sess.expires) {
		delete(ss.byID, key)
		return nil
	}
	return sess
}

// end closes the session of a cookie's value.
func (ss *sessions) end(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.byID, sha256.Sum256([]byte(id)))
}

// keepPreview stores an email's HTML for the session's frame and returns
// its id.
func (ss *sessions) keepPreview(sess *session, html string) string {
	id := randomToken()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	sess.previews = append(sess.previews, preview{id, html})
	if n := len(sess.previews); n > maxPreviews {
		sess.previews = sess.previews[n-maxPreviews:]
	}
	return id
}

// preview returns the HTML the session kept under id.
func (ss *sessions) preview(sess *session, id string) (string, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, p := range sess.previews {
		if p.id == id {
			return p.html, true
		}
	}
	return "", false
}

// cookie is the session cookie: for this page alone (HttpOnly: no script
// reads it; SameSite=Strict: no other site's page or link sends it),
// Secure when the page is served over TLS, and gone when the session
// expires.
func cookie(r *http.Request, value string, expires time.Time, ttl time.Duration) *http.Cookie {
	return &http.Cookie{
		Name: cookieName, Value: value, Path: "/",
		Expires: expires, MaxAge: int(ttl / time.Second),
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	}
}

type sessionKey struct{}

func sessionOf(r *http.Request) *session {
	sess, _ := r.Context().Value(sessionKey{}).(*session)
	return sess
}

// signedIn lets a request with a live session through; without one, a
// page sends the browser to the login form (and back after it), and the
// overview's refresh, which a script fetches, gets 401.
func (s *server) signedIn(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var sess *session
		if c, err := r.Cookie(cookieName); err == nil {
			sess = s.sessions.get(c.Value)
		}
		switch {
		case sess != nil:
			next(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, sess)))
		case r.URL.Path == "/overview/live":
			w.WriteHeader(http.StatusUnauthorized)
		case r.Method == http.MethodGet:
			http.Redirect(w, r, "/login?"+url.Values{"next": {r.URL.RequestURI()}}.Encode(), http.StatusSeeOther)
		default:
			http.Redirect(w, r, "/login", http.StatusSeeOther)
		}
	})
}

// localPath is next when it is a path of this page, else "/": a login
// link must not send the browser to another site.
func localPath(next string) string {
	u, err := url.Parse(next)
	if err != nil || next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.Contains(next, `\`) || u.Host != "" || u.Scheme != "" {
		return "/"
	}
	return next
}
