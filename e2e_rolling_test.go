package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay/postgres/pgtest"
	"github.com/hookmail/hookmail/relay/smtp/smtptest"
)

// TestRollingRestartBehindHAProxy: three hookmails on one Postgres queue
// behind HAProxy, which probes /readyz and never sends a webhook again to
// another hookmail (as a Kubernetes Service does not), while 20 clients
// post through it without pause. Each hookmail in turn gets SIGTERM, with
// a drain of six probe intervals (HAProxy needs one failed probe; the rest
// is room for a busy machine), and is started again (on a new port,
// which HAProxy is told, as a Service's endpoints follow a new pod) and
// counted up before the next. No client may see a webhook refused or
// failed, and every accepted event must arrive once.
func TestRollingRestartBehindHAProxy(t *testing.T) {
	const instances, clients = 3, 20
	drain := 6 * haproxyInter
	db := pgtest.Database(t)
	cert := smtptest.NewCert(t)
	mp := newMailpit(t, cert)
	mp.start()
	env := append(pgEnv(t, mp, cert, db),
		"HOOKMAIL_SHUTDOWN_DRAIN="+drain.String(),
		// Behind a proxy every connection comes from its address.
		"HOOKMAIL_WEBHOOK_MAX_CONNECTIONS_PER_IP=0")
	hms, urls := startPgHookmails(t, instances, env)
	lb := startHAProxy(t, urls)

	load := newLoad(0, 2*time.Minute, lb.url)
	t.Cleanup(load.stop)
	load.start(clients)
	waitUntil(t, "the load to build", 30*time.Second, func() bool { return load.answered.Load() >= 300 })

	var steps []string
	for i := range instances {
		name := fmt.Sprintf("h%d", i)
		sigterm := time.Now()
		if err := hms[i].cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "haproxy to take "+name+" out", drain, func() bool { return lb.status(name) == "DOWN" })
		out := time.Since(sigterm)
		if err := waitExit(t, hms[i].cmd, 30*time.Second); err != nil {
			t.Fatalf("%s exited with %v:\n%s", name, err, hms[i].logs)
		}
		exited := time.Since(sigterm)
		hms[i] = startPgHookmail(t, env)
		lb.setServer(name, hms[i].url)
		started := time.Since(sigterm)
		waitUntil(t, "haproxy to count "+name+" up again", 20*time.Second, func() bool { return lb.status(name) == "UP" })
		up := time.Since(sigterm)
		at := load.answered.Load()
		waitUntil(t, "webhooks after "+name+"'s restart", 30*time.Second, func() bool { return load.answered.Load() >= at+200 })
		steps = append(steps, fmt.Sprintf("%s out of HAProxy %s after SIGTERM, exited at %s, started again at %s, up at %s",
			name, out.Round(time.Millisecond), exited.Round(time.Millisecond), started.Round(time.Millisecond), up.Round(time.Millisecond)))
	}
	load.stop()

	r := load.results()
	n := len(r.Accepted)
	twice, lost, strays := delivered(t, mp, r.Accepted, 2*time.Minute)
	servers, err := lb.servers()
	if err != nil {
		t.Fatal(err)
	}
	var perServer []string
	for i := range instances {
		s := servers[fmt.Sprintf("h%d", i)]
		perServer = append(perServer, fmt.Sprintf("h%d: %s sessions, %s 5xx, %s connection errors, %s response errors, %s retries, %s redispatches",
			i, s["stot"], s["hrsp_5xx"], s["econ"], s["eresp"], s["wretr"], s["wredis"]))
	}
	t.Logf("rolling restart behind HAProxy (probe every %s, fall 1, rise 2; drain %s): %d webhooks from %d clients while %d hookmails restarted one by one: %s",
		haproxyInter, drain, load.answered.Load(), clients, instances, strings.Join(steps, "; "))
	t.Logf("%d acknowledged, %d duplicate answers, %d refused or failed at the clients (%d no answer, %d 503, %v other); %d delivered, %d delivered twice, %d lost, %d strays; HAProxy: %s",
		n, r.Duplicates, r.failed(), r.NoAnswer, r.Unavailable, r.Refused, n-lost, twice, lost, strays, strings.Join(perServer, "; "))
	if r.failed() > 0 || r.Duplicates > 0 {
		t.Errorf("%d webhooks refused or failed at the clients, %d answered duplicate; want none: %q\nhaproxy:\n%s", r.failed(), r.Duplicates, r.Failures, lb.logs)
	}
	if lost+twice+strays > 0 {
		t.Errorf("%d accepted events lost, %d delivered twice, %d emails for events never accepted; want each once", lost, twice, strays)
	}
}
