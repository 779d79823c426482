package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay/relaytest"
	"github.com/hookmail/hookmail/relay/smtp/smtptest"
)

// TestE2EReload changes the routes and a template while events flow: by
// file change, then by SIGHUP; then a broken template is refused and the
// config in force keeps working. No event is lost or sent twice.
func TestE2EReload(t *testing.T) {
	sink := smtptest.NewSink(t)
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "templates")
	if err := os.Mkdir(tmpl, 0o700); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "hookmail.yaml")
	writeCfg := func(route string) {
		t.Helper()
		yaml := fmt.Sprintf("templates:\n  dir: %s\nroutes:\n  - name: %s\n    to: [\"%s@example.com\"]\n", tmpl, route, route)
		// Written aside and renamed in, as editors save.
		if err := os.WriteFile(cfgFile+".tmp", []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(cfgFile+".tmp", cfgFile); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg("first")
	env := append(sinkEnv(t, sink, filepath.Join(dir, "spool")), "HOOKMAIL_CONFIG="+cfgFile)
	hm := startHookmail(t, env)

	// Events flow the whole time.
	var mu sync.Mutex
	var ids []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			status, id, err := webhookOutcome(hm.url, n)
			if err != nil || status != "queued" {
				t.Errorf("post %d: %s %v", n, status, err)
				return
			}
			mu.Lock()
			ids = append(ids, id)
			mu.Unlock()
		}
	})
	routeSeen := func(route string) func() bool {
		return func() bool {
			for mid := range sink.Counts() {
				if strings.Contains(mid, "."+route+"@") {
					return true
				}
			}
			return false
		}
	}
	reloads := func() int { return strings.Count(hm.logs.String(), `msg="config reloaded"`) }
	waitUntil(t, "emails by route first", 10*time.Second, routeSeen("first"))

	// 1. A file change: new route name (it is in the Message-ID) and a
	// subject template of our own.
	if err := os.WriteFile(filepath.Join(tmpl, "sms.subject.tmpl"), []byte(`Reloaded SMS {{.Get "id"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	writeCfg("second")
	waitUntil(t, "a reload after the file change", 10*time.Second, func() bool { return reloads() >= 1 })
	waitUntil(t, "emails by route second", 10*time.Second, routeSeen("second"))

	// 2. SIGHUP.
	writeCfg("third") // the watcher reloads this too; SIGHUP must also work
	if err := hm.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "emails by route third", 10*time.Second, routeSeen("third"))
	waitUntil(t, "a SIGHUP reload", 10*time.Second, func() bool { return strings.Contains(hm.logs.String(), "trigger=SIGHUP") })

	// 3. A broken template is refused; the config in force keeps working.
	if err := os.WriteFile(filepath.Join(tmpl, "sms.text.tmpl"), []byte(`{{.Get "id"`), 0o600); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the broken template refused", 10*time.Second, func() bool {
		return strings.Contains(hm.logs.String(), "config reload refused")
	})
	if m := scrape(t, hm.url); !strings.Contains(m, "hookmail_config_last_reload_successful 0") {
		t.Errorf("after a refused reload:\n%s", grepMetrics(m, "hookmail_config_last_reload_successful"))
	}
	before := len(sink.Counts())
	waitUntil(t, "more emails after the refused reload", 10*time.Second, func() bool { return len(sink.Counts()) > before+5 })

	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	waitUntil(t, "every event delivered", 30*time.Second, func() bool { return len(deliveries(sink)) >= len(ids) })
	time.Sleep(200 * time.Millisecond)
	d := deliveries(sink)
	for _, id := range ids {
		if d[id] != 1 {
			t.Errorf("event %s delivered %d times", id, d[id])
		}
	}
	reloaded := 0
	for mid, subj := range sink.Subjects() {
		if strings.Contains(mid, ".third@") && strings.HasPrefix(subj, "Reloaded SMS ") {
			reloaded++
		}
	}
	if reloaded == 0 {
		t.Error("no email after the reload used the new subject template")
	}
	t.Logf("%d events across 3 reloads (file change, SIGHUP, refused), each delivered once", len(ids))
}

// loopingTemplate never finishes rendering (1e11 empty iterations).
const loopingTemplate = "{{range 100000000000}}{{end}}"

// waitExit waits up to limit for cmd to exit and returns its error, or
// fails the test when it does not.
func waitExit(t *testing.T, cmd *exec.Cmd, limit time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("hookmail did not stop within %s of SIGTERM", limit)
		return nil
	}
}

// TestSIGTERMDuringHungStartUp: a template whose trial render never ends
// holds up the start; SIGTERM still stops hookmail at once.
func TestSIGTERMDuringHungStartUp(t *testing.T) {
	tmpl := t.TempDir()
	if err := os.WriteFile(filepath.Join(tmpl, "sms.text.tmpl"), []byte(loopingTemplate), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &relaytest.LogBuffer{}
	cmd := exec.Command(os.Args[0], "serve", "--listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), runMainEnv+"=1", "HOOKMAIL_WEBHOOK_SECRETS="+testSecret,
		"HOOKMAIL_SPOOL_DIR="+t.TempDir(), "HOOKMAIL_OUTBOX_DIR="+t.TempDir(), "HOOKMAIL_TEMPLATES_DIR="+tmpl)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // well into the trial render
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := waitExit(t, cmd, 5*time.Second)
	if strings.Contains(logs.String(), "hookmail listening") {
		t.Fatalf("hookmail started despite the looping template:\n%s", logs)
	}
	t.Logf("exit: %v\n%s", err, logs)
}

// TestSIGTERMDuringHungReload: a reload (by SIGHUP, and by the file
// change) whose new template never finishes its trial render does not keep
// SIGTERM from stopping hookmail.
func TestSIGTERMDuringHungReload(t *testing.T) {
	tmpl := t.TempDir()
	hm := startHookmail(t, []string{"HOOKMAIL_WEBHOOK_SECRETS=" + testSecret,
		"HOOKMAIL_SPOOL_DIR=" + t.TempDir(), "HOOKMAIL_OUTBOX_DIR=" + t.TempDir(), "HOOKMAIL_TEMPLATES_DIR=" + tmpl})
	if err := os.WriteFile(filepath.Join(tmpl, "sms.text.tmpl"), []byte(loopingTemplate), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := hm.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the reload is under way
	if err := hm.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Without a hang, the exit takes a second or less; the bound is for a
	// busy machine, with the render loop taking a core.
	if err := waitExit(t, hm.cmd, 30*time.Second); err != nil {
		t.Errorf("exit: %v\n%s", err, hm.logs)
	}
	if !strings.Contains(hm.logs.String(), "stopped") {
		t.Errorf("no orderly shutdown:\n%s", hm.logs)
	}
}
