package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/config/configtest"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/postgres"
	"github.com/hookmail/hookmail/relay/postgres/pgtest"
)

// postgresConfig is testConfig on a database of the test's own.
func postgresConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg := testConfig(t)
	cfg.Queue.Backend = config.BackendPostgres
	cfg.Queue.Postgres.URL = config.Secret(pgtest.Database(t))
	cfg.Queue.Postgres.Poll = 50 * time.Millisecond
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestPostgresBackend: with queue.backend postgres, a webhook is stored in
// the database and delivered; the backend is named by host and database,
// never with the password.
func TestPostgresBackend(t *testing.T) {
	cfg := postgresConfig(t)
	u, _ := url.Parse(cfg.Queue.Postgres.URL.Reveal())
	pw, _ := u.User.Password()
	env := newTestEnv(t, cfg, nil)
	if w := env.backend.Where; !strings.Contains(w, strings.TrimPrefix(u.Path, "/")) || !strings.Contains(w, u.Hostname()) || strings.Contains(w, pw) {
		t.Errorf("Where = %q, want host and database, no password", w)
	}
	if _, ok := env.backend.Queue.(*postgres.Queue); !ok || env.backend.Digests == nil || !env.backend.Shared {
		t.Fatalf("backend %T, digests %v, shared %v", env.backend.Queue, env.backend.Digests, env.backend.Shared)
	}
	srv := httptest.NewServer(env.h)
	defer srv.Close()
	if resp, err := http.Get(srv.URL + "/readyz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", resp, err)
	}
	if rec := env.post(t, "secret="+testSecret+"&type=sms&data%5Bid%5D=7&data%5Bphone%5D=%2B15550001111&data%5Bmessage%5D=hi"); rec.Code != 200 {
		t.Fatalf("webhook: %d %s", rec.Code, rec.Body)
	}
	stop := env.run(t)
	defer stop()
	waitFor(t, "the email in the outbox", func() bool {
		files, _ := filepath.Glob(filepath.Join(cfg.Outbox.Dir, "*.eml"))
		return len(files) == 1
	})
	waitFor(t, "an empty queue", func() bool {
		st, err := env.backend.Queue.Stats(t.Context())
		return err == nil && st.Depth == 0
	})
}

// TestQueueGaugesMarkedShared: on Postgres the gauges that describe the
// queue say queue="shared": every instance reports the same numbers, to be
// aggregated once.
func TestQueueGaugesMarkedShared(t *testing.T) {
	env := newTestEnv(t, withDigestRoute(t, postgresConfig(t)), nil)
	checkQueueMark(t, env.h, "shared")
}

// TestPostgresSchemaForCheck: check reads the schema's version without
// creating it, and says why it cannot when the database is not there.
func TestPostgresSchemaForCheck(t *testing.T) {
	cfg := postgresConfig(t)
	got, err := PostgresSchema(t.Context(), cfg)
	if err != nil || !strings.HasSuffix(got, fmt.Sprintf(": no hookmail queue yet; hookmail serve creates it (postgres schema version %d)", postgres.KnownSchemaVersion())) {
		t.Errorf("before the first start: %q %v", got, err)
	}
	b, err := OpenBackend(cfg, slog.New(slog.DiscardHandler), false)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if got, err := PostgresSchema(t.Context(), cfg); err != nil || !strings.HasSuffix(got, fmt.Sprintf(": postgres schema version %d", postgres.KnownSchemaVersion())) {
		t.Errorf("after: %q %v", got, err)
	}
	closed, _ := url.Parse(cfg.Queue.Postgres.URL.Reveal())
	closed.Host = "127.0.0.1:1"
	path := filepath.Join(t.TempDir(), "url")
	if err := os.WriteFile(path, []byte(closed.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Queue.Postgres.URL, cfg.Queue.Postgres.URLFile = "", path
	if _, err := PostgresSchema(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("a closed port: %v, want connection refused", err)
	}
}

// TestRestartKeysQueue: a changed database URL is named without showing
// either URL.
func TestRestartKeysQueue(t *testing.T) {
	a, b := configtest.Default(t), configtest.Default(t)
	b.Queue.Postgres.URL = "postgres://hookmail:hunter2@db/hookmail"
	b.Queue.LeaseTimeout = time.Minute
	if got := strings.Join(restartKeys(a, b), ","); got != "queue,queue.postgres.url" {
		t.Errorf("restart keys %q", got)
	}
}

// recorder records the emails it is given, for several instances at once.
type recorder struct {
	mu   sync.Mutex
	msgs []*relay.Message
}

func (r *recorder) Send(_ context.Context, m *relay.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m)
	return nil
}

func (r *recorder) sent() []*relay.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// TestPostgresStormAcrossInstances: two instances on one Postgres queue
// count a storm in the same window. 40 SMS from one phone, half through
// each, with storm {threshold: 5, window: 15s}: 5 emails in all, not 5 an
// instance, and one digest listing the other 35 when the window ends. The
// window is real time (the database's clock): 15 s leaves a loaded
// machine ample time to take the 40 in the one window.
func TestPostgresStormAcrossInstances(t *testing.T) {
	cfg := postgresConfig(t)
	cfg.Routes = []config.Route{{Name: "everything-else", To: []string{"ops@example.com"}, Storm: &config.Storm{Threshold: 5, Window: 15 * time.Second}}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	envs := []*testEnv{newTestEnv(t, cfg, rec), newTestEnv(t, cfg, rec)}
	for i := range 40 {
		body := fmt.Sprintf("secret=%s&type=sms&data%%5Bid%%5D=%d&data%%5Bphone%%5D=%%2B15550001111&data%%5Bmessage%%5D=storm+%02d", testSecret, i, i)
		if r := envs[i%2].post(t, body); r.Code != http.StatusOK {
			t.Fatalf("webhook %d: %d %s", i, r.Code, r.Body)
		}
	}
	for _, env := range envs {
		defer env.run(t)()
	}
	for deadline := time.Now().Add(time.Minute); len(rec.sent()) < 6; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d emails after a minute, want 5 and the storm's digest", len(rec.sent()))
		}
	}
	time.Sleep(2 * time.Second) // an instance that also sent the digest would have by now
	msgs := rec.sent()
	if len(msgs) != 6 {
		t.Fatalf("%d emails, want 6", len(msgs))
	}
	listed := regexp.MustCompile(`storm \d\d`).FindAllString(msgs[5].Text, -1)
	if d := msgs[5]; d.Subject != "and 35 more SMS from +15550001111" || len(listed) != 35 {
		t.Errorf("the last email %q lists %d, want the storm's digest of 35", d.Subject, len(listed))
	}
}
