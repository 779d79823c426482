package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/spool"
)

// downSMTPEnv is a hookmail whose mail server is down, so every event it
// accepts stays in its spool.
func downSMTPEnv(t *testing.T, spoolDir string) map[string]string {
	t.Helper()
	return map[string]string{
		"HOOKMAIL_WEBHOOK_SECRETS": testSecret,
		"HOOKMAIL_SPOOL_DIR":       spoolDir,
		"HOOKMAIL_SMTP_HOST":       "127.0.0.1",
		"HOOKMAIL_SMTP_PORT":       fmt.Sprint(freePort(t)),
		"HOOKMAIL_SMTP_TLS":        "none",
	}
}

// postEvent posts an SMS with data[id]=n and returns the status, the event
// id hookmail answered, and whether it closes the connection after it.
func postEvent(t *testing.T, url string, n int) (status int, id string, closes bool) {
	t.Helper()
	body := fmt.Sprintf("secret=%s&type=sms&data[id]=%d&data[phone]=%%2B1555%07d&data[message]=drain+%d", testSecret, n, n, n)
	resp, err := http.Post(url+"/webhook", "application/x-www-form-urlencoded", strings.NewReader(body))
	if err != nil {
		t.Fatalf("webhook %d: %v", n, err)
	}
	defer resp.Body.Close()
	var r struct{ Status, ID string }
	_ = json.NewDecoder(resp.Body).Decode(&r)
	return resp.StatusCode, r.ID, resp.Close
}

// spoolIDs returns the ids of the events waiting in the spool at dir, which
// no hookmail holds open.
func spoolIDs(t *testing.T, dir string) []string {
	t.Helper()
	s, err := spool.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	page, err := s.List(t.Context(), relay.Filter{State: relay.StateWaiting})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, it := range page.Items {
		ids = append(ids, it.Event.ID)
	}
	slices.Sort(ids)
	return ids
}

// TestDrainOnSIGTERM: after SIGTERM, for shutdown.drain, /readyz answers
// 503 "shutting down" (not its cached 200) while webhooks are still
// answered 200 and stored, each answer closing its connection; then
// hookmail stops cleanly, and every event it accepted, before the drain
// and during it, is in the spool.
func TestDrainOnSIGTERM(t *testing.T) {
	dir := t.TempDir()
	env := downSMTPEnv(t, dir)
	env["HOOKMAIL_SHUTDOWN_DRAIN"] = "6s" // long, for a busy machine: the test posts in its first 1.5 s
	url, logs, stop := startServe(t, env)

	var accepted []string
	for n := range 5 {
		status, id, _ := postEvent(t, url, n)
		if status != http.StatusOK {
			t.Fatalf("webhook %d before SIGTERM: %d", n, status)
		}
		accepted = append(accepted, id)
	}
	readyz := func() (int, string) {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			t.Fatalf("/readyz during the drain: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := readyz(); code != http.StatusOK {
		t.Fatalf("/readyz before SIGTERM: %d %s", code, body) // and now cached for a second
	}

	stopped := make(chan error, 1)
	sigterm := time.Now()
	go func() { stopped <- stop() }() // what SIGTERM does: main's context ends
	waitUntil(t, "/readyz to answer 503", 5*time.Second, func() bool {
		code, body := readyz()
		return code == http.StatusServiceUnavailable && strings.Contains(body, `"error":"shutting down"`)
	})
	t.Logf("/readyz answered 503 %s after SIGTERM", time.Since(sigterm).Round(time.Millisecond))
	// Well within the 6 s drain, however slow the machine.
	during := 0
	for n := 5; time.Since(sigterm) < 1500*time.Millisecond; n++ {
		status, id, closes := postEvent(t, url, n)
		if status != http.StatusOK || !closes {
			t.Fatalf("webhook %d during the drain: %d, Connection: close %v; want 200 and close", n, status, closes)
		}
		accepted = append(accepted, id)
		during++
		if code, _ := readyz(); code != http.StatusServiceUnavailable {
			t.Fatalf("/readyz answered %d between webhooks during the drain", code)
		}
	}
	if err := <-stopped; err != nil {
		t.Fatalf("serve returned %v", err)
	}
	if took := time.Since(sigterm); took < 6*time.Second {
		t.Errorf("serve stopped %s after SIGTERM; want the 6 s drain first", took)
	}
	for _, line := range []string{`msg="draining:`, `msg="drain over"`, `msg="shutting down"`, `msg=stopped`} {
		if !strings.Contains(logs.String(), line) {
			t.Errorf("the log lacks %s:\n%s", line, logs)
		}
	}
	slices.Sort(accepted)
	if got := spoolIDs(t, dir); !slices.Equal(got, accepted) {
		t.Errorf("the spool holds %d events, want the %d accepted (%d of them during the drain)", len(got), len(accepted), during)
	}
	t.Logf("%d webhooks accepted during the drain, %d in all, all in the spool", during, len(accepted))
}

// TestSecondSIGTERMEndsTheDrain: a second SIGTERM during a long drain
// stops hookmail at once, still in order.
func TestSecondSIGTERMEndsTheDrain(t *testing.T) {
	dir := t.TempDir()
	var env []string
	for k, v := range downSMTPEnv(t, dir) {
		env = append(env, k+"="+v)
	}
	hm := startHookmail(t, append(env, "HOOKMAIL_SHUTDOWN_DRAIN=10m"))
	hm.post(t, smsBody)
	if err := hm.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the drain to begin", 10*time.Second, func() bool { return strings.Contains(hm.logs.String(), `msg="draining:`) })
	if err := hm.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(t, hm.cmd, 10*time.Second); err != nil {
		t.Fatalf("exit: %v\n%s", err, hm.logs)
	}
	for _, line := range []string{`msg="drain cut short" signal=terminated`, `msg=stopped`} {
		if !strings.Contains(hm.logs.String(), line) {
			t.Errorf("the log lacks %s:\n%s", line, hm.logs)
		}
	}
	if ids := spoolIDs(t, dir); len(ids) != 1 {
		t.Errorf("the spool holds %d events, want the 1 accepted", len(ids))
	}
}
