package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"io/fs"
	"maps"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay/relaytest"
	"github.com/hookmail/hookmail/relay/smtp/smtptest"
)

const testSecret = "f50f6f32ff605baf44483fcecceaba83fc3f9362"

const smsBody = "secret=" + testSecret + "&type=sms&data%5Bid%5D=2&data%5Brid%5D=10593&data%5Bsim%5D=1&data%5Bdevice%5D=00000000-0000-0000-d57d-f30cb6a89289&data%5Bphone%5D=%2B639760713666&data%5Bmessage%5D=Hello+World%21&data%5Btimestamp%5D=1645684231"

func envFunc(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

var listenRe = regexp.MustCompile(`msg="hookmail listening" addr=(\S+)`)

// startServe runs `hookmail serve --listen 127.0.0.1:0` in-process and
// returns its base URL once /healthz answers. Unless env sets
// HOOKMAIL_SHUTDOWN_DRAIN, stop does not wait out a drain.
func startServe(t *testing.T, env map[string]string) (url string, logs *relaytest.LogBuffer, stop func() error) {
	t.Helper()
	env = maps.Clone(env)
	if _, ok := env["HOOKMAIL_SHUTDOWN_DRAIN"]; !ok {
		env["HOOKMAIL_SHUTDOWN_DRAIN"] = "0"
	}
	ctx, cancel := context.WithCancel(context.Background())
	logs = &relaytest.LogBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--listen", "127.0.0.1:0"}, envFunc(env), nil, io.Discard, logs)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := listenRe.FindStringSubmatch(logs.String()); m != nil {
			url = "http://" + m[1]
			if resp, err := http.Get(url + "/healthz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("serve exited early: %v\n%s", err, logs)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve did not come up:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return url, logs, stop
}

func TestServeAcceptsAndWritesOut(t *testing.T) {
	dir := t.TempDir()
	outbox := filepath.Join(dir, "outbox")
	env := map[string]string{
		"HOOKMAIL_WEBHOOK_SECRETS": testSecret,
		"HOOKMAIL_SPOOL_DIR":       filepath.Join(dir, "data"),
		"HOOKMAIL_OUTBOX_DIR":      outbox,
	}
	url, logs, stop := startServe(t, env)
	resp, err := http.Post(url+"/webhook", "application/x-www-form-urlencoded", strings.NewReader(smsBody))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"status":"queued"`) {
		t.Fatalf("POST = %d %s", resp.StatusCode, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	var files []string
	for len(files) == 0 && time.Now().Before(deadline) {
		files, _ = filepath.Glob(filepath.Join(outbox, "*.eml"))
		time.Sleep(20 * time.Millisecond)
	}
	if len(files) != 1 {
		t.Fatalf("outbox holds %d emails, want 1\n%s", len(files), logs)
	}
	eml, _ := os.ReadFile(files[0])
	if !bytes.Contains(eml, []byte("Subject: SMS from +639760713666\r\n")) || !bytes.Contains(eml, []byte("<hookmail.thread.")) {
		t.Errorf("email:\n%s", eml)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve returned %v on shutdown", err)
	}
	if strings.Contains(logs.String(), testSecret) {
		t.Errorf("the logs contain the webhook secret:\n%s", logs)
	}
	if !strings.Contains(logs.String(), `msg=stopped`) {
		t.Errorf("no clean shutdown in the logs:\n%s", logs)
	}
}

func TestServeRefusesInvalidConfig(t *testing.T) {
	var stderr bytes.Buffer
	err := run(t.Context(), []string{"serve"}, envFunc(map[string]string{"HOOKMAIL_SMTP_TLS": "startls"}), nil, io.Discard, &stderr)
	if err == nil {
		t.Fatal("serve started without a secret and with a bad smtp.tls")
	}
	for _, want := range []string{"webhook.secrets: no secret is set", `smtp.tls: "startls" is not a TLS mode`} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestCheckMasksSecrets(t *testing.T) {
	var stdout, stderr bytes.Buffer
	env := envFunc(map[string]string{"HOOKMAIL_WEBHOOK_SECRETS": testSecret, "HOOKMAIL_SMTP_PASSWORD": "hunter2-smtp-password"})
	if err := run(t.Context(), []string{"check"}, env, nil, &stdout, &stderr); err != nil {
		t.Fatalf("check: %v\n%s", err, stderr.String())
	}
	out := stdout.String() + stderr.String()
	if strings.Contains(out, testSecret) || strings.Contains(out, "hunter2") {
		t.Errorf("check printed a secret:\n%s", out)
	}
	if !strings.Contains(stdout.String(), "password: <secret>") || !strings.Contains(stdout.String(), "- <secret>") {
		t.Errorf("check did not show masked secrets:\n%s", stdout.String())
	}
}

func TestCheckUsesConfigFileFromEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hookmail.yaml")
	if err := os.WriteFile(path, []byte("smtp:\n  hots: mail.example.com\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	err := run(t.Context(), []string{"check"}, envFunc(map[string]string{"HOOKMAIL_CONFIG": path}), nil, io.Discard, &stderr)
	if err == nil || !strings.Contains(stderr.String(), "smtp.hots: unknown key") {
		t.Fatalf("err = %v, stderr:\n%s", err, stderr.String())
	}
}

// TestCheckSaysWhereTheAdminPageIs: check names the page's address, or
// what to set for one.
func TestCheckSaysWhereTheAdminPageIs(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{nil, "admin page: off: admin.listen is a Unix socket, which a browser cannot open, and admin.token is empty; set admin.listen to a TCP address such as 127.0.0.1:9090 and admin.token"},
		{map[string]string{"HOOKMAIL_ADMIN_LISTEN": "127.0.0.1:9090", "HOOKMAIL_ADMIN_TOKEN": "0123456789abcdef-admin"}, "admin page: http://127.0.0.1:9090/ (log in with admin.token)"},
	} {
		env := map[string]string{"HOOKMAIL_WEBHOOK_SECRETS": testSecret}
		maps.Copy(env, tc.env)
		var stderr bytes.Buffer
		if err := run(t.Context(), []string{"check"}, envFunc(env), nil, io.Discard, &stderr); err != nil {
			t.Fatalf("check: %v\n%s", err, stderr.String())
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("stderr lacks %q:\n%s", tc.want, stderr.String())
		}
	}
}

// TestCheckRefusesCredentialsInClear: hookmail check refuses a login
// without TLS to a mail server that is not on loopback.
func TestCheckRefusesCredentialsInClear(t *testing.T) {
	var stderr bytes.Buffer
	env := envFunc(map[string]string{"HOOKMAIL_WEBHOOK_SECRETS": testSecret, "HOOKMAIL_SMTP_HOST": "mail.example.com",
		"HOOKMAIL_SMTP_PORT": "25", "HOOKMAIL_SMTP_TLS": "none", "HOOKMAIL_SMTP_USERNAME": "hookmail"})
	err := run(t.Context(), []string{"check"}, env, nil, io.Discard, &stderr)
	if err == nil || !strings.Contains(stderr.String(), `smtp.tls: none would send smtp.username's credentials in clear to "mail.example.com"`) {
		t.Fatalf("err = %v, stderr:\n%s", err, stderr.String())
	}
}

// TestSendTestToSeveralAddresses: --to repeats, one RCPT each, one email.
func TestSendTestToSeveralAddresses(t *testing.T) {
	sink := smtptest.NewSink(t)
	host, port, _ := strings.Cut(sink.Addr, ":")
	env := envFunc(map[string]string{"HOOKMAIL_WEBHOOK_SECRETS": testSecret, "HOOKMAIL_SMTP_HOST": host,
		"HOOKMAIL_SMTP_PORT": port, "HOOKMAIL_SMTP_TLS": "none"})
	var stdout bytes.Buffer
	if err := run(t.Context(), []string{"send-test", "--to", "a@example.com", "--to", "b@example.com"}, env, nil, &stdout, io.Discard); err != nil {
		t.Fatalf("send-test: %v\n%s", err, stdout.String())
	}
	for _, want := range []string{"C: RCPT TO:<a@example.com>", "C: RCPT TO:<b@example.com>", "the server accepted the test email"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	if n := len(sink.Counts()); n != 1 {
		t.Errorf("%d emails delivered, want 1", n)
	}
}

func TestRenderPrintsEML(t *testing.T) {
	body := filepath.Join(t.TempDir(), "sms.txt")
	if err := os.WriteFile(body, []byte(smsBody+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"from a raw body", []string{"render", "--body", body}, []string{"Subject: SMS from +639760713666\r\n", "In-Reply-To:", "<hookmail.thread.", "Date: Thu, 24 Feb 2022 06:30:31 +0000", "Content-Type: text/html; charset=UTF-8"}},
		{"from flags", []string{"render", "--type", "notifications", "--field", "title=Bank", "--field", "content=Paid"}, []string{"Subject: Bank: Paid", "To: <hookmail@localhost>"}},
		{"unthreaded route", []string{"render", "--config", unthreadedConfig(t), "--body", body}, []string{"Subject: SMS from +639760713666: Hello World!"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout bytes.Buffer
			if err := run(t.Context(), tt.args, envFunc(nil), nil, &stdout, io.Discard); err != nil {
				t.Fatal(err)
			}
			for _, want := range tt.want {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, stdout.String())
				}
			}
		})
	}
	if err := run(t.Context(), []string{"render", "--field", "x=1"}, envFunc(nil), nil, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "no event type") {
		t.Errorf("render without a type: %v", err)
	}
}

func TestVersion(t *testing.T) {
	var stdout bytes.Buffer
	if err := run(t.Context(), []string{"version"}, envFunc(nil), nil, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^hookmail \S+ \(commit \S+, go1\.\d+`).MatchString(stdout.String()) {
		t.Errorf("version = %q", stdout.String())
	}
}

// unthreadedConfig is a config file whose one route does not thread, so
// subjects carry the message.
func unthreadedConfig(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hookmail.yaml")
	if err := os.WriteFile(p, []byte("routes:\n  - name: all\n    to: [\"a@example.com\"]\n    thread: false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRouteCommand(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hookmail.yaml")
	yaml := `routes:
  - name: drop-otp
    match: { type: sms, message: "(?i)\\bOTP\\b" }
    drop: true
  - name: support-sim2
    match: { type: sms, sim: "2" }
    to: ["support@example.com"]
    continue: true
    rate: 10/m
    priority: 5
  - name: default
    to: [ops@example.com]
    cc: [boss@example.com]
    storm: { threshold: 10, window: 1m }
`
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--type", "sms", "--field", "sim=2", "--field", "phone=+1"}, []string{"route support-sim2: email\n  to:  support@example.com", "  rate: 10/m, one email every 6s at most\n  priority: 5, before older emails of lower routes when emails wait\n", "route default: email; past 10 of one conversation in 1m0s, the rest of the window in one digest (storm)\n  to:  ops@example.com\n  cc:  boss@example.com", "thread: <hookmail.thread."}},
		{[]string{"--type", "sms", "--field", "message=your otp is 1"}, []string{"route drop-otp: dropped (drop: true), no email"}},
		{[]string{"--type", "ussd"}, []string{"route default: email; past 10"}},
	} {
		var out bytes.Buffer
		if err := run(t.Context(), append([]string{"route", "--config", p}, tc.args...), envFunc(nil), nil, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%v: output lacks %q:\n%s", tc.args, w, out.String())
			}
		}
	}
}

func TestTemplatesExampleRenders(t *testing.T) {
	var out bytes.Buffer
	env := envFunc(map[string]string{"HOOKMAIL_TEMPLATES_DIR": "config/templates-example"})
	if err := run(t.Context(), []string{"render", "--type", "sms", "--field", "sim=2", "--field", "phone=+1555"}, env, nil, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Subject: SMS to SIM 2 from +1555") {
		t.Errorf("the example override is not used:\n%s", out.String())
	}
}

// TestServeBindsNoFixedPort: serve on its defaults (with --listen on port
// 0, as tests run it) binds no fixed port of its own: with 127.0.0.1:8081,
// the old admin default, held by another process, it still comes up.
func TestServeBindsNoFixedPort(t *testing.T) {
	if ln, err := net.Listen("tcp", "127.0.0.1:8081"); err == nil {
		defer ln.Close()
	} // else another process holds it already, which is the point
	dir := t.TempDir()
	startServe(t, map[string]string{
		"HOOKMAIL_WEBHOOK_SECRETS": testSecret,
		"HOOKMAIL_SPOOL_DIR":       filepath.Join(dir, "data"),
		"HOOKMAIL_OUTBOX_DIR":      filepath.Join(dir, "outbox"),
	})
}

// TestServeNamesATakenListenAddress: a webhook port another process holds
// is an error naming the listen key and the fix, as admin.listen's is.
func TestServeNamesATakenListenAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	env := map[string]string{
		"HOOKMAIL_WEBHOOK_SECRETS": testSecret,
		"HOOKMAIL_SPOOL_DIR":       filepath.Join(dir, "data"),
		"HOOKMAIL_OUTBOX_DIR":      filepath.Join(dir, "outbox"),
	}
	err = run(t.Context(), []string{"serve", "--listen", ln.Addr().String()}, envFunc(env), nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "address already in use") || !strings.Contains(err.Error(), "set listen") {
		t.Fatalf("serve on a taken port: %v; want an error naming listen and the fix", err)
	}
}

// TestDocsStandAlone: the repository's docs and code point at nothing
// outside it (a reader has only the repository), and the README says how to
// get the hookmail binary its commands are written for.
func TestDocsStandAlone(t *testing.T) {
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		// Spelt in pieces, so this file names no outside path itself and
		// is checked like every other.
		for _, outside := range []string{".." + "/" + "shared", "WIRE-" + "FORMATS.md"} {
			if bytes.Contains(b, []byte(outside)) {
				t.Errorf("%s points at %s, outside the repository", path, outside)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, []byte("go build -o /usr/local/bin/hookmail .")) {
		t.Error("the README does not say how to build the hookmail binary its commands use")
	}
}

// TestCheckReportsEveryProblemAtOnce: problems of decoding (an unknown
// key, a bad duration) and of validation come in one run, and a key that
// did not decode is not reported a second time as zero.
func TestCheckReportsEveryProblemAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hookmail.yaml")
	yaml := "smtp:\n  hots: mail.example.com\n  timeout: 2x\n  tls: ssl\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	err := run(t.Context(), []string{"check", "--config", path}, envFunc(map[string]string{"HOOKMAIL_WEBHOOK_SECRETS": "0123456789abcdef0123456789abcdef01234567"}), nil, io.Discard, &stderr)
	if err == nil {
		t.Fatal("check accepted the config")
	}
	want := "config problems:\n" +
		"  - " + path + ": smtp.hots: unknown key; remove it or correct its spelling (config/hookmail.example.yaml lists every key)\n" +
		`  - smtp.timeout: "2x" is not a valid duration; write it like "30s", "5m" or "1h"` + "\n" +
		`  - smtp.tls: "ssl" is not a TLS mode; use starttls (port 587), tls (implicit TLS, port 465) or none` + "\n"
	if stderr.String() != want {
		t.Errorf("stderr\n got:\n%s\nwant:\n%s", stderr.String(), want)
	}
}

// TestCheckListsSourcesMasked: check names every source with its format,
// path and how many keys it has, and prints none of them.
func TestCheckListsSourcesMasked(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "smsgate.key")
	const fileKey, envKey = "smsgate-signing-key-0123456789abcdef", "textbee-webhook-secret-fedcba9876543210"
	if err := os.WriteFile(keyFile, []byte(fileKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "hookmail.yaml")
	if err := os.WriteFile(path, []byte(`webhook:
  sources:
    - {name: android, path: /hooks/sms, format: smsgate, secrets_file: `+keyFile+`}
    - {name: bee, path: /hooks/bee, format: textbee}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	env := envFunc(map[string]string{"HOOKMAIL_CONFIG": path, "HOOKMAIL_SOURCE_BEE_SECRETS": envKey + ",second-textbee-secret-for-rotation"})
	if err := run(t.Context(), []string{"check"}, env, nil, &stdout, &stderr); err != nil {
		t.Fatalf("check: %v\n%s", err, stderr.String())
	}
	out := stdout.String() + stderr.String()
	for _, want := range []string{"source android: smsgate webhooks on /hooks/sms, 1 key(s)", "source bee: textbee webhooks on /hooks/bee, 2 key(s)"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("check does not say %q:\n%s", want, stderr.String())
		}
	}
	if strings.Contains(out, "source gateway") {
		t.Errorf("check lists the gateway source, which webhook.sources without webhook.secrets turns off:\n%s", out)
	}
	if strings.Contains(out, fileKey) || strings.Contains(out, envKey) || strings.Contains(out, "second-textbee") {
		t.Errorf("check printed a source's key:\n%s", out)
	}
}

// TestRenderFormats: render decodes a raw body in any format, as the
// receiver decodes it once authenticated, and shows its canonical content
// through the same templates; a format it does not know is an error naming
// the ones it does.
func TestRenderFormats(t *testing.T) {
	textbee := filepath.Join(t.TempDir(), "textbee.json")
	if err := os.WriteFile(textbee, []byte(`{"smsId":"67a1","message":"Café at 5?","deviceId":"6790","webhookEvent":"MESSAGE_RECEIVED","idempotencyKey":"3b24","sender":"+15551234567","receivedAt":"2025-10-05T13:00:35.208Z"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--format", "smsgate", "--body", filepath.Join("relay", "webhook", "testdata", "smsgate", "sms-received.json")},
			[]string{"Subject: SMS from +19162255887", "Tom & Jerry's key = 42"}},
		{[]string{"--format", "smsgate", "--body", filepath.Join("relay", "webhook", "testdata", "smsgate", "mms-downloaded.json")},
			[]string{"Subject: MMS from", "Attached:"}},
		{[]string{"--format", "textbee", "--body", textbee}, []string{"Subject: SMS from +15551234567", "Café at 5?"}},
		{[]string{"--format", "twilio", "--body", filepath.Join("relay", "webhook", "testdata", "twilio-mms.form")},
			[]string{"Subject: MMS from", "Attachment:"}},
	} {
		var stdout, stderr bytes.Buffer
		env := envFunc(map[string]string{})
		if err := run(t.Context(), append([]string{"render"}, tc.args...), env, nil, &stdout, &stderr); err != nil {
			t.Fatalf("render %q: %v\n%s", tc.args, err, stderr.String())
		}
		eml := stdout.String()
		if dec, err := decodeEML(eml); err == nil {
			eml += dec
		}
		for _, w := range tc.want {
			if !strings.Contains(eml, w) {
				t.Errorf("render %q: no %q in:\n%.2000s", tc.args, w, eml)
			}
		}
	}
	var stderr bytes.Buffer
	err := run(t.Context(), []string{"render", "--format", "zapier", "--body", textbee}, envFunc(nil), nil, io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error()+stderr.String(), "hookmail reads zender, smsgate, twilio, textbee, httpsms") {
		t.Errorf("an unknown format: %v\n%s", err, stderr.String())
	}
}

// decodeEML returns the decoded text of each quoted-printable or base64
// part of eml, so a test can look for what a reader sees.
func decodeEML(eml string) (string, error) {
	msg, err := mail.ReadMessage(strings.NewReader(eml))
	if err != nil {
		return "", err
	}
	var out strings.Builder
	var walk func(h textproto.MIMEHeader, body io.Reader) error
	walk = func(h textproto.MIMEHeader, body io.Reader) error {
		mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
		if err != nil {
			return err
		}
		if strings.HasPrefix(mt, "multipart/") {
			mr := multipart.NewReader(body, params["boundary"])
			for {
				p, err := mr.NextRawPart()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return err
				}
				if err := walk(p.Header, p); err != nil {
					return err
				}
			}
		}
		switch strings.ToLower(h.Get("Content-Transfer-Encoding")) {
		case "quoted-printable":
			body = quotedprintable.NewReader(body)
		case "base64":
			body = base64.NewDecoder(base64.StdEncoding, body)
		}
		b, err := io.ReadAll(body)
		out.Write(b)
		return err
	}
	err = walk(textproto.MIMEHeader(msg.Header), msg.Body)
	return out.String(), err
}

// TestServeTunesTheGC: serve runs the collector at GOGC=400 unless GOGC
// is set, which then stands.
func TestServeTunesTheGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	tuneGC(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != serveGOGC {
		t.Errorf("GOGC unset: the collector's target is %d, want %d", got, serveGOGC)
	}
	tuneGC(func(k string) string { return map[string]string{"GOGC": "50"}[k] })
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC=50: serve changed the target to %d", got)
	}
}
