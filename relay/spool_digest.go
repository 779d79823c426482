package relay

import (
	"bytes"
	"context"
	"encoding/json"

	bolt "go.etcd.io/bbolt"
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
func (s *Spool) Collect(_ context.Context, route string, ev *Event) error {
	raw, err := json.Marshal(DigestEntry{Event: *ev, Collected: s.now()})
	if err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketDigests)
		if err != nil {
			return err
		}
		k := digestKey(route, ev.ID)
		if b.Get(k) != nil {
			return nil // collected before a crash; keep the first copy
		}
		return b.Put(k, raw)
	})
}

// Digest reads route's collected events, oldest first.
func (s *Spool) Digest(_ context.Context, route string, limit int) ([]DigestEntry, int, error) {
	var out []DigestEntry
	n := 0
	prefix := digestKey(route, "")
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDigests)
		if b == nil {
			return nil
		}
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

// Forget deletes the given entries of route's digest.
func (s *Spool) Forget(_ context.Context, route string, ids []string) error {
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDigests)
		if b == nil {
			return nil
		}
		for _, id := range ids {
			if err := b.Delete(digestKey(route, id)); err != nil {
				return err
			}
		}
		return nil
	})
}
