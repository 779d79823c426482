package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay/postgres/pgtest"
	"github.com/hookmail/hookmail/relay/smtp/smtptest"
)

// readyz returns hookmail's /readyz answer: the status and the body.
func readyz(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatalf("/readyz: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// TestPostgresRestartUnderLoad: two hookmails on a Postgres of the test's
// own take webhooks from 8 clients without pause while Postgres is
// stopped, kept down a few seconds, and started again. While it is down
// webhooks are answered 503 with a Retry-After (the clients post them
// again) and /readyz says why hookmail is not ready; once it is back,
// hookmail takes webhooks and delivers its backlog without being touched.
// Every event answered 200 arrives; one arrives twice only when a worker
// sent its email and could not record it, at most once per worker.
func TestPostgresRestartUnderLoad(t *testing.T) {
	const instances, workers, clients, outage = 2, 4, 8, 3 * time.Second
	cluster := pgtest.NewCluster(t)
	db := pgtest.DatabaseOn(t, cluster.AdminURL)
	cert := smtptest.NewCert(t)
	mp := newMailpit(t, cert)
	mp.start()
	env := append(pgEnv(t, mp, cert, db), fmt.Sprintf("HOOKMAIL_SMTP_WORKERS=%d", workers))
	_, urls := startPgHookmails(t, instances, env)
	load := newLoad(0, 2*time.Minute, urls...)
	t.Cleanup(load.stop)
	load.start(clients)
	waitUntil(t, "the load to build", 30*time.Second, func() bool { return load.answered.Load() >= 300 })

	acceptedBefore, _ := load.progress()
	cluster.Stop()
	down := time.Now()
	reasons := make([]string, len(urls))
	for i, url := range urls {
		waitUntil(t, "/readyz to say why hookmail is not ready", 10*time.Second, func() bool {
			code, body := readyz(t, url)
			reasons[i] = body
			return code == http.StatusServiceUnavailable && strings.Contains(body, `"error":"postgres: `)
		})
	}
	waitUntil(t, "a webhook answered 503", 10*time.Second, func() bool { _, u := load.progress(); return u > 0 })
	time.Sleep(time.Until(down.Add(outage)))
	acceptedDown, _ := load.progress()
	cluster.Start() // returns once Postgres takes connections
	up := time.Now()
	_, unavailableDown := load.progress()
	waitUntil(t, "a webhook accepted again", time.Minute, func() bool { a, _ := load.progress(); return a > acceptedDown })
	firstAccepted := time.Since(up)
	for _, url := range urls {
		waitUntil(t, "/readyz ready again", 30*time.Second, func() bool { code, _ := readyz(t, url); return code == http.StatusOK })
	}
	ready := time.Since(up)
	waitUntil(t, "more webhooks accepted", time.Minute, func() bool { a, _ := load.progress(); return a >= acceptedDown+300 })
	_, unavailableUp := load.progress()
	load.stop()
	stopped := time.Since(up)

	r := load.results()
	n := len(r.Accepted)
	twice, lost, strays := delivered(t, mp, r.Accepted, 2*time.Minute)
	var last time.Time
	for _, at := range mp.lastDelivered() {
		if at.After(last) {
			last = at
		}
	}
	t.Logf("postgres restarted under load: %d hookmails, %d clients; Postgres down %s (%d events accepted before, %d during the stop); "+
		"%d webhooks answered 503 while it was down, %d more after it was back, %d without Retry-After; /readyz said %s; "+
		"back, the first webhook was accepted %s after the start, every /readyz ready %s after, and the last email arrived %s after "+
		"(the clients stopped %s after)",
		instances, clients, up.Sub(down).Round(time.Millisecond), acceptedBefore, acceptedDown-acceptedBefore,
		unavailableDown, unavailableUp-unavailableDown, r.NoRetryAfter, reasons[0],
		firstAccepted.Round(time.Millisecond), ready.Round(time.Millisecond), last.Sub(up).Round(time.Millisecond), stopped.Round(time.Millisecond))
	t.Logf("%d events acknowledged (200 queued), %d answered duplicate after a 503, %d posts got no answer; %d delivered, %d delivered twice, %d lost, "+
		"%d emails for events never acknowledged", n, r.Duplicates, r.NoAnswer, n-lost, twice, lost, strays)
	if unavailableDown == 0 || r.NoRetryAfter > 0 {
		t.Errorf("%d webhooks answered 503 while Postgres was down, %d of them without Retry-After; want some, each with one", unavailableDown, r.NoRetryAfter)
	}
	if r.NoAnswer+len(r.Refused)+r.GaveUp > 0 {
		t.Errorf("%d posts got no answer, %v were refused, %d given up; want a 503 or a 200 to each: %q", r.NoAnswer, r.Refused, r.GaveUp, r.Failures)
	}
	if lost != 0 {
		t.Errorf("%d acknowledged events lost", lost)
	}
	if limit := instances * workers; twice > limit {
		t.Errorf("%d events delivered twice, more than the %d workers that could each have had an email sent and not recorded", twice, limit)
	}
	if strays > r.Duplicates {
		t.Errorf("%d emails for events never acknowledged, but only %d duplicate answers explain them", strays, r.Duplicates)
	}
}
