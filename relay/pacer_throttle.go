package relay

import (
	"context"
	"log/slog"
	"math"
	"time"

	"github.com/hookmail/hookmail/config"
)

// How the pace follows the server's throttling replies: cut by half (never
// below one email a minute), then raised every paceRiseEvery by a tenth of
// the first cut's pace (half the ceiling, where the server complained), so
// that it is back there about 100 s after a first cut, 200 s at most after
// cuts in a row, and uncapped there (smtp.rate, if set, still applies).
const (
	paceCut       = 0.5
	paceRise      = 0.1
	paceRiseEvery = 10 * time.Second
	paceFloor     = 1.0 / 60
	// paceSample is how far back the last sends count for the rate the
	// server throttled, when no pace was in force yet.
	paceSample = 10 * time.Second
)

// replied is when an email the server answered with a throttling or quota
// reply (class) may go again: the pace is cut, or every email held until
// smtp.quota_reset. After a throttling reply that is at once, at its turn.
func (p *pacer) replied(class ErrorClass, sentAt time.Time, cfg *config.Config) time.Time {
	now := p.now()
	if class == Quota {
		until := cfg.SMTP.QuotaHoldUntil(now, cfg.Location())
		p.quota(until)
		return until
	}
	p.throttled(sentAt, cfg)
	return now
}

// throttled cuts the pace after a throttling reply to an email sent at
// sentAt; replies to emails sent before the last cut do not cut it again.
func (p *pacer) throttled(sentAt time.Time, cfg *config.Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if sentAt.Before(p.cut) {
		return
	}
	now := p.now()
	p.rise(now)
	wasUncapped := p.pace == 0
	base := p.pace
	if base == 0 {
		base = p.measured(now)
	}
	rate, limited := cfg.SMTP.PaceRate()
	if limited {
		base = min(base, rate.PerSecond())
	}
	p.pace = max(base*paceCut, paceFloor)
	if wasUncapped {
		// Where the server complained: under smtp.rate, the rate sent at,
		// which may be far below it.
		p.ceiling = base
	}
	// The rise is a share of the ceiling, not of the pace cut to: from
	// the first cut it is back in 10 steps, and after cuts in a row in 20
	// at most, where a share of a pace halved again and again took hours
	// from the floor.
	p.step = p.ceiling * paceCut * paceRise
	p.cut, p.rose = now, now
	p.next = now.Add(time.Duration(float64(time.Second) / p.pace))
	level := slog.LevelDebug
	if wasUncapped {
		level = slog.LevelWarn
	}
	p.log.Log(context.Background(), level, "the mail server asks hookmail to slow down; emails go out at a lower pace, and the throttled one waits its turn without counting as a failed attempt",
		"pace_per_second", round(p.pace), "back_to", round(p.ceiling))
}

// rise raises the pace by a step for every paceRiseEvery since it last
// rose, and uncaps it once it reaches the ceiling; the caller holds p.mu.
func (p *pacer) rise(now time.Time) {
	if p.pace == 0 {
		return
	}
	steps := now.Sub(p.rose) / paceRiseEvery
	if steps <= 0 {
		return
	}
	p.pace += float64(steps) * p.step
	p.rose = p.rose.Add(steps * paceRiseEvery)
	if p.pace >= p.ceiling {
		p.pace = 0
		p.log.Info("the mail server has not throttled hookmail for a while; the pace is back to normal")
	}
}

// measured is the rate of the last sends within paceSample before now:
// their count over the time since the first of them, a second at least
// (a few sends in a moment say little of a rate); the caller holds p.mu.
func (p *pacer) measured(now time.Time) float64 {
	n, first := 0, now
	for _, at := range p.sends {
		if !at.IsZero() && now.Sub(at) <= paceSample {
			n++
			if at.Before(first) {
				first = at
			}
		}
	}
	return float64(max(n, 1)) / max(now.Sub(first), time.Second).Seconds()
}

// quota holds every email until until, after a quota reply.
func (p *pacer) quota(until time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !until.After(p.heldUntil) {
		return
	}
	if !p.heldUntil.After(p.now()) {
		p.log.Warn("the mail server's sending quota is used up; every email waits in the queue until the hold ends (smtp.quota_reset), then sending starts again",
			"until", until.Format(time.RFC3339))
	}
	p.heldUntil = until
}

// paceNow is the pace gauge's value.
func (p *pacer) paceNow() float64 {
	rate, limited := p.cfg().SMTP.PaceRate()
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if p.heldUntil.After(now) {
		return 0
	}
	p.rise(now)
	switch {
	case p.pace > 0 && limited:
		return min(p.pace, rate.PerSecond())
	case p.pace > 0:
		return p.pace
	case limited:
		return rate.PerSecond()
	}
	return math.Inf(1)
}

func round(f float64) float64 { return math.Round(f*1000) / 1000 }
