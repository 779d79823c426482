// Package pgtest gives each test a Postgres database of its own, on the
// throwaway cluster HOOKMAIL_TEST_POSTGRES_URL names (an admin URL; .ci/run
// starts one). Each database belongs to a new role that is no superuser and
// may only create in the database's public schema, as hookmail's own user
// would be. A test that stops and starts Postgres takes a cluster of its
// own (NewCluster); one that must know which instance held which event
// reads the queue's leases (LeaseReader).
package pgtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL is the variable that names the test cluster.
const EnvURL = "HOOKMAIL_TEST_POSTGRES_URL"

// AdminURL returns the test cluster's admin URL. Without one the test is
// skipped, saying how to run it, or fails under CI (CI set), where a
// skipped Postgres test would hide a broken setup.
func AdminURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	switch {
	case u != "":
		return u
	case os.Getenv("CI") != "":
		t.Fatalf("%s is not set: .ci/run starts a Postgres cluster and sets it", EnvURL)
	default:
		t.Skipf("%s is not set; to run the Postgres tests, start a throwaway cluster with "+
			"`source .ci/postgres.sh && start_test_postgres` (it sets the variable), or set it to an admin URL of one", EnvURL)
	}
	return ""
}

// Database creates a database and a role owning nothing but the right to
// create in its public schema, drops both when the test ends, and returns
// the URL to reach it as that role, with the role's password.
func Database(t testing.TB) string {
	t.Helper()
	return DatabaseOn(t, AdminURL(t))
}

// DatabaseOn is Database on the cluster whose admin URL is admin, such as
// a Cluster of the test's own.
func DatabaseOn(t testing.TB, admin string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := "hookmail_test_" + strings.ToLower(rand.Text()[:12])
	password := "pw-" + rand.Text()
	exec(t, ctx, admin,
		fmt.Sprintf("CREATE ROLE %s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '%s'", name, password),
		"CREATE DATABASE "+name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		exec(t, ctx, admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)", "DROP ROLE IF EXISTS "+name)
	})
	exec(t, ctx, WithDatabase(t, admin, name, "", ""), "GRANT USAGE, CREATE ON SCHEMA public TO "+name)
	return WithDatabase(t, admin, name, name, password)
}

// WithDatabase returns u naming database db, and user and password when
// user is not empty.
func WithDatabase(t testing.TB, u, db, user, password string) string {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatalf("%s does not parse as a URL", EnvURL)
	}
	parsed.Path = "/" + db
	if user != "" {
		parsed.User = url.UserPassword(user, password)
	}
	return parsed.String()
}

// Exec runs statements on the database u names, as its user.
func Exec(t testing.TB, u string, statements ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	exec(t, ctx, u, statements...)
}

func exec(t testing.TB, ctx context.Context, u string, statements ...string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("connect to the test cluster: %v", err)
	}
	defer conn.Close(context.Background())
	for _, s := range statements {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// Lease is a lease on an event as relay/postgres stores it: the holder's
// token ("" when none holds the event) and when it lapses unless extended.
type Lease struct {
	Token   string
	Expires time.Time
}

// LeaseReader reads the leases on the events of a hookmail queue, on a
// connection of its own. A test tells by them which events an instance
// held when it died, as only the living extend their leases.
type LeaseReader struct {
	t    testing.TB
	conn *pgx.Conn
}

// NewLeaseReader connects to the database u names; the connection is
// closed when the test ends.
func NewLeaseReader(t testing.TB, u string) *LeaseReader {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("connect to the test cluster: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return &LeaseReader{t: t, conn: conn}
}

// Read returns the leases on the events ids names, leased or not (an
// event missing from the answer has left the queue), or without ids on
// every leased event.
func (r *LeaseReader) Read(ids ...string) map[string]Lease {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sql, args := "SELECT id, lease_token, lease_expires FROM hookmail_events WHERE NOT dead AND lease_token IS NOT NULL", []any{}
	if len(ids) > 0 {
		sql, args = "SELECT id, coalesce(lease_token, ''), coalesce(lease_expires, 'epoch') FROM hookmail_events WHERE NOT dead AND id = ANY($1)", []any{ids}
	}
	rows, err := r.conn.Query(ctx, sql, args...)
	if err != nil {
		r.t.Fatalf("read the leases: %v", err)
	}
	out := map[string]Lease{}
	var id string
	var l Lease
	if _, err := pgx.ForEachRow(rows, []any{&id, &l.Token, &l.Expires}, func() error {
		out[id] = l
		return nil
	}); err != nil {
		r.t.Fatalf("read the leases: %v", err)
	}
	return out
}
