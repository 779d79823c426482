package main

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay/relaytest"
)

// haproxyInter is how often HAProxy probes each hookmail's /readyz.
const haproxyInter = 500 * time.Millisecond

// haproxy is a real HAProxy in front of hookmails, as a load balancer or a
// Kubernetes Service is: it sends each webhook to one hookmail that
// answers /readyz, and never sends a webhook again to another (retries 0,
// no redispatch), so a hookmail that refuses a connection loses that
// webhook, as the gateway would.
type haproxy struct {
	t *testing.T
	// url is where webhooks go; stats the stats page.
	url, stats string
	sock       string // the runtime API
	cmd        *exec.Cmd
	logs       *relaytest.LogBuffer
}

// findHAProxy finds Debian's haproxy, which .ci/run installs; outside CI a
// missing one skips the test with the install command.
func findHAProxy(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"haproxy", "/usr/sbin/haproxy"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("haproxy is not installed; .ci/run installs it with apt-get install haproxy")
	}
	t.Skip("haproxy not installed: apt-get install haproxy")
	return ""
}

// startHAProxy runs HAProxy in the foreground in front of backends (base
// URLs), named h0, h1, ... in order, and waits until it counts them all
// up. Its own ports are chosen free at start; it stops when the test ends.
func startHAProxy(t *testing.T, backends []string) *haproxy {
	t.Helper()
	bin := findHAProxy(t)
	dir := t.TempDir()
	h := &haproxy{
		t:     t,
		url:   fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		stats: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		sock:  filepath.Join(dir, "admin.sock"),
		logs:  &relaytest.LogBuffer{},
	}
	var servers strings.Builder
	for i, b := range backends {
		fmt.Fprintf(&servers, "\tserver h%d %s\n", i, strings.TrimPrefix(b, "http://"))
	}
	// In the foreground HAProxy prints each server's ups and downs on
	// stderr, with no log target set.
	cfg := fmt.Sprintf(`global
	stats socket %s mode 600 level admin
	maxconn 2000

defaults
	mode http
	timeout connect 2s
	timeout client 30s
	timeout server 30s
	timeout check 2s
	retries 0
	no option redispatch

frontend webhooks
	bind %s
	default_backend hookmail

backend hookmail
	balance roundrobin
	option httpchk GET /readyz
	http-check expect status 200
	default-server check inter %dms fall 1 rise 2
%s
listen stats
	bind %s
	stats enable
	stats uri /
`, h.sock, strings.TrimPrefix(h.url, "http://"), haproxyInter.Milliseconds(), servers.String(), strings.TrimPrefix(h.stats, "http://"))
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	h.cmd = exec.Command(bin, "-db", "-f", path)
	h.cmd.Stdout, h.cmd.Stderr = h.logs, h.logs
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = h.cmd.Process.Signal(syscall.SIGTERM)
		_ = waitExit(t, h.cmd, 10*time.Second)
	})
	waitUntil(t, "haproxy to count every hookmail up", 20*time.Second, func() bool {
		servers, err := h.servers()
		if err != nil || len(servers) != len(backends) {
			return false
		}
		for _, s := range servers {
			if s["status"] != "UP" {
				return false
			}
		}
		return true
	})
	return h
}

// servers reads the stats page: each hookmail's row, by server name, as
// column → value (status, hrsp_5xx, eresp, econ, wretr, wredis, ...).
func (h *haproxy) servers() (map[string]map[string]string, error) {
	resp, err := http.Get(h.stats + "/;csv")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	rows, err := csv.NewReader(resp.Body).ReadAll()
	if err != nil || len(rows) == 0 {
		return nil, fmt.Errorf("haproxy's stats: %v", err)
	}
	header := rows[0]
	header[0] = strings.TrimPrefix(header[0], "# ")
	out := map[string]map[string]string{}
	for _, row := range rows[1:] {
		m := map[string]string{}
		for i, col := range header {
			if i < len(row) {
				m[col] = row[i]
			}
		}
		if m["pxname"] == "hookmail" && m["svname"] != "BACKEND" {
			out[m["svname"]] = m
		}
	}
	return out, nil
}

// status is server name's state in HAProxy's eyes: UP, DOWN, or on its
// way ("DOWN 1/2").
func (h *haproxy) status(name string) string {
	h.t.Helper()
	servers, err := h.servers()
	if err != nil {
		h.t.Fatal(err)
	}
	return servers[name]["status"]
}

// setServer points server name at a new address (a restarted hookmail's
// base URL), through the runtime API, as a Service's endpoints follow a
// new pod.
func (h *haproxy) setServer(name, url string) {
	h.t.Helper()
	host, port, err := net.SplitHostPort(strings.TrimPrefix(url, "http://"))
	if err != nil {
		h.t.Fatal(err)
	}
	conn, err := net.Dial("unix", h.sock)
	if err != nil {
		h.t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "set server hookmail/%s addr %s port %s\n", name, host, port); err != nil {
		h.t.Fatal(err)
	}
	reply, _ := bufio.NewReader(conn).ReadString('\n')
	if !strings.Contains(reply, "changed") {
		h.t.Fatalf("haproxy: set server %s: %q", name, reply)
	}
}
