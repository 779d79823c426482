package spool

import (
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hookmail/hookmail/relay"
)

// remember records key for the dedup window and returns "", or returns the
// id of the event that holds key already.
func (s *Spool) remember(tx *bolt.Tx, key, id string) (string, error) {
	h := relay.HashDedupKey(key)
	b := tx.Bucket(bucketDedup)
	now := s.now()
	if v := b.Get(h[:]); len(v) > 8 && now.UnixNano() < int64(binary.BigEndian.Uint64(v)) {
		return string(v[8:]), nil
	}
	exp := now.Add(s.opts.dedupWindow)
	v := binary.BigEndian.AppendUint64(nil, uint64(exp.UnixNano()))
	if err := b.Put(h[:], append(v, id...)); err != nil {
		return "", err
	}
	return "", tx.Bucket(bucketDedupExp).Put(append(v, h[:]...), nil)
}

// Expired dedup keys are deleted at most dedupSweepMax per commit, so a
// sweep never holds up intake for long, and sweeps are at least
// dedupSweepEvery apart, so keys expiring one after another go in one.
const (
	dedupSweepEvery = time.Minute
	dedupSweepMax   = 1000
)

// sweepDedup deletes expired dedup keys until the spool closes. Between
// sweeps it sleeps until the earliest key left expires (at least
// dedupSweepEvery), or a whole window when none is left: a key stored
// meanwhile expires after that. An idle spool is not woken for nothing.
func (s *Spool) sweepDedup() {
	for {
		wait := dedupSweepEvery // after a failure: the disk is in trouble, try again
		if next, err := s.sweepExpired(); err == nil {
			wait = max(s.opts.dedupWindow, dedupSweepEvery)
			if !next.IsZero() {
				wait = max(next.Sub(s.now()), dedupSweepEvery)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-s.closing:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// sweepExpired deletes the expired dedup keys, and returns when the
// earliest key left expires (zero when none is left). It writes only when
// a key has expired.
func (s *Spool) sweepExpired() (time.Time, error) {
	for {
		var first uint64
		if err := s.view(func(tx *bolt.Tx) error {
			if k, _ := tx.Bucket(bucketDedupExp).Cursor().First(); len(k) > 8 {
				first = binary.BigEndian.Uint64(k)
			}
			return nil
		}); err != nil {
			return time.Time{}, err
		}
		now := uint64(s.now().UnixNano())
		if first == 0 || first > now {
			if first == 0 {
				return time.Time{}, nil
			}
			return time.Unix(0, int64(first)), nil
		}
		err := s.update(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketDedupExp).Cursor()
			for n, k := 0, firstKey(c); n < dedupSweepMax && len(k) > 8 && binary.BigEndian.Uint64(k) <= now; n, k = n+1, firstKey(c) {
				h := k[8:]
				if v := tx.Bucket(bucketDedup).Get(h); v != nil && binary.BigEndian.Uint64(v) <= now {
					if err := tx.Bucket(bucketDedup).Delete(h); err != nil {
						return err
					}
				}
				if err := c.Delete(); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return time.Time{}, err
		}
	}
}

func firstKey(c *bolt.Cursor) []byte {
	k, _ := c.First()
	return k
}
