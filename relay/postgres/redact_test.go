package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/postgres"
	"github.com/hookmail/hookmail/relay/postgres/pgtest"
)

// logSink collects log lines.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func newLogSink() *logSink { return &logSink{} }

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func (s *logSink) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (s *logSink) waitFor(t *testing.T, text string) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("the log says %q", text), func() bool { return strings.Contains(s.String(), text) })
}

// password is the password in a URL pgtest.Database made.
func password(t *testing.T, dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	pw, ok := u.User.Password()
	if !ok || len(pw) < 10 {
		t.Fatalf("the test URL has no password")
	}
	return pw
}

// TestPasswordNeverShown: no error and no log line quotes the URL's
// password, whether the URL does not parse, the password is wrong, the
// database is not there, or it goes away while hookmail runs.
func TestPasswordNeverShown(t *testing.T) {
	dbURL := pgtest.Database(t)
	pw := password(t, dbURL)
	secret := "s3cr3t-" + pw[3:] // like the real one, and wrong
	wrong := strings.Replace(dbURL, pw, secret, 1)
	// Nothing listens on port 1 (tcpmux): a port released by the test
	// could be taken by another test's connection meanwhile.
	closedAddr := "127.0.0.1:1"
	host, port, _ := net.SplitHostPort(closedAddr)
	for name, tc := range map[string]struct{ url, want string }{
		"wrong password":    {wrong, "password authentication failed"},
		"closed port":       {strings.Replace(dbURL, mustHost(t, dbURL), closedAddr, 1), "connection refused"},
		"bad port":          {"postgres://hookmail:" + secret + "@127.0.0.1:notaport/hookmail", "queue.postgres.url is not a connection URL"},
		"unescaped @":       {"postgres://hookmail:" + secret + "@x@127.0.0.1:" + port + "/hookmail?sslmode=disable", "postgres: "},
		"bad escape":        {"postgres://hookmail:" + secret + "%zz@127.0.0.1/hookmail", "queue.postgres.url is not a connection URL"},
		"key=value":         {"host=" + host + " port=" + port + " user=hookmail password=" + secret + " sslmode=disable", "connection refused"},
		"key=value quoted":  {"host=" + host + " port=notaport password='" + secret + "'", "queue.postgres.url is not a connection URL"},
		"unknown parameter": {"postgres://hookmail:" + secret + "@127.0.0.1/hookmail?default_query_exec_mode=fast", "queue.postgres.url is not a connection URL"},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			_, err := postgres.Open(ctx, tc.url)
			t.Logf("open: %v", err)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("open: %v, want an error saying %q", err, tc.want)
			}
			_, _, checkErr := postgres.ReadSchemaVersion(ctx, tc.url)
			for _, e := range []error{err, checkErr} {
				if e == nil {
					continue
				}
				for _, text := range []string{e.Error(), fmt.Sprintf("%v", e), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e)} {
					if strings.Contains(text, secret) || strings.Contains(text, url.QueryEscape(secret)) {
						t.Errorf("an error shows the password: %s", text)
					}
				}
			}
		})
	}

	// Running, then the database goes away: every answer and log line.
	p := startProxy(t, dbURL)
	logs := newLogSink()
	q := open(t, p.url(dbURL), postgres.WithLogger(logs.logger()))
	defer q.Close()
	if strings.Contains(q.Where(), pw) || !strings.Contains(q.Where(), "hookmail_test_") {
		t.Errorf("Where() = %q, want the database named without the password", q.Where())
	}
	p.stop()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	add(q.Ready(ctx))
	add(q.Enqueue(ctx, testEvent(1)))
	_, err := q.Stats(ctx)
	add(err)
	_, err = q.Lease(ctx)
	add(err)
	_, err = q.Get(ctx, "x")
	add(err)
	_, err = q.List(ctx, relay.Filter{})
	add(err)
	_, err = q.ClaimDigest(ctx, "r", time.Second)
	add(err)
	add(q.Collect(ctx, &config.Route{Name: "r"}, testEvent(1)))
	logs.waitFor(t, "no LISTEN connection")
	for _, err := range errs {
		if err == nil || strings.Contains(err.Error(), pw) || strings.Contains(fmt.Sprintf("%+v", err), pw) {
			t.Errorf("an error while the database is away: %v; want one, without the password", err)
		}
	}
	if strings.Contains(logs.String(), pw) {
		t.Errorf("the log shows the password:\n%s", logs)
	}
}

func mustHost(t *testing.T, dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}
