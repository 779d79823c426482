package relay

import (
	"bytes"
	"context"
	"encoding/json"

	bolt "go.etcd.io/bbolt"

	"github.com/hookmail/hookmail/config"
)

// bucketDigests holds digest routes' collected events, keyed by route name,
// a NUL, and the event id (time-ordered), so one route's entries are
// contiguous and oldest first.
var bucketDigests = []byte("digests")

var _ DigestStore = (*Spool)(nil)

func digestKey(route, id string) []byte {
	return append(append([]byte(route), 0), id...)
}

// Collect stores ev in route's digest. The key is the event's own id, so
// collecting it again overwrites the same entry.
func (s *Spool) Collect(_ context.Context, rt *config.Route, ev *Event) error {
	route := rt.Name
	raw, err := json.Marshal(DigestEntry{Event: *ev, Collected: s.now(), To: rt.To, Cc: rt.Cc, Bcc: rt.Bcc, ReplyTo: rt.ReplyTo})
	if err != nil {
		return err
	}
	var stored bool
	err = s.update(func(tx *bolt.Tx) error {
		stored = false
		b := tx.Bucket(bucketDigests)
		k := digestKey(route, ev.ID)
		if b.Get(k) != nil {
			return nil // collected before a crash; keep the first copy
		}
		stored = true
		return b.Put(k, raw)
	})
	if err == nil && stored {
		s.bytes.Add(int64(len(raw))) // collected events count in spool.max_bytes
	}
	return err
}

// Digest reads route's collected events, oldest first.
func (s *Spool) Digest(_ context.Context, route string, limit int) ([]DigestEntry, int, error) {
	var out []DigestEntry
	n := 0
	prefix := digestKey(route, "")
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDigests)
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			n++
			if limit > 0 && len(out) >= limit {
				continue
			}
			var e DigestEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return err
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
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDigests)
		c := b.Cursor()
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
func (s *Spool) BuryDigest(_ context.Context, route string, ids []string, reason string) error {
	var added int64
	var types []string
	now := s.now()
	err := s.update(func(tx *bolt.Tx) error {
		added, types = 0, types[:0]
		b := tx.Bucket(bucketDigests)
		for _, id := range ids {
			k := digestKey(route, id)
			v := b.Get(k)
			if v == nil {
				continue
			}
			var e DigestEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			it := Item{Event: e.Event, Attempts: 1, NextAttempt: now, LastError: reason, DeadReason: reason, Died: now}
			it.record(now, "moved to the dead letters from route "+route+"'s digest: "+reason)
			raw, err := json.Marshal(it)
			if err != nil {
				return err
			}
			if err := tx.Bucket(bucketDead).Put([]byte(e.Event.ID), raw); err != nil {
				return err
			}
			if err := b.Delete(k); err != nil {
				return err
			}
			added += int64(len(raw)) - int64(len(v))
			types = append(types, e.Event.Type)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.bytes.Add(added)
	s.dead.Add(int64(len(types)))
	for _, t := range types {
		s.counts.add(t, 0, 1)
	}
	return nil
}

// Forget deletes the given entries of route's digest.
func (s *Spool) Forget(_ context.Context, route string, ids []string) error {
	var freed int64
	err := s.update(func(tx *bolt.Tx) error {
		freed = 0
		b := tx.Bucket(bucketDigests)
		for _, id := range ids {
			k := digestKey(route, id)
			freed += int64(len(b.Get(k)))
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		s.bytes.Add(-freed)
	}
	return err
}
