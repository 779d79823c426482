package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// migrationFiles are the schema's versions, NNN_name.sql, applied in order.
// A released file never changes: a change to the schema is a new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// migrations are the embedded files, checked to be numbered 1, 2, 3, ...
var migrations = mustLoadMigrations(migrationFiles)

var migrationName = regexp.MustCompile(`^(\d+)_[a-z0-9_]+\.sql$`)

func mustLoadMigrations(fsys fs.FS) []migration {
	ms, err := loadMigrations(fsys)
	if err != nil {
		panic("postgres: the embedded migrations: " + err.Error())
	}
	return ms
}

func loadMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries { // sorted by name, so by version
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("%s is not named NNN_name.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		if v != len(ms)+1 {
			return nil, fmt.Errorf("%s has version %d, want %d", e.Name(), v, len(ms)+1)
		}
		sql, err := fs.ReadFile(fsys, "migrations/"+e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(sql)})
	}
	return ms, nil
}

// KnownSchemaVersion is the newest schema version this hookmail knows and
// creates.
func KnownSchemaVersion() int { return len(migrations) }

// versionTable records each schema version applied, and when.
const versionTable = "hookmail_schema_migrations"

// migrateLock is the advisory lock key every hookmail takes to migrate:
// "hookmail" in ASCII.
const migrateLock = 0x686f6f6b6d61696c

// querier is a connection, a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// readVersion returns the schema version of the database q is connected
// to: 0 when hookmail never created its tables there.
func readVersion(ctx context.Context, q querier) (int, error) {
	var exists bool
	if err := q.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", versionTable).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var v int
	err := q.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+versionTable).Scan(&v)
	return v, err
}

// ErrSchemaMissing is returned by Open with MustExist when the database
// holds no hookmail schema.
var ErrSchemaMissing = errors.New("the database holds no hookmail queue")

// newerError is the error for a schema a later hookmail migrated.
func newerError(have int) error {
	return fmt.Errorf("the database's queue schema is version %d, newer than this hookmail knows (%d): upgrade hookmail to the version that migrated it, or point queue.postgres.url at another database", have, KnownSchemaVersion())
}

// migrate brings the schema up to SchemaVersion in one transaction, under
// an advisory lock that makes hookmails starting at once take turns, and
// returns the version. A transaction-scoped lock, unlike a session's,
// holds behind PgBouncer in transaction mode too. With mustExist it changes
// nothing, and fails unless the schema is there and current.
func migrate(ctx context.Context, pool interface {
	Begin(context.Context) (pgx.Tx, error)
}, mustExist bool) (int, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrateLock)); err != nil {
		return 0, err
	}
	have, err := readVersion(ctx, tx)
	switch {
	case err != nil:
		return 0, err
	case have > KnownSchemaVersion():
		return have, newerError(have)
	case have == KnownSchemaVersion():
		return have, tx.Commit(ctx)
	case mustExist && have == 0:
		return 0, fmt.Errorf("%w (start hookmail serve with this queue.postgres.url to create it)", ErrSchemaMissing)
	case mustExist:
		return have, fmt.Errorf("the database's queue schema is version %d, older than this hookmail's (%d): start hookmail serve, which migrates it, first", have, KnownSchemaVersion())
	}
	if have == 0 {
		if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+versionTable+
			" (version integer PRIMARY KEY, name text NOT NULL, applied timestamptz NOT NULL DEFAULT now())"); err != nil {
			return 0, err
		}
	}
	for _, m := range migrations[have:] {
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return 0, fmt.Errorf("schema version %d (%s): %w", m.version, m.name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+versionTable+" (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
			return 0, err
		}
	}
	return KnownSchemaVersion(), tx.Commit(ctx)
}
