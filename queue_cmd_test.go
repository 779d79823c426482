package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay"
)

// TestQueueCommandsOnStoppedSpool runs the queue commands through run, on
// the spool of a hookmail that is not running (admin endpoint off).
func TestQueueCommandsOnStoppedSpool(t *testing.T) {
	dir := t.TempDir()
	s, err := relay.OpenSpool(dir, time.Now)
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
	it, _ := s.Lease(t.Context())
	if err := s.Bury(t.Context(), it, "permanent error: 550 no such user"); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// An admin address nothing listens on: hookmail is stopped.
	env := map[string]string{"HOOKMAIL_SPOOL_DIR": dir, "HOOKMAIL_ADMIN_LISTEN": fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	hm := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(t.Context(), args, func(k string) string { return env[k] }, &out, &errOut)
		return out.String() + errOut.String(), err
	}
	out, err := hm("queue", "stats", "--json")
	var st relay.Stats
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.Depth != 2 || st.Dead != 1 {
		t.Fatalf("stats: %v\n%s", err, out)
	}
	out, err = hm("queue", "list", "--dead")
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
	if !strings.Contains(out, "waiting:    2") || !strings.Contains(out, "dead:       0") || !strings.Contains(out, "spool file") {
		t.Errorf("stats after drop and retry:\n%s", out)
	}
	if _, err = hm("queue", "show", "nope"); err == nil || !strings.Contains(err.Error(), "no such event") {
		t.Errorf("show unknown: %v", err)
	}
}
