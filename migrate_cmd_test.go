package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/admin"
	"github.com/hookmail/hookmail/relay/postgres/pgtest"
	"github.com/hookmail/hookmail/relay/spool"
)

// TestQueueMigrateToPostgres: `queue migrate --to postgres` moves a
// stopped spool's waiting events, dead letters, dedup keys and digests
// into Postgres while queue.backend is still spool, says what it moved and
// that the spool file is left; run again, it moves nothing and says all
// was there. The database password shows nowhere.
func TestQueueMigrateToPostgres(t *testing.T) {
	dbURL := pgtest.Database(t)
	u, _ := url.Parse(dbURL)
	pw, _ := u.User.Password()
	dir := t.TempDir()
	s, err := spool.Open(dir, spool.WithDedupWindow(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		ev := &relay.Event{ID: fmt.Sprintf("ev-%d", i), Source: "gateway", Type: "sms", Received: time.Now(),
			Data: map[string]string{"id": fmt.Sprint(i), "phone": "+15550001", "message": "hi"}, DedupKey: fmt.Sprintf("key-%d", i)}
		if err := s.Enqueue(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	l, err := s.Lease(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Bury(t.Context(), l, "permanent error: 550 no such user", relay.Progress{Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	daily := &config.Route{Name: "daily", To: []string{"ops@example.com"}}
	if err := s.Collect(t.Context(), daily, &relay.Event{ID: "collected-1", Source: "gateway", Type: "sms", Received: time.Now()}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	env := map[string]string{"HOOKMAIL_SPOOL_DIR": dir, "HOOKMAIL_QUEUE_POSTGRES_URL": dbURL}
	hm := func(args ...string) (stdout, stderr string, err error) {
		t.Helper()
		var out, errOut bytes.Buffer
		err = run(t.Context(), args, envFunc(env), nil, &out, &errOut)
		if err != nil {
			errOut.WriteString(err.Error())
		}
		if strings.Contains(out.String()+errOut.String(), pw) {
			t.Errorf("%v printed the database password:\n%s%s", args, out.String(), errOut.String())
		}
		return out.String(), errOut.String(), err
	}
	stdout, stderr, err := hm("queue", "migrate", "--to", "postgres")
	t.Logf("first run:\n%s%s", stderr, stdout)
	spoolFile := filepath.Join(dir, spool.File)
	if err != nil ||
		!strings.Contains(stdout, "moved 2 waiting, 1 dead, 3 dedup keys, 1 digest entries; already there: 0 waiting, 0 dead, 0 dedup keys, 0 digest entries\n") ||
		!strings.Contains(stdout, "the spool file "+spoolFile+" is left as it was") {
		t.Fatalf("first run: %v\n%s%s", err, stderr, stdout)
	}
	for _, line := range []string{"waiting events: 2 of 2 read, 2 moved, 0 already there", "dead letters: 1 of 1 read, 1 moved",
		"dedup keys: 3 of 3 read, 3 moved", "digest entries: 1 of 1 read, 1 moved", "postgres database \"" + strings.TrimPrefix(u.Path, "/") + "\""} {
		if !strings.Contains(stderr, line) {
			t.Errorf("the progress does not say %q:\n%s", line, stderr)
		}
	}
	stdout, stderr, err = hm("queue", "migrate", "--to", "postgres")
	if err != nil || !strings.Contains(stdout, "moved 0 waiting, 0 dead, 0 dedup keys, 0 digest entries; already there: 2 waiting, 1 dead, 3 dedup keys, 1 digest entries\n") {
		t.Errorf("second run: %v\n%s%s", err, stderr, stdout)
	}

	env["HOOKMAIL_QUEUE_BACKEND"] = "postgres"
	stdout, stderr, err = hm("queue", "stats", "--json")
	var st admin.StatsView
	if err != nil || json.Unmarshal([]byte(stdout), &st) != nil || st.Depth != 2 || st.Dead != 1 {
		t.Errorf("stats on Postgres after two migrations: %v\n%s%s", err, stderr, stdout)
	}
}

// TestQueueMigrateRefusesARunningHookmail: while hookmail runs on the
// spool, migrate fails at once saying to stop it first; without a
// database URL, or with one it cannot reach, it fails naming
// queue.postgres.url, never showing the password.
func TestQueueMigrateRefusesARunningHookmail(t *testing.T) {
	dir := t.TempDir()
	dbURL := pgtest.Database(t)
	closed, _ := url.Parse(dbURL)
	pw, _ := closed.User.Password()
	closed.Host = "127.0.0.1:1"
	env := map[string]string{
		"HOOKMAIL_WEBHOOK_SECRETS": testSecret,
		"HOOKMAIL_SPOOL_DIR":       filepath.Join(dir, "data"),
		"HOOKMAIL_OUTBOX_DIR":      filepath.Join(dir, "outbox"),
	}
	migrate := func(extra map[string]string) (string, error) {
		t.Helper()
		e := maps.Clone(env)
		maps.Copy(e, extra)
		var out bytes.Buffer
		err := run(t.Context(), []string{"queue", "migrate", "--to", "postgres"}, envFunc(e), nil, &out, &out)
		if err != nil {
			out.WriteString(err.Error())
		}
		return out.String(), err
	}
	_, _, stop := startServe(t, env)
	start := time.Now()
	out, err := migrate(map[string]string{"HOOKMAIL_QUEUE_POSTGRES_URL": dbURL})
	t.Logf("with hookmail running: %s", out)
	if err == nil || !strings.Contains(out, "in use by a running hookmail") || !strings.Contains(out, "stop hookmail first") {
		t.Errorf("with hookmail running: %v\n%s", err, out)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s to give up on a running hookmail", d)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		url, want string
	}{
		"no url":      {"", "queue.postgres.url: is empty"},
		"closed port": {closed.String(), "queue.postgres.url: postgres: "},
	} {
		out, err := migrate(map[string]string{"HOOKMAIL_QUEUE_POSTGRES_URL": tc.url})
		if err == nil || !strings.Contains(out, tc.want) || strings.Contains(out, pw) {
			t.Errorf("%s: %v\n%s\nwant it to say %q, without the password", name, err, out, tc.want)
		}
	}
}
