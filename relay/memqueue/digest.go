package memqueue

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

// Collect adds ev to route's digest, once.
func (q *Queue) Collect(_ context.Context, rt *config.Route, ev *relay.Event) error {
	if err := q.check(); err != nil {
		return err
	}
	q.s.mu.Lock()
	defer q.s.mu.Unlock()
	q.s.collect(rt, rt.Name, ev, q.now())
	return nil
}

// collect adds ev to the digest named name, once, with where rt sends it;
// the caller holds s.mu.
func (s *Store) collect(rt *config.Route, name string, ev *relay.Event, now time.Time) {
	d := s.digests[name]
	if d == nil {
		d = map[string]relay.DigestEntry{}
		s.digests[name] = d
	}
	if _, ok := d[ev.ID]; !ok {
		d[ev.ID] = relay.DigestEntry{Event: *ev, Collected: now, To: rt.To, Cc: rt.Cc, Bcc: rt.Bcc, ReplyTo: rt.ReplyTo}
	}
}

// ClaimDigest lets this Queue alone send route's digest for ttl; while
// the claim holds, nobody claims it again, this Queue neither.
func (q *Queue) ClaimDigest(_ context.Context, route string, ttl time.Duration) (bool, error) {
	s := q.s
	s.mu.Lock()
	defer s.mu.Unlock()
	now := q.now()
	if c, ok := s.claims[route]; ok && now.Before(c.until) {
		return false, nil
	}
	s.claims[route] = claim{owner: q.owner, until: now.Add(ttl)}
	return true, nil
}

// ReleaseDigest gives up this Queue's claim on route's digest.
func (q *Queue) ReleaseDigest(_ context.Context, route string) error {
	s := q.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.claims[route].owner == q.owner {
		delete(s.claims, route)
	}
	return nil
}

// entries are route's collected events, oldest first; the caller holds s.mu.
func (s *Store) entries(route string) []relay.DigestEntry {
	var out []relay.DigestEntry
	for _, e := range s.digests[route] {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b relay.DigestEntry) int { return cmp.Compare(a.Event.ID, b.Event.ID) })
	return out
}

// Digest returns up to limit of route's collected events, and their count.
func (q *Queue) Digest(_ context.Context, route string, limit int) ([]relay.DigestEntry, int, error) {
	q.s.mu.Lock()
	defer q.s.mu.Unlock()
	all := q.s.entries(route)
	if limit > 0 && len(all) > limit {
		return all[:limit], len(all), nil
	}
	return all, len(all), nil
}

// DigestRoutes names the routes with collected events.
func (q *Queue) DigestRoutes(context.Context) ([]string, error) {
	q.s.mu.Lock()
	defer q.s.mu.Unlock()
	var out []string
	for route, d := range q.s.digests {
		if len(d) > 0 {
			out = append(out, route)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Forget removes the given events from route's digest.
func (q *Queue) Forget(_ context.Context, route string, ids []string) error {
	q.s.mu.Lock()
	defer q.s.mu.Unlock()
	for _, id := range ids {
		delete(q.s.digests[route], id)
	}
	return nil
}

// BuryDigest moves the given events of route's digest to the dead
// letters: an event buried already is buried again, its history kept; one
// still waiting keeps its entry collected (as the other backends do).
func (q *Queue) BuryDigest(_ context.Context, route string, ids []string, reason string) (int, error) {
	s := q.s
	s.mu.Lock()
	defer s.mu.Unlock()
	now := q.now()
	moved := 0
	for _, id := range ids {
		e, ok := s.digests[route][id]
		if _, waiting := s.waiting[id]; !ok || waiting {
			continue
		}
		it, buried := s.dead[id]
		if buried {
			it.LastError, it.DeadReason, it.Died = reason, reason, now
		} else {
			it = &relay.Item{Event: e.Event, Attempts: 1, NextAttempt: now, LastError: reason, DeadReason: reason, Died: now}
		}
		it.Record(now, "moved to the dead letters from route "+route+"'s digest: "+reason)
		s.dead[id] = it
		delete(s.digests[route], id)
		moved++
	}
	return moved, nil
}
