package postgres

import (
	"strings"
	"testing"
	"testing/fstest"
)

// TestMigrationFiles: the embedded files are numbered from 1 without a gap,
// and a set that is not is refused naming the file.
func TestMigrationFiles(t *testing.T) {
	if len(migrations) == 0 || migrations[0].version != 1 || KnownSchemaVersion() != len(migrations) {
		t.Fatalf("embedded migrations %d, first %+v", len(migrations), migrations[0])
	}
	file := &fstest.MapFile{Data: []byte("SELECT 1;")}
	for name, tc := range map[string]struct {
		files fstest.MapFS
		want  string
	}{
		"gap":      {fstest.MapFS{"migrations/001_a.sql": file, "migrations/003_c.sql": file}, "003_c.sql has version 3, want 2"},
		"bad name": {fstest.MapFS{"migrations/001_a.sql": file, "migrations/two.sql": file}, "two.sql is not named NNN_name.sql"},
		"from 0":   {fstest.MapFS{"migrations/000_a.sql": file}, "000_a.sql has version 0, want 1"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadMigrations(tc.files)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("loadMigrations: %v, want %q", err, tc.want)
			}
		})
	}
	ms, err := loadMigrations(fstest.MapFS{"migrations/001_a.sql": file, "migrations/002_b.sql": file})
	if err != nil || len(ms) != 2 || ms[1].version != 2 || ms[1].name != "002_b.sql" {
		t.Errorf("two good files: %+v %v", ms, err)
	}
}
