package main

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/hookmail/hookmail/relay/postgres"
	"github.com/hookmail/hookmail/relay/postgres/pgtest"
)

// TestCheckConnectsToPostgres: with queue.backend postgres, check connects
// and prints the schema's version, or fails saying why it cannot connect;
// the URL's password shows in neither.
func TestCheckConnectsToPostgres(t *testing.T) {
	dbURL := pgtest.Database(t)
	u, _ := url.Parse(dbURL)
	pw, _ := u.User.Password()
	closed := *u
	closed.Host = "127.0.0.1:1"
	for name, tc := range map[string]struct {
		url, want string
		fails     bool
	}{
		"reachable":   {dbURL, fmt.Sprintf("no hookmail queue yet; hookmail serve creates it (postgres schema version %d)", postgres.KnownSchemaVersion()), false},
		"closed port": {closed.String(), "queue.postgres.url: postgres: failed to connect to", true},
	} {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			env := envFunc(map[string]string{"HOOKMAIL_WEBHOOK_SECRETS": testSecret,
				"HOOKMAIL_QUEUE_BACKEND": "postgres", "HOOKMAIL_QUEUE_POSTGRES_URL": tc.url})
			err := run(t.Context(), []string{"check"}, env, nil, &stdout, &stderr)
			said := stderr.String() // main prints run's error there
			if err != nil {
				said += err.Error()
			}
			if (err != nil) != tc.fails || !strings.Contains(said, tc.want) {
				t.Errorf("check: %v, stderr:\n%s\nwant it to say %q", err, stderr.String(), tc.want)
			}
			if out := stdout.String() + said; strings.Contains(out, pw) {
				t.Errorf("check printed the database password:\n%s", out)
			}
		})
	}
}
