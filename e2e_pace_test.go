package main

import (
	"slices"
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay/postgres/pgtest"
	"github.com/hookmail/hookmail/relay/relaytest"
	"github.com/hookmail/hookmail/relay/smtp/smtptest"
)

// pacedEvents is how many events the pacing tests queue, at smtp.rate
// 10/s: four seconds of mail.
const pacedEvents = 40

// checkPaced waits for an email of each of the pacedEvents events in
// Mailpit and checks that each came once and no more than 10 in any
// second: at smtp.rate 10/s one is sent every 100 ms, so a second holds 10
// and one at its edge; one more is room for the network's jitter between
// the send and Mailpit's clock. Over the whole run, 40 emails take 3.9 s at
// least.
//
// Mailpit's clock is when an email arrived, not when its send was paced:
// each worker that took its turn while Mailpit stalled arrives with the
// others once it goes on. So the tests run two workers in all, and
// pacing's share among them is what is checked; with more, a stall on a
// busy machine puts more in one second than pacing ever sent.
func checkPaced(t *testing.T, mp *mailpit) {
	t.Helper()
	waitUntil(t, "every email in Mailpit", time.Minute, func() bool { return mp.total() >= pacedEvents })
	time.Sleep(300 * time.Millisecond) // room for a duplicate to show up
	var times []time.Time
	for _, m := range mp.messages() {
		times = append(times, m.Created)
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	if d := mp.deliveries(); len(d) != pacedEvents || len(times) != pacedEvents {
		t.Fatalf("Mailpit holds %d emails of %d events, want %d, one each", len(times), len(d), pacedEvents)
	}
	most, span := relaytest.MaxInWindow(times, time.Second), times[len(times)-1].Sub(times[0])
	t.Logf("smtp.rate 10/s: %d emails over %s, at most %d within a second", len(times), span.Round(time.Millisecond), most)
	if most > 12 {
		t.Errorf("%d emails within a second at smtp.rate 10/s, want at most 12 (10, one at the edge, one for jitter)", most)
	}
	if span < 3500*time.Millisecond {
		t.Errorf("%d emails within %s at smtp.rate 10/s, want 3.9 s at least, less jitter", len(times), span)
	}
}

// TestE2EPacedByRate: with smtp.rate 10/s, events queued at once reach a
// real Mailpit at that rate, none lost.
func TestE2EPacedByRate(t *testing.T) {
	cert := smtptest.NewCert(t)
	mp := newMailpit(t, cert)
	mp.start()
	hm := startHookmail(t, append(e2eEnv(t, mp, cert, t.TempDir()), "HOOKMAIL_SMTP_RATE=10/s", "HOOKMAIL_SMTP_WORKERS=2"))
	for n := range pacedEvents {
		hm.post(t, loadBody(n))
	}
	checkPaced(t, mp)
}

// TestPostgresPacedAcrossInstances: two hookmails on one Postgres queue,
// each with smtp.rate 10/s and events posted to both, send no more than
// 10/s together: the rate is the deployment's, not each instance's.
func TestPostgresPacedAcrossInstances(t *testing.T) {
	db := pgtest.Database(t)
	cert := smtptest.NewCert(t)
	mp := newMailpit(t, cert)
	mp.start()
	hms, _ := startPgHookmails(t, 2, append(pgEnv(t, mp, cert, db), "HOOKMAIL_SMTP_RATE=10/s", "HOOKMAIL_SMTP_WORKERS=1"))
	for n := range pacedEvents {
		hms[n%2].post(t, loadBody(n))
	}
	checkPaced(t, mp)
}
