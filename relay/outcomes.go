package relay

import (
	"cmp"
	"slices"
	"sync"
	"time"
)

// OutcomeWindow is how far back Outcomes remember.
const OutcomeWindow = time.Hour

// maxCauses bounds the distinct failure causes Outcomes keep.
const maxCauses = 20

// maxCauseLen bounds a cause's text: errors carry a server's whole reply.
const maxCauseLen = 300

// Outcomes keeps this process's delivery outcomes of the last hour, minute
// by minute, in memory: the admin page's overview shows them. The metrics'
// counters say how many since the start and need Prometheus to tell the
// last hour; these need nothing, and go with a restart. On a queue several
// instances share, each instance counts its own deliveries.
type Outcomes struct {
	mu      sync.Mutex
	minutes [60]minuteCount // by Unix minute modulo 60
	causes  map[string]*Cause
}

type minuteCount struct {
	minute int64 // Unix minute this count is of
	sent   int
	failed [Config + 1]int // by ErrorClass
	dead   int
}

// Cause is one reason deliveries failed, with how often and when last.
type Cause struct {
	// Class is the failure's class: temporary, permanent or config; dead
	// for an event buried without an attempt (no route takes it).
	Class string
	Error string
	Count int
	First time.Time
	Last  time.Time
}

// OutcomeSummary is what Outcomes saw within OutcomeWindow of a moment.
type OutcomeSummary struct {
	// Sent counts emails delivered (digests included).
	Sent int
	// Temporary, Permanent and Config count failed attempts by class.
	Temporary, Permanent, Config int
	// Dead counts events moved to the dead letters.
	Dead int
	// Causes are the failures' causes, the latest first.
	Causes []Cause
}

func newOutcomes() *Outcomes { return &Outcomes{causes: map[string]*Cause{}} }

// count returns the count of at's minute, reset when it last held an
// older minute; the caller holds o.mu.
func (o *Outcomes) count(at time.Time) *minuteCount {
	m := at.Unix() / 60
	c := &o.minutes[m%60]
	if c.minute != m {
		*c = minuteCount{minute: m}
	}
	return c
}

func (o *Outcomes) sent(at time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.count(at).sent++
}

func (o *Outcomes) failed(at time.Time, class ErrorClass, err string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	counted := class
	if class == Throttled || class == Quota {
		counted = Temporary // retried, as the page tells it
	}
	if c := o.count(at); int(counted) < len(c.failed) {
		c.failed[counted]++
	}
	o.cause(at, class.String(), err)
}

func (o *Outcomes) dead(at time.Time, reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.count(at).dead++
	if reason == ReasonNoRoute {
		o.cause(at, "dead", reason)
	}
}

// cause counts one failure of class and text; the caller holds o.mu.
func (o *Outcomes) cause(at time.Time, class, text string) {
	if len(text) > maxCauseLen {
		text = text[:maxCauseLen] + "…"
	}
	key := class + "\x00" + text
	c := o.causes[key]
	if c == nil {
		if len(o.causes) >= maxCauses {
			var oldest string
			for k, c := range o.causes {
				if oldest == "" || c.Last.Before(o.causes[oldest].Last) {
					oldest = k
				}
			}
			delete(o.causes, oldest)
		}
		c = &Cause{Class: class, Error: text, First: at}
		o.causes[key] = c
	}
	c.Count++
	c.Last = at
}

// Summary is what o saw within OutcomeWindow before now. A cause's count
// is since it first failed, when that is within the window.
func (o *Outcomes) Summary(now time.Time) OutcomeSummary {
	o.mu.Lock()
	defer o.mu.Unlock()
	var s OutcomeSummary
	cur := now.Unix() / 60
	for _, c := range o.minutes {
		if c.minute <= cur-60 || c.minute > cur {
			continue
		}
		s.Sent += c.sent
		s.Temporary += c.failed[Temporary]
		s.Permanent += c.failed[Permanent]
		s.Config += c.failed[Config]
		s.Dead += c.dead
	}
	for k, c := range o.causes {
		if now.Sub(c.Last) > OutcomeWindow {
			delete(o.causes, k)
			continue
		}
		s.Causes = append(s.Causes, *c)
	}
	slices.SortFunc(s.Causes, func(a, b Cause) int {
		return cmp.Or(b.Last.Compare(a.Last), cmp.Compare(a.Error, b.Error))
	})
	return s
}
