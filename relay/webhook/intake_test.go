package webhook

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// serveLimited serves h on 127.0.0.1:0 behind a ConnLimiter, as serve does.
func serveLimited(t *testing.T, h http.Handler, total, perIP int) (addr string, lim *ConnLimiter) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveLimitedOn(t, ln, h, total, perIP)
}

// serveLimitedOn serves h on ln behind a ConnLimiter.
func serveLimitedOn(t *testing.T, ln net.Listener, h http.Handler, total, perIP int) (addr string, lim *ConnLimiter) {
	t.Helper()
	lim = NewConnLimiter(ln, total, perIP, prometheus.NewRegistry())
	srv := &http.Server{Handler: lim.Handler(h), ConnState: lim.ConnState, ConnContext: lim.ConnContext, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(lim) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), lim
}

// dialFrom opens a connection to addr from the loopback address src.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends one GET on c and reports whether an answer came back.
func roundTrip(c net.Conn) bool {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return false
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func TestConnLimiterPerIP(t *testing.T) {
	addr, lim := serveLimited(t, okHandler, 100, 2)
	a, b := dialFrom(t, "127.0.0.3", addr), dialFrom(t, "127.0.0.3", addr)
	if !roundTrip(a) || !roundTrip(b) {
		t.Fatal("the first two connections of one IP were not served")
	}
	if roundTrip(dialFrom(t, "127.0.0.3", addr)) {
		t.Error("a third connection from the same IP was served; want it closed (max_connections_per_ip 2)")
	}
	if !roundTrip(dialFrom(t, "127.0.0.4", addr)) {
		t.Error("another IP's connection was not served")
	}
	a.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) { // the server notices the close
		lim.mu.Lock()
		n := len(lim.byIP["127.0.0.3"])
		lim.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the IP holds %d connections 10 s after one of two closed", n)
		}
	}
	if !roundTrip(dialFrom(t, "127.0.0.3", addr)) {
		t.Error("after one closed, a new connection from the IP was not served")
	}
}

// TestConnLimiterPerIPv6Network: the per-IP cap counts an IPv6 client by
// its /64, so a host cannot pass it by taking another of its addresses
// for each connection. (Before, each address had a cap of its own.) The
// loopback has one IPv6 address, so the listener gives each connection
// the peer address of the test's choosing.
func TestConnLimiterPerIPv6Network(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peers := &peerListener{Listener: ln, peers: []string{
		"[2001:db8:0:1::1]:40001", "[2001:db8:0:1::2]:40002", "[2001:db8:0:1:ffff::3]:40003",
		"[2001:db8:0:2::1]:40004",
	}}
	addr, _ := serveLimitedOn(t, peers, okHandler, 100, 2)
	// One at a time, so each is accepted in the order of peers.
	a := dialFrom(t, "127.0.0.1", addr)
	if !roundTrip(a) {
		t.Fatal("the /64's first connection was not served")
	}
	b := dialFrom(t, "127.0.0.1", addr)
	if !roundTrip(b) {
		t.Fatal("the /64's second connection, from another of its addresses, was not served")
	}
	if roundTrip(dialFrom(t, "127.0.0.1", addr)) {
		t.Error("a third connection from a third address of the same /64 was served; want it closed (max_connections_per_ip 2)")
	}
	if !roundTrip(dialFrom(t, "127.0.0.1", addr)) {
		t.Error("a connection from another /64 was not served")
	}
}

// peerListener gives the connections it accepts the peer addresses in
// peers, one each, in turn.
type peerListener struct {
	net.Listener
	mu    sync.Mutex
	peers []string
}

func (l *peerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.peers) == 0 {
		c.Close()
		return nil, errors.New("peerListener: more connections than peers")
	}
	peer := net.TCPAddrFromAddrPort(netip.MustParseAddrPort(l.peers[0]))
	l.peers = l.peers[1:]
	return peerConn{Conn: c, peer: peer}, nil
}

type peerConn struct {
	net.Conn
	peer net.Addr
}

func (c peerConn) RemoteAddr() net.Addr { return c.peer }

// TestConnLimiterPerIPClosesStalled: at max_connections_per_ip, a new
// connection takes the place of the IP's connection that has waited on its
// client longest (here one that sent half its body more than minStall
// ago), not of one that is making progress, and the IP still holds no
// more than its cap. (Before, the new connection was closed, so clients
// sharing an address with a slow one were shut out.)
func TestConnLimiterPerIPClosesStalled(t *testing.T) {
	addr, lim := serveLimited(t, readAllHandler(nil), 100, 2)
	stalled := dialFrom(t, "127.0.0.3", addr)
	if _, err := io.WriteString(stalled, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(minStall + 200*time.Millisecond)
	fresh := dialFrom(t, "127.0.0.3", addr)
	if !roundTrip(fresh) {
		t.Fatal("a second connection under the cap was not served")
	}
	if !roundTrip(dialFrom(t, "127.0.0.3", addr)) {
		t.Error("a new connection at the per-IP cap was not served while one of the IP's connections had stalled")
	}
	_ = stalled.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := stalled.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the stalled connection was not closed (read: %v)", err)
	}
	if !roundTrip(fresh) {
		t.Error("the connection making progress was closed instead")
	}
	if got := testutil.ToFloat64(lim.refused.WithLabelValues("stalled")); got != 1 {
		t.Errorf("closed_total{reason=stalled} = %v, want 1", got)
	}
	lim.mu.Lock()
	n := len(lim.byIP["127.0.0.3"])
	lim.mu.Unlock()
	if n > 2 {
		t.Errorf("the IP holds %d connections, over its cap of 2", n)
	}
}

// TestConnLimiterPerIPKeepsAnswered: a connection whose request has
// arrived whole is not closed to make room however long its answer takes
// (a store and fsync under load), with or without a body; the new
// connection is closed instead.
func TestConnLimiterPerIPKeepsAnswered(t *testing.T) {
	for _, req := range []string{
		"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody",
		"GET /x HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		release := make(chan struct{})
		addr, _ := serveLimited(t, readAllHandler(release), 100, 1)
		busy := dialFrom(t, "127.0.0.3", addr)
		_ = busy.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(busy, req); err != nil {
			t.Fatal(err)
		}
		time.Sleep(minStall + 200*time.Millisecond)
		extra := dialFrom(t, "127.0.0.3", addr)
		_ = extra.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := extra.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("%q: a new connection past the cap was not closed (read: %v)", req, err)
		}
		close(release)
		resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
		if err != nil {
			t.Fatalf("%q: the connection being answered was closed: %v", req, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%q: answer %d", req, resp.StatusCode)
		}
	}
}

// readAllHandler reads the body to its end, waits for release (if not
// nil) and answers 200.
func readAllHandler(release <-chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return
		}
		if release != nil {
			<-release
		}
		w.WriteHeader(http.StatusOK)
	})
}

// TestConnLimiterMakesRoomFromIdle: at max_connections, an idle keep-alive
// connection is closed so a new client gets in.
func TestConnLimiterMakesRoomFromIdle(t *testing.T) {
	addr, _ := serveLimited(t, okHandler, 2, 0)
	for range 2 {
		if !roundTrip(dialFrom(t, "127.0.0.1", addr)) { // each stays open, idle
			t.Fatal("not served")
		}
	}
	if !roundTrip(dialFrom(t, "127.0.0.1", addr)) {
		t.Error("a third client was not served while two idle connections held every place")
	}
}

// TestWrongSecretRefusedBeforeTheBody: a form body whose secret field is
// wrong is answered 401 as soon as that field has arrived, without waiting
// for the rest, and the connection is closed.
func TestWrongSecretRefusedBeforeTheBody(t *testing.T) {
	env := newTestEnv(t, testConfig(t))
	addr, _ := serveLimited(t, env.rc.Handler(env.gateway()), 100, 0)
	c := dialFrom(t, "127.0.0.1", addr)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, err := io.WriteString(c, "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\nsecret=wrong-secret&type=sms")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer before the body ended: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !resp.Close {
		t.Errorf("answer %d (close %v), want 401 and the connection closed", resp.StatusCode, resp.Close)
	}
	if st, _ := env.queue.Stats(t.Context()); st.Depth != 0 {
		t.Errorf("%d events stored", st.Depth)
	}
}

func TestSlowBodyTimesOut(t *testing.T) {
	cfg := testConfig(t)
	cfg.Webhook.BodyTimeout = 200 * time.Millisecond
	env := newTestEnv(t, cfg)
	addr, _ := serveLimited(t, env.rc.Handler(env.gateway()), 100, 0)
	c := dialFrom(t, "127.0.0.1", addr)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nsecret=")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("answer %d, want 408", resp.StatusCode)
	}
}

// TestRefusedWebhooksLogged: refusals (a wrong secret, a 400, a 413) are
// logged at WARN with the remote address, status, result and type, never
// the secret; one line per client and result per minute, the next one
// counting those in between.
func TestRefusedWebhooksLogged(t *testing.T) {
	env := newTestEnv(t, testConfig(t))
	now := time.Unix(1_700_000_000, 0)
	env.rc.Now = func() time.Time { return now }
	h := env.rc.Handler(env.gateway())
	send := func(ip, body string) int {
		req := httptest.NewRequest(http.MethodPost, "/webhook", strings.NewReader(body))
		req.Header.Set("Content-Type", formType)
		req.RemoteAddr = ip + ":40000"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	const wrong = "secret=the-wrong-secret-value&type=sms&data[id]=1"
	for range 3 {
		if code := send("192.0.2.7", wrong); code != http.StatusUnauthorized {
			t.Fatalf("wrong secret: %d", code)
		}
	}
	send("192.0.2.7", "secret="+testSecret) // no type: 400, its own line
	send("192.0.2.8", wrong)                // another client: its own line
	// A body over webhook.max_body_bytes: 413, its own line.
	big := "secret=" + testSecret + "&type=sms&data[message]=" + strings.Repeat("x", int(env.cfg.Webhook.MaxBodyBytes))
	if code := send("192.0.2.9", big); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("body over max_body_bytes: %d, want 413", code)
	}
	logs := env.logs.String()
	lines := func(substr string) int {
		n := 0
		for _, l := range strings.Split(logs, "\n") {
			if strings.Contains(l, "level=WARN") && strings.Contains(l, substr) {
				n++
			}
		}
		return n
	}
	if n := lines("remote=192.0.2.7 status=401 result=unauthorized"); n != 1 {
		t.Errorf("%d WARN lines for 192.0.2.7's 401s, want 1:\n%s", n, logs)
	}
	if lines("remote=192.0.2.7 status=400 result=invalid") != 1 || lines("remote=192.0.2.8 status=401") != 1 {
		t.Errorf("want one line for the 400 and one for the other client:\n%s", logs)
	}
	if lines("remote=192.0.2.9 status=413 result=too_large") != 1 {
		t.Errorf("want one line for the 413:\n%s", logs)
	}
	if !strings.Contains(logs, "type=sms") {
		t.Errorf("the lines do not name the type:\n%s", logs)
	}
	now = now.Add(refusalLogEvery)
	send("192.0.2.7", wrong)
	if !strings.Contains(env.logs.String(), "not_logged_since=2") {
		t.Errorf("a minute later, the line does not count the 2 refusals not logged:\n%s", env.logs)
	}
	if strings.Contains(env.logs.String(), "the-wrong-secret-value") || strings.Contains(env.logs.String(), testSecret) {
		t.Error("a secret reached the log")
	}
}

// okHandler answers 200 to everything.
var okHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })

// TestConnLimiterPerIPSparesTheRecentlyIdle: at the per-IP cap, an idle
// keep-alive connection is not closed for a new one until it has been
// idle minIdle: its client may be sending its next request on it, and a
// request crossing the close is lost (a gateway never sends it again).
func TestConnLimiterPerIPSparesTheRecentlyIdle(t *testing.T) {
	addr, lim := serveLimited(t, readAllHandler(nil), 100, 1)
	keepAlive := dialFrom(t, "127.0.0.3", addr)
	if !roundTrip(keepAlive) {
		t.Fatal("the first connection was not served")
	}
	time.Sleep(minStall + 200*time.Millisecond) // idle, but not for minIdle
	extra := dialFrom(t, "127.0.0.3", addr)
	_ = extra.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := extra.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("a new connection past the cap was not closed (read: %v)", err)
	}
	if !roundTrip(keepAlive) {
		t.Error("the idle keep-alive connection was closed to make room after only a second")
	}
	if got := testutil.ToFloat64(lim.refused.WithLabelValues("stalled")); got != 0 {
		t.Errorf("closed_total{reason=stalled} = %v, want 0", got)
	}
}

// TestRefusalLogGroupsClients: the refusal log's one line a minute is per
// IPv4 address or IPv6 /64, naming the address of the request it logs;
// past maxRefusalKeys clients, the rest share a line that names no
// address (remote=other), since its count is of many.
func TestRefusalLogGroupsClients(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1_700_000_000, 0)
	l := newRefusalLog(slog.New(slog.NewTextHandler(&buf, nil)), func() time.Time { return now })
	e := &reqError{status: http.StatusUnauthorized, result: ResultUnauthorized, reason: "wrong secret"}
	refuse := func(addr string) {
		r := httptest.NewRequest(http.MethodPost, "/webhook", nil)
		r.RemoteAddr = addr
		l.record(r, SourceGateway, "sms", e)
	}
	refuse("[2001:db8:0:1::1]:40000")
	refuse("[2001:db8:0:1::2]:40000") // the same /64: counted, not logged
	if n := strings.Count(buf.String(), "webhook refused"); n != 1 || !strings.Contains(buf.String(), "remote=2001:db8:0:1::1 ") {
		t.Errorf("two refusals from one /64 logged %d lines, want 1 naming the first address:\n%s", n, buf.String())
	}
	for i := range maxRefusalKeys - 1 { // with the /64: maxRefusalKeys clients
		refuse(fmt.Sprintf("10.%d.%d.%d:40000", i>>16&255, i>>8&255, i&255))
	}
	buf.Reset()
	refuse("192.0.2.99:40000") // one client too many: the shared line
	if !strings.Contains(buf.String(), "remote=other ") || strings.Contains(buf.String(), "192.0.2.99") {
		t.Errorf("past maxRefusalKeys, the line names an address:\n%s", buf.String())
	}
}
