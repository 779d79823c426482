package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay/relaytest"
)

// startActivated starts `hookmail serve` as systemd starts a socket-activated
// service: the listening socket as fd 3, LISTEN_FDS=1, LISTEN_FDNAMES the
// socket unit's name, and LISTEN_PID the child's own pid. exec.Cmd cannot
// know that pid before the fork, so a shell sets it to its own ($$) and
// execs hookmail, which keeps the pid. --listen names another address, which
// hookmail must not use.
func startActivated(t *testing.T, sock *os.File, env []string) *hookmailProc {
	t.Helper()
	logs := &relaytest.LogBuffer{}
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, os.Args[0], "serve", "--listen", "127.0.0.1:0")
	cmd.ExtraFiles = []*os.File{sock}
	cmd.Env = append(os.Environ(), append(env, runMainEnv+"=1", "LISTEN_FDS=1", "LISTEN_FDNAMES=hookmail.socket")...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := waitListening(t, cmd, logs)
	if !strings.Contains(logs.String(), "socket=systemd") {
		t.Fatalf("hookmail did not take the socket systemd passed:\n%s", logs)
	}
	return p
}

// webhookResult is what one client saw of one webhook.
type webhookResult struct {
	n          int // data[id]
	start, end time.Time
	status     int    // 0: no answer
	eventID    string // on 200 queued
	err        error
}

// TestSocketActivatedRestartUnderLoad: hookmail runs on a socket passed as
// systemd passes it, while several clients post webhooks without pause,
// half on keep-alive connections and half on a new connection each. It is
// restarted as `systemctl restart` does with hookmail.socket: SIGTERM (the
// drain, then the shutdown), and once it has exited a new hookmail on the
// same socket. No client may see a refused connection or any answer but
// 200 queued, and every accepted event must be stored once: written to the
// outbox or still in the spool, under the id it was answered with.
func TestSocketActivatedRestartUnderLoad(t *testing.T) {
	const clients = 8
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	sock, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	// From here on only sock holds the socket, as systemd does: nothing in
	// this process accepts on it.
	ln.Close()
	t.Cleanup(func() { sock.Close() })

	dir := t.TempDir()
	spoolDir, outbox := filepath.Join(dir, "data"), filepath.Join(dir, "outbox")
	env := []string{
		"HOOKMAIL_WEBHOOK_SECRETS=" + testSecret,
		"HOOKMAIL_SPOOL_DIR=" + spoolDir,
		"HOOKMAIL_OUTBOX_DIR=" + outbox,
		"HOOKMAIL_SHUTDOWN_DRAIN=1s",
	}
	first := startActivated(t, sock, env)

	var (
		mu      sync.Mutex
		results []webhookResult
		next    atomic.Int64
		stop    atomic.Bool
		wg      sync.WaitGroup
	)
	for c := range clients {
		client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: c%2 == 1}}
		wg.Go(func() {
			for !stop.Load() {
				n := int(next.Add(1))
				r := webhookResult{n: n, start: time.Now()}
				body := fmt.Sprintf("secret=%s&type=sms&data[id]=%d&data[phone]=%%2B1555%07d&data[message]=restart+%d", testSecret, n, n, n)
				resp, err := client.Post(url+"/webhook", "application/x-www-form-urlencoded", strings.NewReader(body))
				if err == nil {
					var a struct{ Status, ID string }
					if derr := json.NewDecoder(resp.Body).Decode(&a); derr == nil && a.Status == "queued" {
						r.eventID = a.ID
					}
					resp.Body.Close()
					r.status = resp.StatusCode
				}
				r.err, r.end = err, time.Now()
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
			}
		})
	}
	answered := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(results)
	}
	waitUntil(t, "the load to build", 20*time.Second, func() bool { return answered() >= 200 })

	sigterm := time.Now()
	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(t, first.cmd, 30*time.Second); err != nil {
		t.Fatalf("the first hookmail exited with %v:\n%s", err, first.logs)
	}
	gone := time.Now()
	second := startActivated(t, sock, env)
	up := time.Now()
	atUp := answered()
	waitUntil(t, "the second hookmail to take load", 20*time.Second, func() bool { return answered() >= atUp+200 })
	stop.Store(true)
	wg.Wait()
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(t, second.cmd, 30*time.Second); err != nil {
		t.Fatalf("the second hookmail exited with %v:\n%s", err, second.logs)
	}

	var failed, duringDrain, heldInQueue int
	var slowest time.Duration
	accepted := map[string]int{} // event id → data[id]
	for _, r := range results {
		switch {
		case r.err != nil:
			failed++
			if failed <= 5 {
				t.Errorf("webhook %d sent %s after SIGTERM: %v", r.n, r.start.Sub(sigterm).Round(time.Millisecond), r.err)
			}
			continue
		case r.status != http.StatusOK || r.eventID == "":
			failed++
			if failed <= 5 {
				t.Errorf("webhook %d: status %d, event id %q; want 200 queued", r.n, r.status, r.eventID)
			}
			continue
		}
		if prev, dup := accepted[r.eventID]; dup {
			t.Errorf("webhooks %d and %d were both answered with event %s", prev, r.n, r.eventID)
		}
		accepted[r.eventID] = r.n
		switch {
		case r.start.After(sigterm) && r.end.Before(gone):
			duringDrain++
		case r.start.Before(up) && r.end.After(gone):
			heldInQueue++
			slowest = max(slowest, r.end.Sub(r.start))
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d webhooks failed across the restart", failed, len(results))
	}

	// Stored once: each accepted event is in the outbox or the spool, in
	// one of them only, and nothing else is.
	stored := map[string]int{}
	files, err := filepath.Glob(filepath.Join(outbox, "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		id, _, _ := strings.Cut(filepath.Base(f), ".")
		stored[id]++
	}
	waiting := spoolIDs(t, spoolDir)
	for _, id := range waiting {
		stored[id]++
	}
	for id, n := range accepted {
		if stored[id] != 1 {
			t.Errorf("webhook %d (event %s) is stored %d times", n, id, stored[id])
		}
	}
	for id := range stored {
		if _, ok := accepted[id]; !ok {
			t.Errorf("event %s is stored but was never answered 200", id)
		}
	}
	t.Logf("%d webhooks from %d clients, 0 refused, 0 failed; the first hookmail exited %s after SIGTERM and answered %d during its drain; "+
		"%d were held in the kernel's queue until the second answered (%s from the first's exit to the second's start; the slowest waited %s); "+
		"%d delivered to the outbox, %d still in the spool",
		len(results), clients, gone.Sub(sigterm).Round(time.Millisecond), duringDrain, heldInQueue,
		up.Sub(gone).Round(time.Millisecond), slowest.Round(time.Millisecond), len(files), len(waiting))
	if heldInQueue == 0 {
		t.Error("no webhook waited in the kernel's queue during the restart, so the restart was not under load")
	}
}
