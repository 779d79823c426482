package relay

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/hookmail/hookmail/config"
)

// maxWaitInHand is the longest a worker waits for a slot holding an
// email; an email with a longer wait goes back to the queue until then.
const maxWaitInHand = 30 * time.Second

// pacer spaces this process's emails. smtp.rate and the routes' rates are
// buckets in the shared PaceStore; the pace that throttling replies set
// (AIMD, as TCP reacts to congestion: each instance to the replies it gets)
// and the hold of a quota reply are this process's own.
//
// While anything paces the emails, the workers take turns: the worker
// whose turn it is waits until a slot is free and only then leases, so
// that the queue's order (route priority, then age) decides which email
// takes each slot; the others wait for the turn without an email in hand.
// A route's own rate puts its emails back in the queue until their slot
// instead, so that they never hold up other routes' emails.
type pacer struct {
	store PaceStore
	now   func() time.Time
	after func(time.Duration) <-chan time.Time
	log   *slog.Logger
	cfg   func() *config.Config // the config in force
	turns chan struct{}         // holds a token while a worker has the turn

	mu        sync.Mutex
	pace      float64   // emails a second since a throttling reply; 0: uncapped
	ceiling   float64   // where the pace's rise ends, uncapped again
	step      float64   // what the pace rises by every paceRiseEvery
	cut, rose time.Time // when the pace was last cut, and last rose
	next      time.Time // when the pace allows this process's next email
	smtpFree  time.Time // when smtp.rate's bucket is next free, as this process last saw it
	heldUntil time.Time // a quota reply holds every email until then
	routeNext map[string]time.Time
	sends     [64]time.Time // the last sends, a ring, to measure the rate throttled
	sent      int
	held      map[string]time.Time // emails put back for pacing, until when
	waiting   int                  // workers waiting for a slot with an email in hand
}

func newPacer(store PaceStore, log *slog.Logger, reg prometheus.Registerer, cfg func() *config.Config) *pacer {
	p := &pacer{
		store: store, now: time.Now, after: time.After, log: log, cfg: cfg,
		turns: make(chan struct{}, 1), routeNext: map[string]time.Time{}, held: map[string]time.Time{},
	}
	f := promauto.With(reg)
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hookmail_smtp_pace_emails_per_second",
		Help: "The pace emails are sent at now: the one throttling replies set, else smtp.rate; +Inf when nothing caps it, 0 while a quota reply holds the emails.",
	}, p.paceNow)
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hookmail_smtp_quota_hold_seconds",
		Help: "Seconds until the hold of a quota reply ends (smtp.quota_reset); 0 when no quota reply holds the emails.",
	}, func() float64 {
		p.mu.Lock()
		defer p.mu.Unlock()
		return max(p.heldUntil.Sub(p.now()).Seconds(), 0)
	})
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hookmail_smtp_paced_emails",
		Help: "Emails this instance holds back for pacing now: waiting for a slot in a worker, or put back in the queue until their slot, the throttling's pace or a quota hold allows them.",
	}, func() float64 { return float64(p.heldBack()) })
	return p
}

// paced reports whether anything paces the emails now: smtp.rate, a pace
// a throttling reply set, or a quota hold.
func (p *pacer) paced(cfg *config.Config) bool {
	if _, ok := cfg.SMTP.PaceRate(); ok {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pace > 0 || p.heldUntil.After(p.now())
}

// turn waits, while the emails are paced, for this worker's turn and then
// until a slot is free, so that the lease that follows picks the email
// that deserves the slot. release ends the turn (once; wait ends it too).
func (p *pacer) turn(ctx context.Context, cfg *config.Config) (release func(), err error) {
	if !p.paced(cfg) {
		return func() {}, nil
	}
	release, ok := p.takeTurn(ctx.Done())
	if !ok {
		return nil, ctx.Err()
	}
	for {
		w := p.expected(p.now())
		if w <= 0 {
			return release, nil
		}
		// A second at most, so that a reload's new smtp.rate applies soon.
		if !p.sleep(ctx.Done(), min(w, time.Second)) {
			release()
			return nil, ctx.Err()
		}
	}
}

// takeTurn waits for the turn, until stop comes; release ends it.
func (p *pacer) takeTurn(stop <-chan struct{}) (release func(), ok bool) {
	select {
	case p.turns <- struct{}{}:
		return sync.OnceFunc(func() { <-p.turns }), true
	case <-stop:
		return nil, false
	}
}

// expected is how long until, as far as this process knows, an email may
// go: the quota hold, the pace, and smtp.rate's bucket as last seen.
func (p *pacer) expected(now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rise(now)
	at := p.heldUntil
	if p.pace > 0 && p.next.After(at) {
		at = p.next
	}
	if p.smtpFree.After(at) {
		at = p.smtpFree
	}
	return at.Sub(now)
}

// wait takes a slot for an email of route before it is sent, waiting for
// one if need be. A zero until means the slot is taken: send now. Else the
// email goes back to the queue until then, not counted as an attempt: its
// route's own rate has no slot before then, the wait is too long to hold
// the email, or stop came (the worker is to stop). release, when not nil,
// ends the worker's turn, and wait ends it as it returns. A worker without
// the turn (it leased before pacing began, or this is the event's second
// email) takes a slot as it comes: it holds its email already, and waiting
// for the turn could wait for a turn holder idle in Lease.
func (p *pacer) wait(ctx context.Context, stop <-chan struct{}, cfg *config.Config, route *config.Route, release func()) (until time.Time, err error) {
	if release != nil {
		defer release()
	}
	var buckets []Bucket
	if r, ok := cfg.SMTP.PaceRate(); ok {
		buckets = append(buckets, Bucket{Key: BucketSMTP, Every: r.Every()})
	}
	routeAt := -1
	var routeEvery time.Duration
	if route != nil {
		if r, ok := route.PaceRate(); ok {
			routeAt, routeEvery = len(buckets), r.Every()
			buckets = append(buckets, Bucket{Key: RouteBucket(route.Name), Every: routeEvery})
		}
	}
	for {
		now := p.now()
		w, undo := p.reserve(now)
		if w <= 0 && len(buckets) > 0 {
			var waits []time.Duration
			if waits, err = p.store.Take(ctx, buckets); err != nil || waits != nil {
				undo()
			}
			switch {
			case err != nil:
				return time.Time{}, err
			case waits == nil:
				p.taken(now, cfg)
				return time.Time{}, nil
			case routeAt >= 0 && waits[routeAt] > 0 && waits[routeAt] >= slicesMax(waits):
				return p.putBack(route.Name, now, waits[routeAt], routeEvery), nil
			}
			w = slicesMax(waits)
			p.mu.Lock()
			p.smtpFree = now.Add(w)
			p.mu.Unlock()
		} else if w <= 0 {
			p.taken(now, cfg)
			return time.Time{}, nil
		}
		if w > maxWaitInHand {
			return now.Add(w), nil
		}
		p.mu.Lock()
		p.waiting++
		p.mu.Unlock()
		ok := p.sleep(stop, w)
		p.mu.Lock()
		p.waiting--
		p.mu.Unlock()
		if !ok {
			return p.now(), nil
		}
	}
}

func slicesMax(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

// reserve takes the pace's next slot when the quota hold and the pace allow
// an email now, and says how long until they do otherwise. undo gives the
// slot back when the store has none.
func (p *pacer) reserve(now time.Time) (wait time.Duration, undo func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.heldUntil.After(now) {
		return p.heldUntil.Sub(now), func() {}
	}
	p.rise(now)
	if p.pace == 0 {
		return 0, func() {}
	}
	if p.next.After(now) {
		return p.next.Sub(now), func() {}
	}
	prev := p.next
	p.next = now.Add(time.Duration(float64(time.Second) / p.pace))
	mine := p.next
	return 0, func() {
		p.mu.Lock()
		if p.next.Equal(mine) {
			p.next = prev
		}
		p.mu.Unlock()
	}
}

// taken records a send at now, for the rate a throttling reply cuts, and
// that smtp.rate's bucket is next free a gap after it.
func (p *pacer) taken(now time.Time, cfg *config.Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sends[p.sent%len(p.sends)] = now
	p.sent++
	if r, ok := cfg.SMTP.PaceRate(); ok {
		p.smtpFree = now.Add(r.Every())
	}
}

// putBack is when an email of route goes back to the queue until, as its
// route's rate has no slot for wait: after the emails of the route put back
// before it, one gap each, so each comes back to a free slot rather than
// all to the same one.
func (p *pacer) putBack(route string, now time.Time, wait, every time.Duration) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	at := now.Add(wait)
	if last := p.routeNext[route]; !last.Before(at) {
		at = last.Add(every)
	}
	p.routeNext[route] = at
	return at
}

// hold records that the email id went back to the queue until then.
func (p *pacer) hold(id string, until time.Time) {
	p.mu.Lock()
	p.held[id] = until
	p.mu.Unlock()
}

// leased forgets id's hold: it is back in a worker's hands.
func (p *pacer) leased(id string) {
	p.mu.Lock()
	delete(p.held, id)
	p.mu.Unlock()
}

// heldBack counts the emails held back now, forgetting the holds past.
func (p *pacer) heldBack() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	for id, until := range p.held {
		if !until.After(now) {
			delete(p.held, id)
		}
	}
	return len(p.held) + p.waiting
}

// sleep waits d, and reports false when stop came first.
func (p *pacer) sleep(stop <-chan struct{}, d time.Duration) bool {
	select {
	case <-p.after(d):
		return true
	case <-stop:
		return false
	}
}
