package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay/relaytest"
	"github.com/hookmail/hookmail/relay/spool"
)

// TestE2EPortTakesWebhooksWhileTheSpoolOpens: the webhook port is bound
// before the spool opens, so a webhook that arrives while the spool is
// still opening (here: held locked by another process, as hookmail queue
// commands hold it) waits and is answered 200 once it opens, instead of
// being refused (the gateway would not send it again).
func TestE2EPortTakesWebhooksWhileTheSpoolOpens(t *testing.T) {
	dir := t.TempDir()
	holder, err := spool.Open(dir) // the lock hookmail's open waits for
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	logs := &relaytest.LogBuffer{}
	cmd := exec.Command(os.Args[0], "serve", "--listen", addr)
	cmd.Env = append(os.Environ(), "HOOKMAIL_SHUTDOWN_DRAIN=0", "HOOKMAIL_WEBHOOK_SECRETS="+testSecret, "HOOKMAIL_SPOOL_DIR="+dir, runMainEnv+"=1")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var conn net.Conn
	for deadline := time.Now().Add(20 * time.Second); conn == nil; {
		if conn, err = net.Dial("tcp", addr); err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("the webhook port was not bound while the spool was opening: %v; hookmail's output:\n%s", err, logs)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	conn.Close()
	answered := make(chan error, 1)
	go func() {
		client := &http.Client{Timeout: time.Minute}
		resp, err := client.Post("http://"+addr+"/webhook", "application/x-www-form-urlencoded", strings.NewReader(smsBody))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("answered %s", resp.Status)
			}
		}
		answered <- err
	}()
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-answered:
		t.Fatalf("answered before the spool could open: %v", err)
	default:
	}
	if err := holder.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-answered; err != nil {
		t.Fatalf("the webhook that waited: %v; hookmail's output:\n%s", err, logs)
	}
}
