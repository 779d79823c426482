package main

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay/postgres/pgtest"
	"github.com/hookmail/hookmail/relay/smtp/smtptest"
)

// pgLease is the queue.lease_timeout of the tests on Postgres: short, so
// a dead instance's events come back soon.
const pgLease = 2 * time.Second

// pgEnv configures hookmails on the Postgres queue at dbURL, delivering
// to mp; start each with startPgHookmail.
func pgEnv(t *testing.T, mp *mailpit, cert smtptest.Cert, dbURL string) []string {
	t.Helper()
	return append(e2eEnv(t, mp, cert, t.TempDir()),
		"HOOKMAIL_QUEUE_BACKEND=postgres",
		"HOOKMAIL_QUEUE_POSTGRES_URL="+dbURL,
		"HOOKMAIL_QUEUE_LEASE_TIMEOUT="+pgLease.String(),
	)
}

// startPgHookmail starts a hookmail with env and a spool.dir of its own,
// where its admin socket is (the queue is in Postgres).
func startPgHookmail(t *testing.T, env []string) *hookmailProc {
	t.Helper()
	return startHookmail(t, append(slices.Clip(env), "HOOKMAIL_SPOOL_DIR="+t.TempDir()))
}

// startPgHookmails starts n hookmails with env, and returns them and
// their URLs.
func startPgHookmails(t *testing.T, n int, env []string) ([]*hookmailProc, []string) {
	t.Helper()
	hms, urls := make([]*hookmailProc, n), make([]string, n)
	for i := range n {
		hms[i] = startPgHookmail(t, env)
		urls[i] = hms[i].url
	}
	return hms, urls
}

// delivered waits until Mailpit holds an email of every accepted event,
// then a little longer for a late duplicate, and counts: accepted events
// delivered twice or more, accepted events not delivered, and events
// delivered that were never accepted (their 200 was lost, and the post
// again was answered "duplicate").
func delivered(t *testing.T, mp *mailpit, accepted map[string]int, limit time.Duration) (twice, lost, strays int) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("%d emails in Mailpit", len(accepted)), limit, func() bool { return mp.total() >= len(accepted) })
	var d map[string]int
	waitUntil(t, "every accepted event delivered", limit, func() bool {
		d = mp.deliveries()
		for id := range accepted {
			if d[id] == 0 {
				return false
			}
		}
		return true
	})
	time.Sleep(time.Second) // a late duplicate would show now
	d = mp.deliveries()
	for id := range accepted {
		switch {
		case d[id] == 0:
			lost++
		case d[id] > 1:
			twice++
		}
	}
	for id := range d {
		if _, ok := accepted[id]; !ok {
			strays++
		}
	}
	return twice, lost, strays
}

// orphanedLeases watches the leases held at a kill (leases, read just
// after it) until each event has left the queue, and returns the events
// whose lease the killed instance held. A living instance extends its
// leases (every third of pgLease) and settles them before they lapse, and
// no one can take an event from a lease before it lapses; so a lease of
// the killed instance is one never extended whose event is still held,
// or held anew, when it lapses.
func orphanedLeases(t *testing.T, reader *pgtest.LeaseReader, leases map[string]pgtest.Lease, limit time.Duration) []string {
	t.Helper()
	ids := slices.Collect(maps.Keys(leases))
	extended := map[string]bool{}
	changed := map[string]time.Time{} // when first seen gone or held anew, at the latest
	for deadline := time.Now().Add(limit); ; time.Sleep(25 * time.Millisecond) {
		cur := reader.Read(ids...)
		seen := time.Now()
		open := 0
		for _, id := range ids {
			was := leases[id]
			l, ok := cur[id]
			if ok && l.Token == was.Token && !l.Expires.Equal(was.Expires) {
				extended[id] = true
			}
			if _, done := changed[id]; !done && (!ok || l.Token != was.Token) {
				changed[id] = seen
			}
			if ok {
				open++
			}
		}
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events leased at the kill still in the queue %s later", open, limit)
		}
	}
	var out []string
	for _, id := range ids {
		if !extended[id] && !changed[id].Before(leases[id].Expires) {
			out = append(out, id)
		}
	}
	return out
}

// TestPostgresCrashUnderLoad: three hookmails on one Postgres queue take
// 3,000 events from 32 clients, spread over the three (a post that got no
// answer goes to the next), and deliver them to a real Mailpit. One is
// SIGKILLed midway and started again once another instance has delivered
// what it held. Every event answered 200 arrives; an email arrives twice
// only when the killed instance sent it and died before its ack, so no
// more often than the leases it held at the kill; those leases come back
// to the others pgLease after their last extension.
func TestPostgresCrashUnderLoad(t *testing.T) {
	const total, clients = 3000, 32
	db := pgtest.Database(t)
	cert := smtptest.NewCert(t)
	mp := newMailpit(t, cert)
	mp.start()
	env := pgEnv(t, mp, cert, db)
	hms, urls := startPgHookmails(t, 3, env)
	start := time.Now()
	load := newLoad(total, 3*time.Minute, urls...)
	t.Cleanup(load.stop)
	load.start(clients)

	waitUntil(t, "half the events answered", 2*time.Minute, func() bool { return load.answered.Load() >= total/2 })
	reader := pgtest.NewLeaseReader(t, db)
	sentBeforeKill := mp.total()
	if err := hms[0].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = hms[0].cmd.Wait()
	killed := time.Now()
	leases := reader.Read()
	orphans := orphanedLeases(t, reader, leases, time.Minute)
	hms[0] = startPgHookmail(t, env)
	load.setTarget(0, hms[0].url)
	restarted := time.Since(killed)
	load.wait()
	took := time.Since(start)

	r := load.results()
	if r.Unavailable+len(r.Refused)+r.GaveUp > 0 {
		t.Errorf("%d answered 503, %v refused, %d given up; want every event answered 200: %q",
			r.Unavailable, r.Refused, r.GaveUp, r.Failures)
	}
	n := len(r.Accepted)
	twice, lost, strays := delivered(t, mp, r.Accepted, 2*time.Minute)
	// The wait is until Mailpit took the event's email again: its last
	// copy, when the killed instance had sent it too.
	at := mp.lastDelivered()
	var waits, afterLapse []time.Duration
	for _, id := range orphans {
		waits = append(waits, at[id].Sub(killed))
		afterLapse = append(afterLapse, at[id].Sub(leases[id].Expires))
	}
	slices.Sort(waits)
	slices.Sort(afterLapse)
	t.Logf("postgres crash under load: %d events from %d clients over 3 hookmails in %s; SIGKILL of one after %d answers with %d emails sent, "+
		"restarted %s later; %d acknowledged (200 queued), %d answered duplicate after a retry, %d posts got no answer and were posted again; "+
		"%d delivered, %d delivered twice, %d lost, %d emails for events never acknowledged",
		total, clients, took.Round(time.Millisecond), total/2, sentBeforeKill, restarted.Round(time.Millisecond),
		n, r.Duplicates, r.NoAnswer, n-lost, twice, lost, strays)
	t.Logf("leases at the kill: %d in all, %d the killed instance's; another instance delivered those %s after the kill "+
		"(queue.lease_timeout %s), %s after their leases lapsed",
		len(leases), len(orphans), spread(waits), pgLease, spread(afterLapse))
	if n+r.Duplicates != total {
		t.Errorf("%d queued + %d duplicate answers, want %d", n, r.Duplicates, total)
	}
	if lost != 0 {
		t.Errorf("%d acknowledged events lost", lost)
	}
	if len(orphans) == 0 {
		t.Error("the killed instance held no lease, so no event had to wait for one to lapse: the kill was not under load")
	}
	if twice > len(orphans) {
		t.Errorf("%d events delivered twice, more than the %d leases the killed instance held", twice, len(orphans))
	}
	if strays > r.Duplicates {
		t.Errorf("%d emails for events never acknowledged, but only %d duplicate answers explain them", strays, r.Duplicates)
	}
	for _, w := range waits {
		// A lease lapses pgLease after its last extension, and an idle
		// worker wakes when the next one lapses; the bound is loose, for a
		// slow machine, but no lease may wait for a poll of minutes or for
		// its instance to come back.
		if w > 15*time.Second {
			t.Errorf("an event the killed instance held waited %s to be delivered by another", w.Round(time.Millisecond))
		}
	}
}

// spread says the least and the most of sorted durations.
func spread(d []time.Duration) string {
	switch len(d) {
	case 0:
		return "-"
	case 1:
		return d[0].Round(time.Millisecond).String()
	}
	return d[0].Round(time.Millisecond).String() + " to " + d[len(d)-1].Round(time.Millisecond).String()
}
