package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httputil"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay/smtp/smtptest"
)

// recorder keeps every HTTP response hookmail gave, headers included.
type recorder struct {
	t       *testing.T
	url     string
	replies bytes.Buffer
}

func (rc *recorder) do(method, path, contentType, body string) int {
	rc.t.Helper()
	req, err := http.NewRequest(method, rc.url+path, strings.NewReader(body))
	if err != nil {
		rc.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		rc.t.Fatal(err)
	}
	defer resp.Body.Close()
	dump, err := httputil.DumpResponse(resp, true)
	if err != nil {
		rc.t.Fatal(err)
	}
	fmt.Fprintf(&rc.replies, "== %s %s\n%s\n", method, path, dump)
	return resp.StatusCode
}

// hookmailCmd runs one hookmail command as its own process and returns
// everything it printed.
func hookmailCmd(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), append(env, runMainEnv+"=1")...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// stopHookmail ends serve with SIGTERM, so the shutdown logs are read too.
func stopHookmail(t *testing.T, hm *hookmailProc) {
	t.Helper()
	if err := hm.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- hm.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("hookmail did not stop within 20s of SIGTERM")
	}
}

// leaks reports where any of the secrets (or their first 12 characters)
// shows up in the named outputs.
func leaks(t *testing.T, secrets []string, outputs map[string]string) {
	t.Helper()
	for _, secret := range secrets {
		for _, needle := range []string{secret, secret[:12]} {
			for name, out := range outputs {
				if i := strings.Index(out, needle); i >= 0 {
					t.Errorf("%s holds a secret (%q…): …%s…", name, needle[:4], out[max(i-120, 0):min(i+len(needle)+40, len(out))])
				}
			}
		}
	}
	for name, out := range outputs {
		if out == "" {
			t.Errorf("%s is empty: the test read nothing there", name)
		}
	}
}

// TestE2ESecretsNeverLeak runs a whole flow at log level debug (good and
// bad-secret webhooks, refused bodies, deliveries through Mailpit with AUTH
// using the password, `hookmail check` with a valid and an invalid config,
// /metrics, SIGTERM) and greps everything hookmail wrote for the webhook
// secret and the SMTP password: zero hits. A second instance with a wrong
// SMTP password shows that the AUTH failure is logged without it.
func TestE2ESecretsNeverLeak(t *testing.T) {
	cert := smtptest.NewCert(t)
	mp := newMailpit(t, cert)
	mp.start()
	env := append(e2eEnv(t, mp, cert, t.TempDir()), "HOOKMAIL_LOG_LEVEL=debug")
	hm := startHookmail(t, env)
	rc := &recorder{t: t, url: hm.url}

	for _, body := range wireBodies {
		if code := rc.do("POST", "/webhook", "application/x-www-form-urlencoded", body); code != 200 {
			t.Fatalf("wire body: status %d", code)
		}
	}
	const form, jsonType = "application/x-www-form-urlencoded", "application/json"
	refused := []struct {
		contentType, body string
		want              int
	}{
		{form, "secret=wrong&type=sms&data[phone]=%2B1", 401},
		{form, "secret=" + testSecret[:39] + "&type=sms", 401},
		{form, "secret=" + testSecret + "0&type=sms", 401},
		{form, "secret=" + mailpitPass + "&type=sms", 401},
		{form, "type=sms", 401},
		{jsonType, `{"secret":"wrong","type":"sms","data":{"phone":"+1"}}`, 401},
		{jsonType, `{"secret":"` + testSecret + `","type":"sms","data":` + strings.Repeat(`{"a":`, 20) + "1" + strings.Repeat("}", 20) + "}", 413},
		{form, "secret=" + testSecret + "&type=sms" + strings.Repeat("&data[a]=1", 2000), 413},
		{form, "secret=" + testSecret, 400},
		{jsonType, `{"secret":"` + testSecret + `",`, 400},
		{"text/plain", "secret=" + testSecret, 415},
	}
	for _, r := range refused {
		if code := rc.do("POST", "/webhook", r.contentType, r.body); code != r.want {
			t.Errorf("POST %.60s: status %d, want %d", r.body, code, r.want)
		}
	}
	rc.do("GET", "/webhook", "", "")

	// Delivered through Mailpit, which takes nothing without AUTH with the password.
	waitUntil(t, "the emails in Mailpit", 30*time.Second, func() bool { return len(mp.messages()) >= len(wireBodies) })
	waitUntil(t, "hookmail to log every email sent", 10*time.Second, func() bool {
		return strings.Count(hm.logs.String(), `msg="email sent"`) >= len(wireBodies)
	})
	for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
		if code := rc.do("GET", path, "", ""); code != 200 {
			t.Errorf("GET %s: %d", path, code)
		}
	}
	stopHookmail(t, hm)

	check, err := hookmailCmd(t, env, "check")
	if err != nil {
		t.Errorf("check: %v\n%s", err, check)
	}
	badCheck, err := hookmailCmd(t, append(env, "HOOKMAIL_SMTP_TLS=sometimes", "HOOKMAIL_SMTP_PASSWORD_FILE=/nonexistent"), "check")
	if err == nil {
		t.Errorf("check of an invalid config succeeded:\n%s", badCheck)
	}
	if !strings.Contains(check, "<secret>") {
		t.Errorf("check output does not show the masked secrets:\n%s", check)
	}

	// A wrong SMTP password: Mailpit refuses AUTH, hookmail logs it as a
	// config error and must not log the password.
	const wrongPass = "wrong-e2e-smtp-password-77"
	bad := startHookmail(t, append(e2eEnv(t, mp, cert, t.TempDir()), "HOOKMAIL_LOG_LEVEL=debug", "HOOKMAIL_SMTP_PASSWORD="+wrongPass))
	brc := &recorder{t: t, url: bad.url}
	if code := brc.do("POST", "/webhook", form, smsBody); code != 200 {
		t.Fatalf("POST with a wrong SMTP password configured: %d", code)
	}
	waitUntil(t, "the AUTH failure in the log, with send-test's hint", 20*time.Second, func() bool {
		return strings.Contains(bad.logs.String(), "(config error)") && strings.Contains(bad.logs.String(), "check smtp.username and smtp.password")
	})
	brc.do("GET", "/metrics", "", "")
	stopHookmail(t, bad)

	leaks(t, []string{testSecret, mailpitPass, wrongPass}, map[string]string{
		"hookmail's log":                     hm.logs.String(),
		"the replies":                        rc.replies.String(),
		"check output":                       check,
		"check output of an invalid config":  badCheck,
		"the log with a wrong SMTP password": bad.logs.String(),
		"the replies with a wrong password":  brc.replies.String(),
	})
	if !strings.Contains(rc.replies.String(), "hookmail_events_received_total") {
		t.Error("the replies do not include /metrics")
	}
}
