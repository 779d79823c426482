package postgres

import (
	"cmp"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// redactor keeps queue.postgres.url's secrets out of every error and log
// line the backend makes. pgx's errors may quote a connection string, and
// its own redaction is best effort (an unparsable URL defeats it).
type redactor struct{ secrets []string }

// mask replaces a secret in error text, as config.Secret prints one.
const mask = "<secret>"

var kvPassword = regexp.MustCompile(`password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)`)

// newRedactor finds the secrets in connString: the whole string, a URL's
// user info and password (as written and unescaped), and a key=value
// string's password.
func newRedactor(connString string) *redactor {
	r := &redactor{}
	r.add(connString)
	if _, rest, ok := strings.Cut(connString, "://"); ok {
		// The user info ends at the last @: a password may hold an
		// unescaped one. Taking too much only masks more.
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			userinfo := rest[:at]
			r.add(userinfo)
			if _, pw, ok := strings.Cut(userinfo, ":"); ok {
				r.add(pw)
				if un, err := url.PathUnescape(pw); err == nil {
					r.add(un)
				}
				if un, err := url.QueryUnescape(pw); err == nil {
					r.add(un)
				}
			}
		}
	}
	for _, m := range kvPassword.FindAllStringSubmatch(connString, -1) {
		r.add(m[1])
		r.add(strings.Trim(m[1], "'"))
	}
	return r
}

// add makes s a secret; the longest are replaced first, so a password
// inside the URL does not break up the URL's own match.
func (r *redactor) add(s string) {
	if s == "" || slices.Contains(r.secrets, s) {
		return
	}
	r.secrets = append(r.secrets, s)
	slices.SortFunc(r.secrets, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
}

// text is s with every secret masked.
func (r *redactor) text(s string) string {
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, mask)
	}
	return s
}

// wrap names a database error as the backend's, its text redacted; it
// still unwraps to err, so errors.Is finds context.DeadlineExceeded and
// the like.
func (r *redactor) wrap(err error) error {
	if err == nil {
		return nil
	}
	return &dbError{msg: "postgres: " + r.text(err.Error()), err: err}
}

// dbError is an error from the database, with its text redacted.
type dbError struct {
	msg string
	err error
}

func (e *dbError) Error() string { return e.msg }
func (e *dbError) Unwrap() error { return e.err }
