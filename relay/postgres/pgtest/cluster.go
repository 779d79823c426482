package pgtest

import (
	"bytes"
	"errors"
	"net/url"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Cluster is a Postgres cluster of one test's own, for a test that stops
// and starts Postgres under hookmail, which it must not do to the cluster
// the other tests share. It is made and run by .ci/postgres.sh's functions,
// as .ci/run's is, so both start Postgres the same way (as a user other
// than root, which Postgres requires).
type Cluster struct {
	t      testing.TB
	script string
	dir    string
	// AdminURL is the cluster's admin URL; DatabaseOn makes a database in
	// it.
	AdminURL string
	port     string
}

// NewCluster starts a cluster in a temp dir on 127.0.0.1 at a free port,
// and stops and deletes it when the test ends. It runs where the Postgres
// tests run: without HOOKMAIL_TEST_POSTGRES_URL the test is skipped (or
// fails under CI), as with AdminURL.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	AdminURL(t)
	c := &Cluster{t: t, script: ciScript(t)}
	out := c.run("launch_test_postgres >&2 && printf '%s\\n%s\\n' \"$PG_TEST_DIR\" \"$HOOKMAIL_TEST_POSTGRES_URL\"")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 {
		t.Fatalf("launch_test_postgres printed no cluster")
	}
	c.dir, c.AdminURL = lines[len(lines)-2], lines[len(lines)-1]
	t.Cleanup(func() { c.run("stop_test_postgres") })
	u, err := url.Parse(c.AdminURL)
	if err != nil {
		t.Fatalf("launch_test_postgres printed a URL that does not parse")
	}
	c.port = u.Port()
	return c
}

// Stop shuts Postgres down as a restart for an upgrade does: sessions are
// ended, what was committed is kept.
func (c *Cluster) Stop() {
	c.t.Helper()
	c.run("postgres_down")
}

// Start starts Postgres again on the same port.
func (c *Cluster) Start() {
	c.t.Helper()
	c.run("postgres_up " + c.port)
}

// run runs script in bash after sourcing .ci/postgres.sh, with PG_TEST_DIR
// naming the cluster, and returns what it printed on stdout.
func (c *Cluster) run(script string) string {
	c.t.Helper()
	cmd := osexec.Command("bash", "-c", "source \"$0\" && "+script, c.script)
	cmd.Env = append(os.Environ(), "PG_TEST_DIR="+c.dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		c.t.Fatalf("%s: %v\n%s", script, err, stderr.String())
	}
	return stdout.String()
}

// ciScript finds .ci/postgres.sh at the root of the module the test runs in.
func ciScript(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, ".ci", "postgres.sh")
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory, so no .ci/postgres.sh")
		}
		dir = parent
	}
}
