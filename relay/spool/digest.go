package spool

import (
	"bytes"
	"context"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

// digestKey is a collected event's key: route name, NUL, event id (which
// is time-ordered), so one route's entries are contiguous and oldest first.
func digestKey(route, id string) []byte {
	return append(append([]byte(route), 0), id...)
}

func decodeDigest(raw []byte) (relay.DigestEntry, error) {
	var r digestRecord
	if err := unmarshal(raw, &r); err != nil {
		return relay.DigestEntry{}, err
	}
	return relay.DigestEntry{Event: r.Event.event(), Collected: r.Collected, To: r.To, Cc: r.Cc, Bcc: r.Bcc, ReplyTo: r.ReplyTo}, nil
}

// Collect stores ev in route's digest. The key is the event's own id, so
// collecting it again keeps the first copy.
func (s *Spool) Collect(_ context.Context, rt *config.Route, ev *relay.Event) error {
	raw, err := marshal(digestRecord{Event: toEventRecord(ev), Collected: s.now(), To: rt.To, Cc: rt.Cc, Bcc: rt.Bcc, ReplyTo: rt.ReplyTo})
	if err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		b, k := tx.Bucket(bucketDigests), digestKey(rt.Name, ev.ID)
		if b.Get(k) != nil {
			return nil // collected before a crash; keep the first copy
		}
		return b.Put(k, raw)
	})
}

// ClaimDigest claims route's digest for this process. One process holds
// the spool, so the claim only keeps two callers of this process apart.
func (s *Spool) ClaimDigest(_ context.Context, route string, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if until, ok := s.claims[route]; ok && now.Before(until) {
		return false, nil
	}
	s.claims[route] = now.Add(ttl)
	return true, nil
}

// ReleaseDigest gives up the claim on route's digest.
func (s *Spool) ReleaseDigest(_ context.Context, route string) error {
	s.mu.Lock()
	delete(s.claims, route)
	s.mu.Unlock()
	return nil
}

// Digest reads route's collected events, oldest first.
func (s *Spool) Digest(_ context.Context, route string, limit int) ([]relay.DigestEntry, int, error) {
	var out []relay.DigestEntry
	n := 0
	prefix := digestKey(route, "")
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDigests).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			n++
			if limit > 0 && len(out) >= limit {
				continue
			}
			e, err := decodeDigest(v)
			if err != nil {
				return recordError(string(k), err)
			}
			out = append(out, e)
		}
		return nil
	})
	return out, n, err
}

// DigestRoutes lists the route names with collected events.
func (s *Spool) DigestRoutes(context.Context) ([]string, error) {
	var routes []string
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDigests).Cursor()
		for k, _ := c.First(); k != nil; {
			route, _, _ := bytes.Cut(k, []byte{0})
			routes = append(routes, string(route))
			// Skip past this route's entries: its name, then NUL+1.
			k, _ = c.Seek(append(append([]byte(nil), route...), 1))
		}
		return nil
	})
	return routes, err
}

// BuryDigest moves the given entries of route's digest to the dead letters.
// An event buried from another digest already is buried again, its history
// kept, and counted once. An event still waiting in the queue (a route of
// its own still owes it) keeps its entry collected: the next failed digest
// buries it, once the queue is done with the event. Its dead letter would
// otherwise share the waiting item's id.
func (s *Spool) BuryDigest(_ context.Context, route string, ids []string, reason string) (int, error) {
	now := s.now()
	what := "moved to the dead letters from route " + route + "'s digest: " + reason
	moved := 0
	err := s.updateCounted(func(tx *bolt.Tx, t tally) error {
		moved = 0 // run again alone after a batch's failure
		b, dead := tx.Bucket(bucketDigests), tx.Bucket(bucketDead)
		for _, id := range ids {
			k := digestKey(route, id)
			v := b.Get(k)
			if v == nil || tx.Bucket(bucketEvents).Get([]byte(id)) != nil {
				continue
			}
			var it *relay.Item
			if old := dead.Get([]byte(id)); old != nil {
				var err error
				if it, err = decodeItem(old, relay.StateDead); err != nil {
					return recordError(id, err)
				}
				it.LastError, it.DeadReason, it.Died = reason, reason, now
			} else {
				e, err := decodeDigest(v)
				if err != nil {
					return recordError(string(k), err)
				}
				it = &relay.Item{Event: e.Event, Attempts: 1, NextAttempt: now, LastError: reason, DeadReason: reason, Died: now}
				t.add(e.Event.Type, 0, 1)
			}
			it.Record(now, what)
			raw, err := encodeItem(it)
			if err != nil {
				return err
			}
			if err := dead.Put([]byte(id), raw); err != nil {
				return err
			}
			if err := b.Delete(k); err != nil {
				return err
			}
			moved++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return moved, nil
}

// Forget deletes the given entries of route's digest.
func (s *Spool) Forget(_ context.Context, route string, ids []string) error {
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDigests)
		for _, id := range ids {
			if err := b.Delete(digestKey(route, id)); err != nil {
				return err
			}
		}
		return nil
	})
}
