package main

import (
	"encoding/json"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay/relaytest"
	"github.com/hookmail/hookmail/relay/smtp/smtptest"
)

// The test binary doubles as hookmail, so the end-to-end tests can run it as
// a real process (and SIGKILL it) without a separate build.
const runMainEnv = "HOOKMAIL_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

const mailpitUser, mailpitPass = "hookmail", "e2e-smtp-password-42"

// mailpit is a real Mailpit: STARTTLS required, AUTH from a password file.
type mailpit struct {
	t        *testing.T
	bin      string
	args     []string
	api      string
	smtpPort int
	cmd      *exec.Cmd
}

// freePort is a port on 127.0.0.1 that nothing listens on now, for a
// process of the test's own (Mailpit, HAProxy) that must be told its port
// before it starts, and that may start long after, once hookmail has run
// against the port closed. It is below the kernel's ephemeral range: a
// port in that range (which binding port 0 gives) can meanwhile be taken
// as the local end of any outgoing connection, a hookmail's own attempts
// to reach the closed port among them, and the process then cannot
// listen on it. CI failed so once: "timed out waiting for mailpit".
func freePort(t *testing.T) int {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 11000 {
				low = n
			}
		}
	}
	for range 200 {
		port := 10000 + mathrand.IntN(low-10000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		return port
	}
	t.Fatal("no free port below the ephemeral range")
	return 0
}

// findMailpit finds the binary .ci/run installs; outside CI a missing one
// skips the test with the install command.
func findMailpit(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("mailpit"); err == nil {
		return p
	}
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "mailpit")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("mailpit is not installed; .ci/run installs it with go install github.com/axllent/mailpit@v1.33.1")
	}
	t.Skip("mailpit not installed: go install github.com/axllent/mailpit@v1.33.1")
	return ""
}

func newMailpit(t *testing.T, cert smtptest.Cert) *mailpit {
	t.Helper()
	dir := t.TempDir()
	auth := filepath.Join(dir, "auth")
	if err := os.WriteFile(auth, []byte(mailpitUser+":"+mailpitPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mp := &mailpit{t: t, bin: findMailpit(t), smtpPort: freePort(t)}
	httpPort := freePort(t)
	mp.api = fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	mp.args = []string{
		"--smtp", fmt.Sprintf("127.0.0.1:%d", mp.smtpPort), "--listen", fmt.Sprintf("127.0.0.1:%d", httpPort),
		"--database", filepath.Join(dir, "mailpit.db"),
		"--smtp-tls-cert", cert.CertFile, "--smtp-tls-key", cert.KeyFile, "--smtp-require-starttls",
		"--smtp-auth-file", auth, "--smtp-disable-rdns", "--disable-version-check", "--quiet",
		"--max", "0", // keep every message: by default Mailpit prunes all but 500 each minute
	}
	t.Cleanup(mp.stop)
	return mp
}

func (mp *mailpit) start() {
	mp.t.Helper()
	mp.cmd = exec.Command(mp.bin, mp.args...)
	mp.cmd.Stdout, mp.cmd.Stderr = os.Stderr, os.Stderr
	if err := mp.cmd.Start(); err != nil {
		mp.t.Fatal(err)
	}
	waitUntil(mp.t, "mailpit to answer", 20*time.Second, func() bool {
		resp, err := http.Get(mp.api + "/api/v1/messages")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

func (mp *mailpit) stop() {
	if mp.cmd != nil && mp.cmd.Process != nil {
		_ = mp.cmd.Process.Kill()
		_ = mp.cmd.Wait()
		mp.cmd = nil
	}
}

type mailpitMessage struct {
	ID        string
	MessageID string
	Subject   string
	From      struct{ Address string }
	To, Cc    []struct{ Address string }
	// Created is when Mailpit took the message.
	Created time.Time
}

// messages lists every message Mailpit holds, the newest first.
func (mp *mailpit) messages() []mailpitMessage {
	mp.t.Helper()
	var list struct{ Messages []mailpitMessage }
	getJSON(mp.t, mp.api+"/api/v1/messages?limit=0", &list)
	return list.Messages
}

// total counts the messages Mailpit holds, without listing them.
func (mp *mailpit) total() int {
	mp.t.Helper()
	var list struct{ Total int }
	getJSON(mp.t, mp.api+"/api/v1/messages?limit=1", &list)
	return list.Total
}

// deliveries counts Mailpit's emails per hookmail event id.
func (mp *mailpit) deliveries() map[string]int {
	mp.t.Helper()
	out := map[string]int{}
	for _, m := range mp.messages() {
		if id, ok := eventIDOf(m.MessageID); ok {
			out[id]++
		}
	}
	return out
}

// lastDelivered says when Mailpit took each hookmail event's email, the
// last copy when there are several.
func (mp *mailpit) lastDelivered() map[string]time.Time {
	mp.t.Helper()
	out := map[string]time.Time{}
	for _, m := range mp.messages() {
		if id, ok := eventIDOf(m.MessageID); ok && m.Created.After(out[id]) {
			out[id] = m.Created
		}
	}
	return out
}

// eventIDOf reads the hookmail event id out of a Message-ID,
// <hookmail.<event id>.<route>@domain>.
func eventIDOf(messageID string) (string, bool) {
	rest, ok := strings.CutPrefix(strings.Trim(messageID, "<>"), "hookmail.")
	id, _, ok2 := strings.Cut(rest, ".")
	return id, ok && ok2
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}

func waitUntil(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hookmailProc is `hookmail serve` as its own process.
type hookmailProc struct {
	cmd  *exec.Cmd
	url  string
	logs *relaytest.LogBuffer
}

// startHookmail starts `hookmail serve --listen 127.0.0.1:0` with env
// added to the test's own, and waits until it listens. Unless env sets
// HOOKMAIL_SHUTDOWN_DRAIN, hookmail stops on SIGTERM without a drain.
func startHookmail(t *testing.T, env []string) *hookmailProc {
	t.Helper()
	logs := &relaytest.LogBuffer{}
	cmd := exec.Command(os.Args[0], "serve", "--listen", "127.0.0.1:0")
	// The admin endpoint is a socket in the test's own spool.dir, so tests
	// and a hookmail of the developer's own never collide. Of a variable
	// given twice, exec takes the last.
	cmd.Env = append(os.Environ(), "HOOKMAIL_SHUTDOWN_DRAIN=0")
	cmd.Env = append(cmd.Env, append(env, runMainEnv+"=1")...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return waitListening(t, cmd, logs)
}

// waitListening waits until the started hookmail cmd, logging into logs,
// says where it listens, and kills it when the test ends.
func waitListening(t *testing.T, cmd *exec.Cmd, logs *relaytest.LogBuffer) *hookmailProc {
	t.Helper()
	p := &hookmailProc{cmd: cmd, logs: logs}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitUntil(t, "hookmail to listen", 20*time.Second, func() bool {
		m := listenRe.FindStringSubmatch(logs.String())
		if m == nil {
			return false
		}
		p.url = "http://" + m[1]
		return true
	})
	return p
}

func (p *hookmailProc) post(t *testing.T, body string) {
	t.Helper()
	resp, err := http.Post(p.url+"/webhook", "application/x-www-form-urlencoded", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST = %d %s", resp.StatusCode, b)
	}
}

func e2eEnv(t *testing.T, mp *mailpit, cert smtptest.Cert, spool string) []string {
	t.Helper()
	return []string{
		"HOOKMAIL_WEBHOOK_SECRETS=" + testSecret,
		"HOOKMAIL_SPOOL_DIR=" + spool,
		"HOOKMAIL_SMTP_HOST=127.0.0.1",
		fmt.Sprintf("HOOKMAIL_SMTP_PORT=%d", mp.smtpPort),
		"HOOKMAIL_SMTP_TLS=starttls",
		"HOOKMAIL_SMTP_CA_FILE=" + cert.CertFile,
		"HOOKMAIL_SMTP_USERNAME=" + mailpitUser,
		"HOOKMAIL_SMTP_PASSWORD=" + mailpitPass,
		"HOOKMAIL_SMTP_TIMEOUT=5s",
		"HOOKMAIL_RETRY_INITIAL=200ms",
		"HOOKMAIL_RETRY_MAX=1s",
		"HOOKMAIL_CONFIG=" + writeRoutes(t),
	}
}

// writeRoutes gives sms its own route with a Cc; everything else the catch-all.
func writeRoutes(t *testing.T) string {
	t.Helper()
	return writeConfig(t, `routes:
  - name: sms
    match: { type: sms }
    to: ["sms@example.com"]
    cc: ["boss@example.com"]
  - name: everything-else
    to: ["all@example.com"]
`)
}

// writeConfig writes a config file holding yaml and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hookmail.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var wireBodies = map[string]string{
	"SMS from +639760713666":                 smsBody,
	"WhatsApp from +639760666713":            "secret=" + testSecret + "&type=whatsapp&data%5Bid%5D=2&data%5Bwid%5D=%2B639760713666&data%5Bphone%5D=%2B639760666713&data%5Bmessage%5D=Tom+%26amp%3B+Jerry%26%23039%3Bs+%F0%9F%98%80%0Acaf%C3%A9&data%5Battachment%5D=0&data%5Btimestamp%5D=1645684231",
	"USSD *143#":                             "secret=" + testSecret + "&type=ussd&data%5Bid%5D=98&data%5Bsim%5D=1&data%5Bdevice%5D=00000000-0000-0000-d57d-f30cb6a89289&data%5Bcode%5D=%2A143%23&data%5Bresponse%5D=Sorry%21+You+are+not+allowed+to+use+this+service.&data%5Btimestamp%5D=1645684231",
	"Notifications from com.facebook.katana": "secret=" + testSecret + "&type=notifications&data%5Bid%5D=77&data%5Bdevice%5D=00000000-0000-0000-d57d-f30cb6a89289&data%5Bpackage%5D=com.facebook.katana&data%5Btitle%5D=Facebook&data%5Bcontent%5D=Someone+commented+on+your+post%21&data%5Btimestamp%5D=1645684231",
	"telegram event from +15550001111":       "secret=" + testSecret + "&type=telegram&data%5Bid%5D=5&data%5Bphone%5D=%2B15550001111&data%5Bmessage%5D=hi+there",
}

// TestE2EMailpit: hookmail serve receives the four wire bodies and an
// unknown type, and a real Mailpit over STARTTLS + AUTH shows each email
// once, with the route's To/Cc, the subject, and a text and an HTML part.
func TestE2EMailpit(t *testing.T) {
	cert := smtptest.NewCert(t)
	mp := newMailpit(t, cert)
	mp.start()
	hm := startHookmail(t, e2eEnv(t, mp, cert, t.TempDir()))
	for _, body := range wireBodies {
		hm.post(t, body)
	}
	waitUntil(t, "five emails in Mailpit", 30*time.Second, func() bool { return len(mp.messages()) >= len(wireBodies) })
	time.Sleep(300 * time.Millisecond) // room for a duplicate to show up
	msgs := mp.messages()
	if len(msgs) != len(wireBodies) {
		t.Fatalf("Mailpit holds %d emails, want %d", len(msgs), len(wireBodies))
	}
	for _, m := range msgs {
		if _, ok := wireBodies[m.Subject]; !ok {
			t.Errorf("unexpected subject %q", m.Subject)
		}
		wantTo := "all@example.com"
		if strings.HasPrefix(m.Subject, "SMS") {
			wantTo = "sms@example.com"
			if len(m.Cc) != 1 || m.Cc[0].Address != "boss@example.com" {
				t.Errorf("sms Cc = %+v, want boss@example.com", m.Cc)
			}
		}
		if len(m.To) != 1 || m.To[0].Address != wantTo {
			t.Errorf("%q To = %+v, want %s", m.Subject, m.To, wantTo)
		}
		var full struct{ Text, HTML string }
		getJSON(t, mp.api+"/api/v1/message/"+m.ID, &full)
		if full.Text == "" || !strings.Contains(full.HTML, "<table") {
			t.Errorf("%q: text part %d bytes, HTML part %d bytes; want both", m.Subject, len(full.Text), len(full.HTML))
		}
	}
	if strings.Contains(hm.logs.String(), mailpitPass) || strings.Contains(hm.logs.String(), testSecret) {
		t.Error("a secret reached hookmail's logs")
	}
}

// TestE2EOutageAndKill: with Mailpit down, 50 events are accepted; hookmail
// is SIGKILLed; Mailpit and then hookmail start again; all 50 arrive, each
// exactly once by Message-ID.
func TestE2EOutageAndKill(t *testing.T) {
	cert := smtptest.NewCert(t)
	mp := newMailpit(t, cert)
	spool := t.TempDir()
	env := e2eEnv(t, mp, cert, spool)
	hm := startHookmail(t, env)
	for i := range 50 {
		hm.post(t, fmt.Sprintf("secret=%s&type=sms&data[id]=%d&data[phone]=%%2B1555000%04d&data[message]=outage+%d", testSecret, i, i, i))
	}
	waitUntil(t, "a failed attempt", 10*time.Second, func() bool { return strings.Contains(hm.logs.String(), "delivery failed") })
	if err := hm.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = hm.cmd.Wait()

	mp.start()
	hm2 := startHookmail(t, env)
	waitUntil(t, "50 emails in Mailpit", 60*time.Second, func() bool { return len(mp.messages()) >= 50 })
	time.Sleep(500 * time.Millisecond)
	ids := map[string]int{}
	for _, m := range mp.messages() {
		ids[m.MessageID]++
	}
	if len(ids) != 50 {
		t.Fatalf("%d distinct Message-IDs, want 50\n%s", len(ids), hm2.logs)
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("%s arrived %d times", id, n)
		}
	}
}
