package postgres_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/hookmail/hookmail/relay/postgres"
	"github.com/hookmail/hookmail/relay/postgres/pgtest"
)

// TestSchemaConcurrentOpens: instances starting at once on an empty
// database take turns at the migration; each finds the schema current, it
// is applied once, and a role that may only create in the schema suffices.
func TestSchemaConcurrentOpens(t *testing.T) {
	url := pgtest.Database(t)
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	qs := make([]*postgres.Queue, n)
	for i := range n {
		wg.Go(func() { qs[i], errs[i] = postgres.Open(t.Context(), url) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		defer qs[i].Close()
		if v := qs[i].SchemaVersion(); v != postgres.KnownSchemaVersion() {
			t.Errorf("open %d left schema version %d, want %d", i, v, postgres.KnownSchemaVersion())
		}
	}
	var applied int
	var super bool
	query(t, url, "SELECT count(*) FROM hookmail_schema_migrations", &applied)
	query(t, url, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user", &super)
	if applied != postgres.KnownSchemaVersion() || super {
		t.Errorf("%d versions recorded, want %d; superuser %v, want false", applied, postgres.KnownSchemaVersion(), super)
	}
	if v, _, err := postgres.ReadSchemaVersion(t.Context(), url); v != postgres.KnownSchemaVersion() || err != nil {
		t.Errorf("ReadSchemaVersion: %d %v", v, err)
	}
}

// TestNewerSchemaRefused: a database a later hookmail migrated is refused
// at open and by check, naming both versions and what to do.
func TestNewerSchemaRefused(t *testing.T) {
	url := pgtest.Database(t)
	open(t, url).Close()
	newer := postgres.KnownSchemaVersion() + 1
	pgtest.Exec(t, url, fmt.Sprintf("INSERT INTO hookmail_schema_migrations (version, name) VALUES (%d, 'from_the_future')", newer))
	want := fmt.Sprintf("the database's queue schema is version %d, newer than this hookmail knows (%d): "+
		"upgrade hookmail to the version that migrated it, or point queue.postgres.url at another database", newer, postgres.KnownSchemaVersion())
	_, err := postgres.Open(t.Context(), url)
	if err == nil || !strings.HasPrefix(err.Error(), "postgres: cannot open the queue in postgres database ") || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("open a newer schema: %v\nwant it to end %q", err, want)
	}
	if v, _, err := postgres.ReadSchemaVersion(t.Context(), url); v != newer || err == nil || err.Error() != "postgres: "+want {
		t.Errorf("ReadSchemaVersion of a newer schema: %d %v", v, err)
	}
}

// TestMustExistChangesNothing: the queue commands never create a queue in
// a database hookmail never used.
func TestMustExistChangesNothing(t *testing.T) {
	url := pgtest.Database(t)
	if _, err := postgres.Open(t.Context(), url, postgres.MustExist()); !errors.Is(err, postgres.ErrSchemaMissing) {
		t.Fatalf("open an empty database with MustExist: %v, want ErrSchemaMissing", err)
	}
	if v, where, err := postgres.ReadSchemaVersion(t.Context(), url); v != 0 || err != nil || !strings.Contains(where, "hookmail_test_") {
		t.Errorf("ReadSchemaVersion of an empty database: %d %q %v, want 0 naming the database", v, where, err)
	}
	open(t, url).Close()
	q, err := postgres.Open(t.Context(), url, postgres.MustExist())
	if err != nil {
		t.Fatalf("open with MustExist once the schema exists: %v", err)
	}
	q.Close()
}

// query scans one row of sql, run on the database url names.
func query(t *testing.T, url, sql string, dest ...any) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	if err := conn.QueryRow(t.Context(), sql).Scan(dest...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
