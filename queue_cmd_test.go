package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/admin"
	"github.com/hookmail/hookmail/relay/spool"
)

// TestQueueCommandsOnStoppedSpool runs the queue commands through run, on
// the spool of a hookmail that is not running (admin endpoint off).
func TestQueueCommandsOnStoppedSpool(t *testing.T) {
	dir := t.TempDir()
	s, err := spool.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		ev := &relay.Event{ID: fmt.Sprintf("ev-%d", i), Source: "gateway", Type: "sms",
			Data: map[string]string{"id": fmt.Sprint(i), "phone": "+15550001", "message": "hi"}, Received: time.Now()}
		if err := s.Enqueue(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	l, _ := s.Lease(t.Context())
	if err := s.Bury(t.Context(), l, "permanent error: 550 no such user", relay.Progress{Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// The default admin socket, which nothing listens on: hookmail is stopped.
	env := map[string]string{"HOOKMAIL_SPOOL_DIR": dir}
	var stdout, stderr bytes.Buffer
	hm := func(args ...string) (string, error) {
		stdout.Reset()
		stderr.Reset()
		err := run(t.Context(), args, func(k string) string { return env[k] }, nil, &stdout, &stderr)
		return stdout.String() + stderr.String(), err
	}
	_, err = hm("queue", "stats", "--json")
	var st admin.StatsView
	if err != nil || json.Unmarshal(stdout.Bytes(), &st) != nil || st.Depth != 2 || st.Dead != 1 {
		t.Fatalf("stats: %v\n%s", err, stdout.String())
	}
	out, err := hm("queue", "list", "--dead")
	if err != nil || !strings.Contains(out, "ev-0") || !strings.Contains(out, "550 no such user") || !strings.Contains(out, "1 event(s)") {
		t.Fatalf("list --dead: %v\n%s", err, out)
	}
	out, err = hm("queue", "show", "ev-1")
	if err != nil || !strings.Contains(out, "state:        waiting") || !strings.Contains(out, "Subject: SMS from +15550001") {
		t.Fatalf("show: %v\n%s", err, out)
	}
	if out, err = hm("queue", "drop", "ev-1"); err == nil || !strings.Contains(err.Error(), "--yes") {
		t.Fatalf("drop without --yes: %v\n%s", err, out)
	}
	if _, err = hm("queue", "drop", "ev-1", "--yes"); err != nil {
		t.Fatal(err)
	}
	if _, err = hm("queue", "retry"); err == nil {
		t.Error("retry with neither ID nor --all-dead: want an error")
	}
	if out, err = hm("queue", "retry", "--all-dead"); err != nil || !strings.Contains(out, "1 dead letter(s)") {
		t.Fatalf("retry --all-dead: %v\n%s", err, out)
	}
	out, _ = hm("queue", "stats")
	if !strings.Contains(out, "waiting:    2") || !strings.Contains(out, "dead:       0") || !strings.Contains(out, "spool file "+filepath.Join(dir, "spool.db")) {
		t.Errorf("stats after drop and retry:\n%s", out)
	}
	if _, err = hm("queue", "show", "nope"); err == nil || !strings.Contains(err.Error(), "no such event") {
		t.Errorf("show unknown: %v", err)
	}
}

// TestQueueShowJSONHidesTheDedupKey: the dedup key hashes the sender's
// secret with fields an operator sees, so queue show --json, which prints
// those fields, must show neither the key nor its hash: together they are
// an offline oracle for a short secret.
func TestQueueShowJSONHidesTheDedupKey(t *testing.T) {
	dir := t.TempDir()
	s, err := spool.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	const key = "gateway|sms|sender-id-7|a-short-secret"
	ev := &relay.Event{ID: "ev-7", Source: "gateway", Type: "sms", DedupKey: key,
		Data: map[string]string{"id": "sender-id-7", "phone": "+15550001", "message": "hi"}, Received: time.Now()}
	if err := s.Enqueue(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	s.Close()
	env := map[string]string{"HOOKMAIL_SPOOL_DIR": dir, "HOOKMAIL_ADMIN_LISTEN": "off"}
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"queue", "show", "ev-7", "--json"}, func(k string) string { return env[k] }, nil, &stdout, &stderr); err != nil {
		t.Fatalf("show --json: %v\n%s", err, stderr.String())
	}
	out := stdout.String()
	if !strings.Contains(out, "ev-7") {
		t.Fatalf("show --json does not show the event:\n%s", out)
	}
	hash := relay.HashDedupKey(key)
	for _, leak := range []string{"dedup", key, hex.EncodeToString(hash[:]), base64.StdEncoding.EncodeToString(hash[:])} {
		if strings.Contains(strings.ToLower(out), strings.ToLower(leak)) {
			t.Errorf("show --json shows %q:\n%s", leak, out)
		}
	}
}

// TestQueueCommandsNeverCreateASpool: run with a config whose spool.dir
// holds no spool (another config, or another directory than hookmail's),
// every queue command fails naming --config and spool.dir, and creates
// nothing.
func TestQueueCommandsNeverCreateASpool(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	env := map[string]string{"HOOKMAIL_SPOOL_DIR": dir}
	for _, args := range [][]string{
		{"queue", "list"}, {"queue", "list", "--dead"}, {"queue", "stats"}, {"queue", "show", "x"},
		{"queue", "retry", "--all-dead"}, {"queue", "drop", "x", "--yes"},
	} {
		var out bytes.Buffer
		err := run(t.Context(), args, func(k string) string { return env[k] }, nil, &out, &out)
		if err == nil || !strings.Contains(err.Error(), "--config") || !strings.Contains(err.Error(), "spool.dir") || !strings.Contains(err.Error(), filepath.Join(dir, "spool.db")) {
			t.Errorf("%v: %v\n%s; want an error naming --config, spool.dir and the file", args, err, out.String())
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the queue commands created %s (%v)", dir, err)
	}
}

// TestQueueCommandsThroughTheSocket: while hookmail runs, the queue
// commands reach it through its admin socket in spool.dir, which only its
// own user may open, and say so.
func TestQueueCommandsThroughTheSocket(t *testing.T) {
	dir := t.TempDir()
	spool := filepath.Join(dir, "data")
	env := map[string]string{
		"HOOKMAIL_WEBHOOK_SECRETS": testSecret,
		"HOOKMAIL_SPOOL_DIR":       spool,
		"HOOKMAIL_OUTBOX_DIR":      filepath.Join(dir, "outbox"),
	}
	startServe(t, env)
	sock := filepath.Join(spool, "admin.sock")
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket %s: %v %v, want a socket with mode 0600", sock, fi.Mode(), err)
	}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"queue", "stats"}, func(k string) string { return env[k] }, nil, &out, &out); err != nil {
		t.Fatalf("stats: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "admin socket "+sock) {
		t.Errorf("stats does not say it used the admin socket:\n%s", out.String())
	}
}

// TestQueueCommandsRefusedToOtherUsers: on the default config, a user other
// than hookmail's (nobody) can neither read nor change the queue of a
// running hookmail, nor open its spool file; hookmail's own user can.
func TestQueueCommandsRefusedToOtherUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run a command as nobody with setpriv")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) is not installed")
	}
	// The test binary doubles as hookmail; nobody must be able to run it.
	binDir, err := os.MkdirTemp("", "hookmail-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(binDir) })
	if err := os.Chmod(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(binDir, "hookmail")
	exe, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, exe, 0o755); err != nil {
		t.Fatal(err)
	}
	for d := filepath.Dir(bin); d != "/"; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			t.Skipf("%s is not searchable by others, so nobody cannot run the test binary", d)
		}
	}
	// A spool.dir others may enter, so the socket's and the spool file's
	// own guards are what is tested.
	spool := filepath.Join(binDir, "data")
	if err := os.Mkdir(spool, 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"HOOKMAIL_WEBHOOK_SECRETS=" + testSecret,
		"HOOKMAIL_SPOOL_DIR=" + spool,
		// A mail server that is down, so the event stays in the queue.
		"HOOKMAIL_SMTP_HOST=127.0.0.1", fmt.Sprintf("HOOKMAIL_SMTP_PORT=%d", freePort(t)), "HOOKMAIL_SMTP_TLS=none",
	}
	hm := startHookmail(t, env)
	hm.post(t, "secret="+testSecret+"&type=sms&data[phone]=%2B15550001111&data[message]=your+code+is+123456")
	asNobody := func(args ...string) (string, error) {
		cmd := exec.Command(setpriv, append([]string{"--reuid=nobody", "--regid=nogroup", "--clear-groups", bin}, args...)...)
		cmd.Env = append(env, runMainEnv+"=1", "HOME=/")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// The event's id, as hookmail's own user sees it, for show and drop.
	out, err := hookmailCmd(t, env, "queue", "list", "--json")
	m := regexp.MustCompile(`"id": *"([^"]+)"`).FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("queue list --json as hookmail's own user: %v\n%s", err, out)
	}
	id := m[1]
	for _, args := range [][]string{{"queue", "list"}, {"queue", "stats"}, {"queue", "retry", "--all-dead"},
		{"queue", "show", id}, {"queue", "show", id, "--json"}, {"queue", "drop", id, "--yes"}} {
		out, err := asNobody(args...)
		t.Logf("%v as nobody: %s", args, strings.TrimSpace(out))
		if err == nil || !strings.Contains(out, "permission denied") {
			t.Errorf("%v as nobody: %v\n%s; want refused with permission denied", args, err, out)
		}
		if strings.Contains(out, "123456") {
			t.Errorf("%v as nobody showed the event", args)
		}
	}
	// Even with the socket file opened to all, the peer's uid is checked.
	if err := os.Chmod(filepath.Join(spool, "admin.sock"), 0o666); err != nil {
		t.Fatal(err)
	}
	if out, err := asNobody("queue", "list"); err == nil || strings.Contains(out, "123456") {
		t.Errorf("queue list as nobody through a socket open to all: %v\n%s; want refused", err, out)
	}
	if out, err := hookmailCmd(t, env, "queue", "list"); err != nil || !strings.Contains(out, "1 event(s)") {
		t.Errorf("queue list as hookmail's own user: %v\n%s", err, out)
	}
	// Stopped, hookmail has no socket; the commands open the spool file,
	// which nobody may not.
	stopHookmail(t, hm)
	for _, args := range [][]string{{"queue", "list"}, {"queue", "show", id}, {"queue", "drop", id, "--yes"}} {
		out, err := asNobody(args...)
		t.Logf("%v as nobody, hookmail stopped: %s", args, strings.TrimSpace(out))
		if err == nil || strings.Contains(out, "123456") {
			t.Errorf("%v as nobody on the stopped spool: %v\n%s; want refused", args, err, out)
		}
	}
	if out, err := hookmailCmd(t, env, "queue", "list"); err != nil || !strings.Contains(out, "1 event(s)") {
		t.Errorf("queue list as hookmail's own user on the stopped spool: %v\n%s; want the event still there", err, out)
	}
}

// TestQueueListPages: queue list reads a page at a time (listPage) and
// prints each as it comes, so --limit 0 lists any backlog without holding
// it whole, here or in the hookmail that answers; the table and the JSON
// come out as one listing whatever the number of pages.
func TestQueueListPages(t *testing.T) {
	defer func(n int) { listPage = n }(listPage)
	listPage = 2
	dir := t.TempDir()
	s, err := spool.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		ev := &relay.Event{ID: fmt.Sprintf("ev-%d", i), Source: "gateway", Type: "sms",
			Data: map[string]string{"id": fmt.Sprint(i), "phone": "+15550001", "message": "hi"}, Received: time.Now()}
		if err := s.Enqueue(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	env := map[string]string{"HOOKMAIL_SPOOL_DIR": dir, "HOOKMAIL_ADMIN_LISTEN": "off"}
	hm := func(args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if err := run(t.Context(), args, func(k string) string { return env[k] }, nil, &stdout, &stderr); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, stderr.String())
		}
		return stdout.String()
	}
	ids := regexp.MustCompile(`(?m)^ev-\d`)
	out := hm("queue", "list", "--limit", "0")
	if got := ids.FindAllString(out, -1); len(got) != 5 || !strings.Contains(out, "5 event(s)") || strings.Contains(out, "more after") ||
		strings.Count(out, "ATTEMPTS") != 1 {
		t.Errorf("list --limit 0 over 3 pages: %q\n%s", got, out)
	}
	out = hm("queue", "list", "--limit", "3")
	cursor := regexp.MustCompile(`--after (\S+);`).FindStringSubmatch(out)
	if got := ids.FindAllString(out, -1); len(got) != 3 || !strings.Contains(out, "3 event(s)") || cursor == nil {
		t.Fatalf("list --limit 3: %q\n%s", got, out)
	}
	out = hm("queue", "list", "--after", cursor[1])
	if got := ids.FindAllString(out, -1); !slices.Equal(got, []string{"ev-3", "ev-4"}) || strings.Contains(out, "more after") {
		t.Errorf("list after the cursor: %q, want ev-3 and ev-4\n%s", got, out)
	}
	var items []admin.ItemView
	out = hm("queue", "list", "--limit", "0", "--json")
	if err := json.Unmarshal([]byte(out), &items); err != nil || len(items) != 5 || items[4].Event.ID != "ev-4" {
		t.Errorf("list --limit 0 --json: %v, %d items\n%s", err, len(items), out)
	}
	out = hm("queue", "list", "--dead", "--json")
	if err := json.Unmarshal([]byte(out), &items); err != nil || len(items) != 0 || out != "[]\n" {
		t.Errorf("an empty list --json: %v %q", err, out)
	}
	if out = hm("queue", "list", "--dead"); strings.Count(out, "ATTEMPTS") != 1 || !strings.Contains(out, "0 event(s)") {
		t.Errorf("an empty list: %q", out)
	}
}
