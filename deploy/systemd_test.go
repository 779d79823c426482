package deploy

import (
	"bufio"
	"debug/elf"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config/configtest"
	"github.com/hookmail/hookmail/relay/app"
)

const (
	unitFile   = "hookmail.service"
	socketFile = "hookmail.socket"
)

// unit is a systemd unit file: section, then key, then every value the key
// is given (a key may repeat).
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		case section == "":
			t.Fatalf("%s:%d: %q is outside any section", path, n, line)
		default:
			key, value, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s:%d: %q is not key=value", path, n, line)
			}
			u[section][key] = append(u[section][key], value)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestSystemdUnit checks what the unit promises: the serve command, the spool
// in the state directory, the hardening. systemd-analyze, where present,
// checks the rest.
func TestSystemdUnit(t *testing.T) {
	u := parseUnit(t, unitFile)
	for _, s := range []string{"Unit", "Service", "Install"} {
		if u[s] == nil {
			t.Errorf("no [%s] section", s)
		}
	}
	svc := u["Service"]
	want := map[string]string{
		"ExecStart":               "/usr/local/bin/hookmail serve --config /etc/hookmail/hookmail.yaml",
		"EnvironmentFile":         "-/etc/hookmail/env",
		"StateDirectory":          "hookmail",
		"DynamicUser":             "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"NoNewPrivileges":         "yes",
		"CapabilityBoundingSet":   "",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"SystemCallFilter":        "@system-service",
		"Restart":                 "on-failure",
	}
	for key, value := range want {
		got, ok := svc[key]
		if !ok {
			t.Errorf("[Service] has no %s=", key)
			continue
		}
		if got[len(got)-1] != value {
			t.Errorf("[Service] %s=%s; want %s=%s", key, got[len(got)-1], key, value)
		}
	}
	env := map[string]string{}
	for _, e := range svc["Environment"] {
		name, value, _ := strings.Cut(e, "=")
		env[name] = value
	}
	checkEnv(t, unitFile, env)
	// ProtectSystem=strict leaves only the state directory writable, so the
	// spool and the outbox must be in it.
	for _, name := range []string{"HOOKMAIL_SPOOL_DIR", "HOOKMAIL_OUTBOX_DIR"} {
		if !strings.HasPrefix(env[name], "%S/hookmail") {
			t.Errorf("%s=%q is outside the state directory %%S/hookmail, which is all the unit may write", name, env[name])
		}
	}
	if got := u["Install"]["WantedBy"]; len(got) == 0 || got[0] != "multi-user.target" {
		t.Errorf("[Install] WantedBy=%v; want multi-user.target", got)
	}

	// The socket is always there to be passed: a start binding listen
	// itself would refuse connections on every restart.
	for _, key := range []string{"Requires", "After"} {
		if !slices.ContainsFunc(u["Unit"][key], func(v string) bool { return slices.Contains(strings.Fields(v), socketFile) }) {
			t.Errorf("[Unit] %s=%v; want %s in it", key, u["Unit"][key], socketFile)
		}
	}
	if got := u["Install"]["Also"]; !slices.Contains(got, socketFile) {
		t.Errorf("[Install] Also=%v; want %s, so enabling the service enables its socket", got, socketFile)
	}

	// SIGKILL comes TimeoutStopSec after SIGTERM; by then hookmail must
	// have drained, answered the webhooks in flight and let each worker
	// finish the email in hand.
	cfg := configtest.Default(t)
	need := cfg.Shutdown.Drain + app.ShutdownTimeout + cfg.SMTP.Timeout
	stop := svc["TimeoutStopSec"]
	if got, err := time.ParseDuration(lastOr(stop, "")); err != nil || got < need {
		t.Errorf("[Service] TimeoutStopSec=%v; want at least %s (shutdown.drain %s + %s + smtp.timeout %s)", stop, need, cfg.Shutdown.Drain, app.ShutdownTimeout, cfg.SMTP.Timeout)
	}
}

// lastOr is a key's last value, or def when it has none.
func lastOr(values []string, def string) string {
	if len(values) == 0 {
		return def
	}
	return values[len(values)-1]
}

// TestSystemdSocket checks the socket unit hookmail.service is started
// with: one listening stream socket on hookmail's port, passed to the
// service of its name, enabled with sockets.target.
func TestSystemdSocket(t *testing.T) {
	u := parseUnit(t, socketFile)
	sock := u["Socket"]
	listen := sock["ListenStream"]
	if len(listen) != 1 {
		t.Fatalf("[Socket] ListenStream=%v; want one: hookmail serves webhooks on one socket", listen)
	}
	_, port, _ := net.SplitHostPort(configtest.Default(t).Listen)
	if got := listen[0][strings.LastIndex(listen[0], ":")+1:]; got != port {
		t.Errorf("[Socket] ListenStream=%s; want hookmail's port %s, as the image and the manifests use", listen[0], port)
	}
	if a := lastOr(sock["Accept"], "no"); a != "no" {
		t.Errorf("[Socket] Accept=%s; want no: hookmail accepts on the socket itself", a)
	}
	// A socket unit activates the service of its own name unless Service=
	// says otherwise.
	if svc := lastOr(sock["Service"], strings.TrimSuffix(socketFile, ".socket")+".service"); svc != unitFile {
		t.Errorf("[Socket] activates %s; want %s", svc, unitFile)
	}
	// With one socket hookmail takes it whatever its name; with more, the
	// webhook's must be named webhook.
	if names := sock["FileDescriptorName"]; len(names) > 0 && lastOr(names, "") != "webhook" {
		t.Errorf("[Socket] FileDescriptorName=%v; hookmail looks for webhook", names)
	}
	if got := u["Install"]["WantedBy"]; !slices.Contains(got, "sockets.target") {
		t.Errorf("[Install] WantedBy=%v; want sockets.target", got)
	}
}

// TestSystemdAnalyze has systemd verify the unit and rate its exposure. The
// unit runs /usr/local/bin/hookmail, which a test machine lacks, so a copy
// of the unit runs a freshly built binary instead: nothing but the path
// differs, and no complaint needs to be tolerated.
func TestSystemdAnalyze(t *testing.T) {
	analyze := findTool(t, "systemd-analyze", "")
	bin := buildHookmail(t, "v0.0.0-unit", "")
	dir := t.TempDir()
	text := strings.ReplaceAll(readFile(t, unitFile), "/usr/local/bin/hookmail", bin)
	copyPath := filepath.Join(dir, unitFile)
	if err := os.WriteFile(copyPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	// The service requires the socket, which verify finds beside it.
	socketPath := filepath.Join(dir, socketFile)
	if err := os.WriteFile(socketPath, []byte(readFile(t, socketFile)), 0o644); err != nil {
		t.Fatal(err)
	}
	// verify exits 0 on an unknown key or a bad value ("..., ignoring"), so
	// any output at all is a failure.
	if out := runTool(t, analyze, "verify", copyPath, socketPath); strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify complains:\n%s", out)
	}
	// The exposure is printed from 0.0 (locked down) to 10.0 (exposed), but
	// --threshold counts from 0 to 100: 20 allows up to 2.0. The unit scores
	// 1.5 on systemd 252.
	out, err := exec.Command(analyze, "security", "--offline=yes", "--threshold=20", copyPath).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security rates the unit above 2.0 (%v):\n%s", err, out)
	}
}

// TestBuildScript builds with deploy/build.sh and checks what it promises:
// the version and commit stamped in, and a static binary.
func TestBuildScript(t *testing.T) {
	bin := buildHookmail(t, "v1.2.3-test", "0123456789abcdef")
	out := runTool(t, bin, "version")
	if !strings.HasPrefix(out, "hookmail v1.2.3-test (commit 0123456789abcdef,") {
		t.Errorf("hookmail version printed %q; want version v1.2.3-test and commit 0123456789abcdef", out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary needs a dynamic loader; distroless/static has none (is CGO_ENABLED=0 set?)")
		}
	}
}
