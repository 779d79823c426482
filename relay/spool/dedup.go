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

// dedupSweepEvery is how often expired dedup keys are deleted, at most
// dedupSweepMax per commit so a sweep never holds up intake for long.
const (
	dedupSweepEvery = time.Minute
	dedupSweepMax   = 1000
)

// sweepDedup deletes expired dedup keys until the spool closes.
func (s *Spool) sweepDedup() {
	t := time.NewTicker(dedupSweepEvery)
	defer t.Stop()
	for {
		for more := true; more; {
			more = false
			err := s.update(func(tx *bolt.Tx) error {
				more = false
				c := tx.Bucket(bucketDedupExp).Cursor()
				now := uint64(s.now().UnixNano())
				n := 0
				for k, _ := c.First(); k != nil && len(k) > 8 && binary.BigEndian.Uint64(k) <= now; k, _ = c.First() {
					if n == dedupSweepMax {
						more = true
						return nil
					}
					h := k[8:]
					if v := tx.Bucket(bucketDedup).Get(h); v != nil && binary.BigEndian.Uint64(v) <= now {
						if err := tx.Bucket(bucketDedup).Delete(h); err != nil {
							return err
						}
					}
					if err := c.Delete(); err != nil {
						return err
					}
					n++
				}
				return nil
			})
			if err != nil {
				break // the disk is in trouble; the next tick tries again
			}
		}
		select {
		case <-s.closing:
			return
		case <-t.C:
		}
	}
}
