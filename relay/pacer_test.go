package relay

import (
	"log/slog"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/config/configtest"
	"github.com/hookmail/hookmail/relay/relaytest"
)

// fakeClock is a clock whose sleeps pass at once, moving it on.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) after(d time.Duration) <-chan time.Time {
	c.advance(d)
	ch := make(chan time.Time, 1)
	ch <- c.now()
	return ch
}

// newTestPacer is a pacer on a fake clock and a store of its own, with the
// config cfg.
func newTestPacer(t *testing.T, cfg *config.Config) (*pacer, *fakeClock) {
	t.Helper()
	clock := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	p := newPacer(NewLocalPace(clock.now), slog.New(slog.DiscardHandler), prometheus.NewRegistry(), func() *config.Config { return cfg })
	p.now, p.after = clock.now, clock.after
	return p, clock
}

// send waits for a slot as a worker does before it sends, and fails the
// test unless the email may go now.
func send(t *testing.T, p *pacer, cfg *config.Config, route *config.Route) time.Time {
	t.Helper()
	until, err := p.wait(t.Context(), nil, cfg, route, nil)
	if err != nil || !until.IsZero() {
		t.Fatalf("wait = %v, %v; want a slot", until, err)
	}
	return p.now()
}

// TestPacerKeepsTheRate: with smtp.rate 60/m, 300 emails go out no more
// than 60 in any minute, and no slower than the rate allows.
func TestPacerKeepsTheRate(t *testing.T) {
	cfg := configtest.Default(t)
	cfg.SMTP.Rate = "60/m"
	p, _ := newTestPacer(t, cfg)
	var sent []time.Time
	for range 300 {
		sent = append(sent, send(t, p, cfg, &cfg.Routes[0]))
	}
	if most := relaytest.MaxInWindow(sent, time.Minute); most > 60 {
		t.Errorf("%d emails within a minute, want at most 60", most)
	}
	if took := sent[len(sent)-1].Sub(sent[0]); took != 299*time.Second {
		t.Errorf("300 emails took %s, want 299s: one a second", took)
	}
	if got := p.paceNow(); got != 1 {
		t.Errorf("pace %v, want 1 a second", got)
	}
}

// TestPacerPutsARouteBack: an email whose route's own rate has no slot goes
// back to the queue until its slot, each after the one put back before it,
// and does not take smtp.rate's slot meanwhile.
func TestPacerPutsARouteBack(t *testing.T) {
	cfg := configtest.Default(t)
	cfg.SMTP.Rate = "10/s"
	cfg.Routes = append(cfg.Routes, config.Route{Name: "chatty", To: []string{"a@example.com"}, Rate: "10/m"})
	p, clock := newTestPacer(t, cfg)
	chatty := &cfg.Routes[1]
	start := send(t, p, cfg, chatty)
	clock.advance(time.Second)
	for i, want := range []time.Duration{6 * time.Second, 12 * time.Second, 18 * time.Second} {
		until, err := p.wait(t.Context(), nil, cfg, chatty, nil)
		if err != nil || !until.Equal(start.Add(want)) {
			t.Fatalf("email %d of the route: put back until %v (%v), want %v", i+2, until, err, start.Add(want))
		}
		p.hold("ev", until)
	}
	// smtp.rate's slot is still free for another route.
	if until, err := p.wait(t.Context(), nil, cfg, &cfg.Routes[0], nil); err != nil || !until.IsZero() || !p.now().Equal(start.Add(time.Second)) {
		t.Errorf("another route's email: %v, %v at %s; want it sent at once", until, err, p.now().Sub(start))
	}
	if n := p.heldBack(); n != 1 {
		t.Errorf("%d emails held back, want 1", n)
	}
}

// TestPacerFollowsThrottling: a throttling reply halves the rate the
// emails went at; replies to emails sent before the cut do not cut again;
// the pace rises a tenth of the cut pace every 10 s, and is uncapped once
// back where it was cut.
func TestPacerFollowsThrottling(t *testing.T) {
	cfg := configtest.Default(t)
	p, clock := newTestPacer(t, cfg)
	var last time.Time
	for range 100 { // 10 a second for 10 s, uncapped
		last = send(t, p, cfg, &cfg.Routes[0])
		clock.advance(100 * time.Millisecond)
	}
	if got := p.paceNow(); !math.IsInf(got, 1) {
		t.Fatalf("pace %v before any throttling, want +Inf", got)
	}
	p.throttled(last, cfg)
	if got := p.paceNow(); got != 5 {
		t.Fatalf("pace %v after a throttling reply at 10 a second, want 5", got)
	}
	p.throttled(last, cfg) // a reply to an email sent before the cut
	if got := p.paceNow(); got != 5 {
		t.Fatalf("pace %v after a second reply to an email sent before the cut, want still 5", got)
	}
	var sent []time.Time
	for range 10 {
		sent = append(sent, send(t, p, cfg, &cfg.Routes[0]))
	}
	if gap := sent[9].Sub(sent[0]) / 9; gap != 200*time.Millisecond {
		t.Errorf("emails %s apart at the cut pace, want 200ms", gap)
	}
	clock.advance(10*time.Second - sent[9].Sub(sent[0]) - 200*time.Millisecond)
	if got := p.paceNow(); math.Abs(got-5.5) > 1e-9 {
		t.Errorf("pace %v 10 s after the cut, want 5.5", got)
	}
	clock.advance(80 * time.Second)
	if got := p.paceNow(); math.Abs(got-9.5) > 1e-9 {
		t.Errorf("pace %v 90 s after the cut, want 9.5", got)
	}
	clock.advance(10 * time.Second)
	if got := p.paceNow(); !math.IsInf(got, 1) {
		t.Errorf("pace %v 100 s after the cut, want +Inf: uncapped again", got)
	}
}

// TestPacerThrottledUnderARate: with smtp.rate set, a throttling reply
// halves the rate, and the pace rises back to it.
func TestPacerThrottledUnderARate(t *testing.T) {
	cfg := configtest.Default(t)
	cfg.SMTP.Rate = "2/s"
	p, clock := newTestPacer(t, cfg)
	for range 40 {
		send(t, p, cfg, &cfg.Routes[0])
	}
	p.throttled(p.now(), cfg)
	if got := p.paceNow(); got != 1 {
		t.Fatalf("pace %v after a throttling reply at smtp.rate 2/s, want 1", got)
	}
	clock.advance(100 * time.Second)
	if got := p.paceNow(); got != 2 {
		t.Errorf("pace %v 100 s later, want smtp.rate's 2", got)
	}
	p.throttled(p.now(), cfg)
	p.throttled(p.now().Add(time.Millisecond), cfg)
	for range 20 {
		p.throttled(p.now(), cfg)
		clock.advance(time.Millisecond)
	}
	if got := p.paceNow(); got != paceFloor {
		t.Errorf("pace %v after throttling on every email, want the floor, one a minute", got)
	}
	// From the floor, back at the rate within 200 s of the last cut.
	// (Before, the rise was a tenth of the floor's pace: over 3 hours.)
	clock.advance(200 * time.Second)
	if got := p.paceNow(); got != 2 {
		t.Errorf("pace %v 200 s after the last of the cuts, want smtp.rate's 2", got)
	}
}

// TestPacerThrottledBelowItsRate: under an smtp.rate far above what was
// sent, the pace climbs back to the rate the server complained at, by a
// twentieth of it every 10 s, not by a share of smtp.rate: that put it
// above the complaint within 10 s.
func TestPacerThrottledBelowItsRate(t *testing.T) {
	cfg := configtest.Default(t)
	cfg.SMTP.Rate = "100/s"
	p, clock := newTestPacer(t, cfg)
	var last time.Time
	for range 40 { // 4 a second for 10 s
		last = send(t, p, cfg, &cfg.Routes[0])
		clock.advance(250 * time.Millisecond)
	}
	p.throttled(last, cfg)
	if got := p.paceNow(); math.Abs(got-2) > 0.1 {
		t.Fatalf("pace %v after a throttling reply at 4 a second, want 2", got)
	}
	clock.advance(10 * time.Second)
	if got := p.paceNow(); got > 2.5 {
		t.Errorf("pace %v 10 s after the cut, want about 2.2: still below the 4 a second the server complained at", got)
	}
}

// TestPacerQuotaHold: a quota reply holds every email until the hold ends:
// they go back to the queue, and after it they go.
func TestPacerQuotaHold(t *testing.T) {
	cfg := configtest.Default(t)
	cfg.SMTP.QuotaReset = "1h"
	p, clock := newTestPacer(t, cfg)
	send(t, p, cfg, &cfg.Routes[0])
	end := p.replied(Quota, p.now(), cfg)
	if want := p.now().Add(time.Hour); !end.Equal(want) {
		t.Fatalf("held until %s, want %s", end, want)
	}
	if !p.paced(cfg) || p.paceNow() != 0 {
		t.Errorf("paced %v, pace %v during the hold; want paced at 0", p.paced(cfg), p.paceNow())
	}
	until, err := p.wait(t.Context(), nil, cfg, &cfg.Routes[0], nil)
	if err != nil || !until.Equal(end) {
		t.Errorf("an email during the hold: %v, %v; want it put back until %s", until, err, end)
	}
	clock.advance(time.Hour)
	send(t, p, cfg, &cfg.Routes[0])
	if p.paced(cfg) {
		t.Error("still paced after the hold")
	}
}
