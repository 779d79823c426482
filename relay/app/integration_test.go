package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/smtp/smtptest"
)

// Tests of the whole: receiver, spool, workers and a sender together, as
// serve wires them.

// mountTmpfs mounts a tmpfs of size at a fresh directory, or skips the test
// where mounting is not allowed (not root, no CAP_SYS_ADMIN).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "small-disk")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		msg := fmt.Sprintf("cannot mount a tmpfs here (%v: %s); the disk-full test needs root", err, strings.TrimSpace(string(out)))
		if os.Getenv("CI") != "" && os.Geteuid() == 0 {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fill writes a file into dir until the disk is full, leaving free bytes.
func fill(t *testing.T, dir string, free int64) string {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	avail := int64(st.Bavail) * int64(st.Bsize)
	path := filepath.Join(dir, "filler")
	if err := os.WriteFile(path, make([]byte, max(avail-free, 0)), 0o600); err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Fatal(err)
	}
	return path
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "webhook", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func emlFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestRestartWritesEachEventOnce accepts events, stops before any is
// written out (one of them leased by a worker), starts again on the same
// spool, and expects each event written exactly once.
func TestRestartWritesEachEventOnce(t *testing.T) {
	cfg := testConfig(t)
	env := newTestEnv(t, cfg, nil)
	var ids []string
	for _, file := range []string{"sms.form", "whatsapp.form", "ussd.form", "notifications.form", "telegram.form"} {
		rec := env.post(t, string(readTestdata(t, file)))
		var resp struct{ ID string }
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &resp) != nil {
			t.Fatalf("%s: %d %s", file, rec.Code, rec.Body)
		}
		ids = append(ids, resp.ID)
	}
	// A worker had taken one event when the process stopped.
	if _, err := env.backend.Queue.Lease(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := env.backend.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(emlFiles(t, cfg.Outbox.Dir)); n != 0 {
		t.Fatalf("%d emails written before the restart, want 0", n)
	}

	env2 := newTestEnv(t, cfg, nil)
	stop := env2.run(t)
	waitFor(t, "the queue to drain", func() bool {
		st, err := env2.backend.Queue.Stats(t.Context())
		return err == nil && st.Depth == 0
	})
	stop()
	files := emlFiles(t, cfg.Outbox.Dir)
	if len(files) != len(ids) {
		t.Fatalf("%d emails written, want %d: %v", len(files), len(ids), files)
	}
	for _, id := range ids {
		matches, _ := filepath.Glob(filepath.Join(cfg.Outbox.Dir, id+".*.eml"))
		if len(matches) != 1 {
			t.Errorf("event %s written %d times, want once", id, len(matches))
		}
	}
	// The sms route took the sms; the catch-all took the rest.
	smsFile, _ := filepath.Glob(filepath.Join(cfg.Outbox.Dir, ids[0]+".sms.eml"))
	if len(smsFile) != 1 {
		t.Fatal("the sms event did not go through the sms route")
	}
	f, err := os.Open(smsFile[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	msg, err := mail.ReadMessage(f)
	if err != nil {
		t.Fatal(err)
	}
	for header, want := range map[string]string{
		"To":         "<sms@example.com>",
		"Cc":         "<cc@example.com>",
		"Message-Id": "<hookmail." + ids[0] + ".sms@localhost>",
		"Date":       "Thu, 24 Feb 2022 06:30:31 +0000",
	} {
		if got := msg.Header.Get(header); got != want {
			t.Errorf("%s = %q, want %q", header, got, want)
		}
	}
	if ct := msg.Header.Get("Content-Type"); !strings.HasPrefix(ct, "multipart/alternative") {
		t.Errorf("Content-Type = %q, want multipart/alternative", ct)
	}
}

// TestDiskFullAnswers503AndRecovers puts the spool on a 2 MB tmpfs, fills
// the disk, and posts until the spool cannot write: the receiver answers
// 503, /readyz says why, and every event that got a 200 is delivered once
// after the disk has room again.
func TestDiskFullAnswers503AndRecovers(t *testing.T) {
	disk := mountTmpfs(t, "2m")
	cfg := testConfig(t)
	cfg.Spool.Dir = filepath.Join(disk, "spool")
	env := newTestEnv(t, cfg, nil)
	h := env.h
	filler := fill(t, disk, 64<<10)

	readyz := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec
	}
	accepted := map[string]bool{}
	postOne := func(i int) int {
		body := fmt.Sprintf("secret=%s&type=sms&data[id]=%d&data[message]=%s", testSecret, i, strings.Repeat("x", 2000))
		rec := env.post(t, body)
		if rec.Code == http.StatusOK {
			var resp struct{ ID string }
			_ = json.Unmarshal(rec.Body.Bytes(), &resp)
			accepted[resp.ID] = true
		}
		return rec.Code
	}
	var full int
	for i := 0; i < 2000; i++ {
		code := postOne(i)
		if code == http.StatusServiceUnavailable {
			full = i
			break
		}
		if code != http.StatusOK {
			t.Fatalf("post %d: %d", i, code)
		}
	}
	if full == 0 {
		t.Fatal("the spool never ran out of disk")
	}
	if rec := postOne(full + 1); rec != http.StatusServiceUnavailable {
		t.Errorf("still full: %d, want 503", rec)
	}
	rec := readyz()
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "no space left on device") {
		t.Errorf("/readyz while full: %d %s; want 503 naming the cause", rec.Code, rec.Body)
	}
	t.Logf("disk full after %d accepted events; /readyz: %s", len(accepted), strings.TrimSpace(rec.Body.String()))

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	// /readyz answers from a cache for replyCacheTTL.
	for deadline := time.Now().Add(replyCacheTTL + 2*time.Second); ; time.Sleep(50 * time.Millisecond) {
		rec := readyz()
		if rec.Code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz after space came back: %d %s", rec.Code, rec.Body)
		}
	}
	for i := full + 2; i < full+12; i++ {
		if code := postOne(i); code != http.StatusOK {
			t.Fatalf("post after recovery: %d", code)
		}
	}

	stop := env.run(t)
	waitFor(t, "the queue to drain", func() bool {
		st, _ := env.backend.Queue.Stats(t.Context())
		return st.Depth == 0
	})
	stop()
	files, _ := filepath.Glob(filepath.Join(cfg.Outbox.Dir, "*.eml"))
	delivered := map[string]int{}
	for _, f := range files {
		for id := range accepted {
			if strings.Contains(f, id) {
				delivered[id]++
			}
		}
	}
	lost := 0
	for id := range accepted {
		if delivered[id] != 1 {
			lost++
		}
	}
	if lost != 0 || len(files) != len(accepted) {
		t.Errorf("%d accepted, %d .eml files, %d accepted events not delivered exactly once", len(accepted), len(files), lost)
	}
}

// TestRelayOverSMTPRetriesAndDeadLetters runs the workers against the SMTP
// test server: a 451 is retried until the server takes the email; a 550 goes
// to the dead letters after one attempt, with the server's reply.
func TestRelayOverSMTPRetriesAndDeadLetters(t *testing.T) {
	cert := smtptest.NewCert(t)
	srv := smtptest.NewSink(t, smtptest.WithTLS(cert.TLS))
	srv.RequireAuth("hookmail", "s3cret-smtp-pass")
	temp := &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "try later"}
	srv.RefuseRecipient("sms@example.com", temp)
	srv.RefuseRecipient("cc@example.com", temp)
	srv.RefuseRecipient("all@example.com", &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no such user"})

	cfg := testConfig(t)
	cfg.SMTP.Host, cfg.SMTP.Port, cfg.SMTP.TLS, cfg.SMTP.CAFile = "127.0.0.1", srv.Port, config.TLSStartTLS, cert.CertFile
	cfg.SMTP.Username, cfg.SMTP.Password, cfg.SMTP.Timeout = "hookmail", "s3cret-smtp-pass", 5*time.Second
	cfg.Retry.Initial, cfg.Retry.Max = 20*time.Millisecond, 50*time.Millisecond
	reg := prometheus.NewRegistry()
	sender, closeSender, err := NewSender(cfg, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	defer closeSender()
	env := newTestEnv(t, cfg, sender)
	for _, file := range []string{"sms.form", "ussd.form"} { // sms → sms route (451), ussd → catch-all (550)
		if rec := env.post(t, string(readTestdata(t, file))); rec.Code != 200 {
			t.Fatalf("%s: %d", file, rec.Code)
		}
	}
	stop := env.run(t)
	defer stop()
	failed := func(typ, reason string) float64 {
		return counterValue(t, env.s.reg, "hookmail_emails_failed_total", map[string]string{"type": typ, "reason": reason})
	}
	waitFor(t, "the ussd email to die and the sms to be retried", func() bool {
		st, _ := env.backend.Queue.Stats(t.Context())
		return st.Dead == 1 && failed("sms", "temporary") >= 2
	})
	srv.RefuseRecipient("sms@example.com", nil)
	srv.RefuseRecipient("cc@example.com", nil)
	waitFor(t, "the sms to be delivered", func() bool {
		st, _ := env.backend.Queue.Stats(t.Context())
		return st.Depth == 0
	})
	if mails := srv.Messages(); len(mails) != 1 || !bytes.Contains(mails[0].Data, []byte("Subject: SMS from +639760713666")) {
		t.Fatalf("delivered %d mails, want the sms once", len(mails))
	}
	page, err := env.backend.Inspector.List(t.Context(), relay.Filter{State: relay.StateDead})
	dead := page.Items
	if err != nil || len(dead) != 1 || dead[0].Event.Type != "ussd" || dead[0].Attempts != 1 || !strings.Contains(dead[0].DeadReason, "smtp RCPT TO <all@example.com>: 550") {
		t.Fatalf("dead letters = %+v, %v; want the ussd after 1 attempt with the 550 reply naming the address", dead, err)
	}
	if got := failed("ussd", "permanent"); got != 1 {
		t.Errorf("permanent failures = %v, want 1", got)
	}
}

// counterValue is the value of the counter name with labels in reg.
func counterValue(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no %s%v in the registry", name, labels)
	return 0
}
