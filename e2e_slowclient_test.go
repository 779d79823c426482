package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSlowBodiesDoNotStarveWebhooks: 300 connections send their headers
// with Content-Length: 100000 and then one body byte every 2 s,
// reconnecting whenever they are closed, while a legitimate sender posts 5
// webhooks a second. At least 99 % of the legitimate webhooks must be
// answered 200 within a second. (Before, the slow clients held every
// webhook.max_concurrent slot and the sender got 503.) Here the slow
// clients dial from another address than the sender's.
func TestSlowBodiesDoNotStarveWebhooks(t *testing.T) {
	testSlowBodies(t, net.IPv4(127, 0, 0, 2))
}

// TestSlowBodiesFromTheSendersAddressDoNotStarveWebhooks: the same attack
// from the sender's own address (one NAT, one host), so the slow clients
// fill that address's webhook.max_connections_per_ip. (Before, the cap
// closed the sender's new connections while the slow ones held it, and
// about a third of the webhooks were lost.)
func TestSlowBodiesFromTheSendersAddressDoNotStarveWebhooks(t *testing.T) {
	testSlowBodies(t, net.IPv4(127, 0, 0, 1))
}

// testSlowBodies runs the attack from src against a sender on 127.0.0.1.
func testSlowBodies(t *testing.T, src net.IP) {
	if testing.Short() {
		t.Skip("runs for 20 s")
	}
	dir := t.TempDir()
	url, logs, _ := startServe(t, map[string]string{
		"HOOKMAIL_WEBHOOK_SECRETS": testSecret,
		"HOOKMAIL_SPOOL_DIR":       filepath.Join(dir, "data"),
		"HOOKMAIL_OUTBOX_DIR":      filepath.Join(dir, "outbox"),
		"HOOKMAIL_ADMIN_LISTEN":    "off",
	})
	addr := strings.TrimPrefix(url, "http://")

	ctx, stop := context.WithCancel(t.Context())
	var attackers sync.WaitGroup
	var connects atomic.Int64
	for range 300 {
		attackers.Go(func() { slowBody(ctx, src, addr, &connects) })
	}
	defer func() { stop(); attackers.Wait() }()
	time.Sleep(3 * time.Second) // let the slow clients take what they can

	client := &http.Client{Timeout: 5 * time.Second}
	const total = 100
	var fast, ok200 int
	var slowest time.Duration
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for i := range total {
		<-tick.C
		body := fmt.Sprintf("secret=%s&type=sms&data[id]=legit-%d&data[phone]=%%2B15550001111&data[message]=hello+%d", testSecret, i, i)
		start := time.Now()
		resp, err := client.Post(url+"/webhook", "application/x-www-form-urlencoded", strings.NewReader(body))
		took := time.Since(start)
		slowest = max(slowest, took)
		if err != nil {
			t.Logf("webhook %d: %v", i, err)
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			ok200++
			if took <= time.Second {
				fast++
			}
		} else {
			t.Logf("webhook %d: %d after %s", i, resp.StatusCode, took)
		}
	}
	t.Logf("slow clients from %s connected %d times; legitimate webhooks: %d of %d answered 200 within 1 s (%d answered 200 at all), slowest %s",
		src, connects.Load(), fast, total, ok200, slowest)
	// What the attack did before is refuse or drop webhooks (65 of 100
	// got through): every one must get its 200. Most within a second, but
	// not all: this runs beside every other package's tests, on a race
	// build, and a spool fsync on a busy disk can take longer.
	if ok200 != total || fast*100 < 95*total {
		t.Errorf("%d of %d legitimate webhooks answered 200 (%d within 1 s), want all, and at least 95 %% within 1 s\n%s", ok200, total, fast, logs)
	}
	if connects.Load() < 300 {
		t.Errorf("the slow clients connected only %d times; the attack did not run", connects.Load())
	}
}

// slowBody is one slow client, from src: headers promising a 100,000-byte
// body, then one byte every 2 s; it reconnects whenever the server closes
// it.
func slowBody(ctx context.Context, src net.IP, addr string, connects *atomic.Int64) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}}
	for ctx.Err() == nil {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			sleepCtx(ctx, 100*time.Millisecond)
			continue
		}
		connects.Add(1)
		_, err = io.WriteString(c, "POST /webhook HTTP/1.1\r\nHost: hookmail\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\nsecret=")
		for err == nil && ctx.Err() == nil {
			sleepCtx(ctx, 2*time.Second)
			_, err = c.Write([]byte("a"))
		}
		c.Close()
		sleepCtx(ctx, 100*time.Millisecond)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
