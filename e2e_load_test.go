package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// answer is hookmail's answer to one webhook.
type answer struct {
	code       int
	Status, ID string // of a 200: "queued" or "duplicate", and the event's id
	retryAfter string
}

// postWebhook posts body to hookmail at url. An error means no answer came
// (the connection was refused or cut), or a 200 came that could not be
// read, which a sender cannot tell from none.
func postWebhook(c *http.Client, url, body string) (answer, error) {
	resp, err := c.Post(url+"/webhook", "application/x-www-form-urlencoded", strings.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	a := answer{code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	// Only a 200 is hookmail's JSON for sure: a load balancer answers
	// errors of its own.
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil && a.code == http.StatusOK {
		return answer{}, fmt.Errorf("reading a 200: %w", err)
	}
	return a, nil
}

// loadBody is sender event n: an SMS with data[id]=n from a number of its
// own.
func loadBody(n int) string {
	return fmt.Sprintf("secret=%s&type=sms&data[id]=%d&data[phone]=%%2B1555%07d&data[message]=load+%d", testSecret, n, n, n)
}

// webhookOutcome posts sender event senderID and returns hookmail's
// status ("queued", "duplicate", or the HTTP code) and event id, or an
// error when no answer came (connection refused or cut by a kill).
func webhookOutcome(url string, senderID int) (status, eventID string, err error) {
	a, err := postWebhook(http.DefaultClient, url, loadBody(senderID))
	switch {
	case err != nil:
		return "", "", err
	case a.code != http.StatusOK:
		return fmt.Sprint(a.code), "", nil
	}
	return a.Status, a.ID, nil
}

// webhookLoad is webhooks posted by several clients at once, each client
// posting one event after the other, the events numbered by one counter
// (their data[id]). A post that gets no answer, or a 503, is posted again
// after a pause, to the next target (a retrying sender with several
// addresses, or one address behind a load balancer); the same data[id]
// makes a post whose answer was lost come back "duplicate". Every other
// answer settles the event. Posting stops after total events (0: when
// stopped); an event still unanswered at the deadline is given up.
type webhookLoad struct {
	targets  []atomic.Pointer[string]
	client   *http.Client
	total    int
	deadline time.Time
	// body is event n's body (default loadBody); set it before start.
	body func(n int) string

	next     atomic.Int64
	answered atomic.Int64 // events settled or given up
	stopping atomic.Bool
	wg       sync.WaitGroup

	mu  sync.Mutex
	res loadResults
}

// loadResults is what the clients of a webhookLoad saw.
type loadResults struct {
	// Accepted maps the event id of each 200 "queued" to its data[id].
	Accepted map[string]int
	// Duplicates counts 200 "duplicate" answers: a post again of an event
	// stored before its first answer was lost, or one stored by another
	// instance.
	Duplicates int
	// NoAnswer counts posts that got no answer; each was posted again.
	NoAnswer int
	// Unavailable counts 503 answers, NoRetryAfter those without a
	// Retry-After; each was posted again.
	Unavailable, NoRetryAfter int
	// Refused counts the other answers by status; not posted again.
	Refused map[int]int
	// GaveUp counts events still unanswered at the deadline.
	GaveUp int
	// Failures are the first few posts that failed, for the log.
	Failures []string
}

// newLoad prepares a load of total events (0: until stop) posted to
// targets, each retried until limit from now at most.
func newLoad(total int, limit time.Duration, targets ...string) *webhookLoad {
	l := &webhookLoad{
		targets:  make([]atomic.Pointer[string], len(targets)),
		total:    total,
		deadline: time.Now().Add(limit),
		body:     loadBody,
		// A post never hangs the test; the clients' connections are
		// kept alive, each client's own.
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}},
		res:    loadResults{Accepted: map[string]int{}, Refused: map[int]int{}},
	}
	for i, u := range targets {
		l.setTarget(i, u)
	}
	return l
}

// setTarget points target i at url, e.g. a restarted hookmail's.
func (l *webhookLoad) setTarget(i int, url string) { l.targets[i].Store(&url) }

// start starts n clients.
func (l *webhookLoad) start(n int) {
	for range n {
		l.wg.Go(func() {
			for !l.stopping.Load() {
				i := int(l.next.Add(1))
				if l.total > 0 && i > l.total {
					return
				}
				l.post(i)
				l.answered.Add(1)
			}
		})
	}
}

// post posts event n until it is answered, or the deadline.
func (l *webhookLoad) post(n int) {
	for try := 0; ; try++ {
		if time.Now().After(l.deadline) {
			l.record(func(r *loadResults) { r.GaveUp++ })
			return
		}
		url := *l.targets[(n+try)%len(l.targets)].Load()
		a, err := postWebhook(l.client, url, l.body(n))
		switch {
		case err != nil:
			l.record(func(r *loadResults) { r.NoAnswer++; r.fail(fmt.Sprintf("event %d: %v", n, err)) })
			time.Sleep(20 * time.Millisecond)
			continue
		case a.code == http.StatusServiceUnavailable:
			l.record(func(r *loadResults) {
				r.Unavailable++
				if a.retryAfter == "" {
					r.NoRetryAfter++
				}
			})
			time.Sleep(50 * time.Millisecond)
			continue
		case a.code == http.StatusOK && a.Status == "queued":
			l.record(func(r *loadResults) { r.Accepted[a.ID] = n })
		case a.code == http.StatusOK && a.Status == "duplicate":
			l.record(func(r *loadResults) { r.Duplicates++ })
		default:
			l.record(func(r *loadResults) {
				r.Refused[a.code]++
				r.fail(fmt.Sprintf("event %d: %d %q", n, a.code, a.Status))
			})
		}
		return
	}
}

func (l *webhookLoad) record(f func(*loadResults)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(&l.res)
}

func (r *loadResults) fail(what string) {
	if len(r.Failures) < 5 {
		r.Failures = append(r.Failures, what)
	}
}

// wait waits until the clients are done: total events settled, or stop.
func (l *webhookLoad) wait() {
	l.wg.Wait()
	l.client.CloseIdleConnections()
}

// stop has each client stop after the event in hand, and waits for them.
func (l *webhookLoad) stop() {
	l.stopping.Store(true)
	l.wait()
}

// results returns what the clients saw so far.
func (l *webhookLoad) results() loadResults {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.res
	r.Accepted, r.Refused = maps.Clone(r.Accepted), maps.Clone(r.Refused)
	r.Failures = append([]string(nil), r.Failures...)
	return r
}

// progress counts the events accepted and the 503s so far.
func (l *webhookLoad) progress() (accepted, unavailable int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.res.Accepted), l.res.Unavailable
}

// failed counts the posts that got anything but a 200.
func (r loadResults) failed() int {
	n := r.NoAnswer + r.Unavailable + r.GaveUp
	for _, c := range r.Refused {
		n += c
	}
	return n
}
