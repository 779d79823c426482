package main

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay/postgres/pgtest"
	"github.com/hookmail/hookmail/relay/smtp/smtptest"
)

// TestPostgresDedupAcrossInstances: the same event (secret, type and
// data[id]) posted to two hookmails on one queue is stored once: posted to
// one and then the other, and posted to both at the same instant, one
// answer is "queued", the other "duplicate" naming the same id, and one
// email arrives.
func TestPostgresDedupAcrossInstances(t *testing.T) {
	const races = 20
	db := pgtest.Database(t)
	cert := smtptest.NewCert(t)
	mp := newMailpit(t, cert)
	mp.start()
	env := pgEnv(t, mp, cert, db)
	_, urls := startPgHookmails(t, 2, env)
	client := &http.Client{Timeout: 30 * time.Second}

	accepted, dups := map[string]int{}, 0
	check := func(n int, answers [2]answer) {
		t.Helper()
		queued, dup := answers[0], answers[1]
		if queued.Status != "queued" {
			queued, dup = dup, queued
		}
		if queued.code != 200 || queued.Status != "queued" || dup.code != 200 || dup.Status != "duplicate" || dup.ID != queued.ID {
			t.Errorf("event %d posted to both: answers %+v and %+v; want one queued and one duplicate naming it", n, answers[0], answers[1])
			return
		}
		accepted[queued.ID] = n
		dups++
	}
	post := func(url string, n int) answer {
		a, err := postWebhook(client, url, loadBody(n))
		if err != nil {
			t.Errorf("event %d: %v", n, err)
		}
		return a
	}

	var one [2]answer
	for i, url := range urls {
		one[i] = post(url, 1)
	}
	if one[0].Status != "queued" {
		t.Errorf("the first post answered %+v, want queued", one[0])
	}
	check(1, one)
	for n := 2; n < 2+races; n++ {
		var both [2]answer
		var wg sync.WaitGroup
		ready := make(chan struct{})
		for i, url := range urls {
			wg.Go(func() {
				<-ready
				both[i] = post(url, n)
			})
		}
		close(ready)
		wg.Wait()
		check(n, both)
	}
	twice, lost, strays := delivered(t, mp, accepted, time.Minute)
	t.Logf("dedup across 2 hookmails: %d events each posted to both (1 one after the other, %d at once): %d queued, %d answered duplicate naming it; "+
		"%d emails, %d delivered twice, %d lost, %d strays", 1+races, races, len(accepted), dups, mp.total(), twice, lost, strays)
	if twice+lost+strays > 0 || mp.total() != 1+races {
		t.Errorf("Mailpit holds %d emails for %d events: %d twice, %d lost, %d strays; want one each", mp.total(), 1+races, twice, lost, strays)
	}
}

// digestRoutes sends every SMS into one digest, every window.
func digestRoutes(t *testing.T, window time.Duration) string {
	t.Helper()
	return writeConfig(t, fmt.Sprintf(`routes:
  - name: sms-digest
    match: { type: sms }
    to: ["digest@example.com"]
    digest: { every: %s }
`, window))
}

// TestPostgresDigestAcrossInstances: three hookmails on one queue, a
// digest route, events posted through all three in bursts well within the
// window, one burst after each digest: each window gives one digest email
// (whichever instance sends it), a window after the one before, and each
// event is listed in one digest exactly once.
func TestPostgresDigestAcrossInstances(t *testing.T) {
	const windows, perWindow, window = 3, 60, 5 * time.Second // a burst must fit in a window on a busy machine
	db := pgtest.Database(t)
	cert := smtptest.NewCert(t)
	mp := newMailpit(t, cert)
	mp.start()
	env := append(pgEnv(t, mp, cert, db), "HOOKMAIL_CONFIG="+digestRoutes(t, window))
	hms, urls := startPgHookmails(t, 3, env)

	for w := range windows {
		load := newLoad(perWindow, time.Minute, urls...)
		load.body = func(n int) string {
			return fmt.Sprintf("secret=%s&type=sms&data[id]=%d&data[phone]=%%2B1555%07d&data[message]=dg-%d-%d-end", testSecret, w*1000+n, n, w, n)
		}
		load.start(6)
		load.wait()
		if r := load.results(); len(r.Accepted) != perWindow {
			t.Fatalf("window %d: %d of %d events accepted: %+v", w, len(r.Accepted), perWindow, r)
		}
		waitUntil(t, fmt.Sprintf("digest %d", w+1), window+30*time.Second, func() bool { return mp.total() >= w+1 })
	}
	time.Sleep(window) // a second digest of a window would show now

	listed := map[string]int{} // "burst-n" → times listed
	var sizes []string         // each digest's events, by burst
	msgs := mp.messages()
	slices.Reverse(msgs) // oldest first
	for i, m := range msgs {
		var full struct{ Text string }
		getJSON(t, mp.api+"/api/v1/message/"+m.ID, &full)
		marks := digestMark.FindAllStringSubmatch(full.Text, -1)
		bursts := map[string]int{}
		for _, mk := range marks {
			listed[mk[1]+"-"+mk[2]]++
			bursts[mk[1]]++
		}
		sizes = append(sizes, fmt.Sprint(bursts))
		if want := fmt.Sprintf("%d events for route sms-digest", len(marks)); !strings.HasPrefix(full.Text, want) {
			t.Errorf("digest %d lists %d events but begins %q", i+1, len(marks), firstLine(full.Text))
		}
		// Its first event came after the digest before, and it waited a
		// window for company. (An event collected late may go in the next
		// digest rather than its burst's: that is no second digest.)
		if gap := m.Created.Sub(msgs[max(i-1, 0)].Created); i > 0 && gap < window-50*time.Millisecond {
			t.Errorf("digest %d came %s after the one before, within the %s window", i+1, gap, window)
		}
	}
	var twice, missing int
	for w := range windows {
		for n := 1; n <= perWindow; n++ {
			switch listed[fmt.Sprintf("%d-%d", w, n)] {
			case 0:
				missing++
			case 1:
			default:
				twice++
			}
		}
	}
	var sentBy []int // digests each instance sent
	for _, hm := range hms {
		sentBy = append(sentBy, strings.Count(hm.logs.String(), `msg="digest sent"`))
	}
	t.Logf("digest across 3 hookmails: %d bursts of %d events within a %s window: %d digest emails listing events (by burst) %v, sent by the instances %v; "+
		"%d events listed twice, %d never", windows, perWindow, window, len(msgs), sizes, sentBy, twice, missing)
	if len(msgs) != windows || twice+missing > 0 || len(listed) != windows*perWindow {
		t.Errorf("want %d digests, each event listed once", windows)
	}
}

var digestMark = regexp.MustCompile(`dg-(\d+)-(\d+)-end`)

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
