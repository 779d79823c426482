package relay

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// typeCounts keeps Stats.ByType: waiting events and dead letters per type
// label, bounded like the metrics' type label.
type typeCounts struct {
	mu sync.Mutex
	m  map[string]TypeCount
}

func (c *typeCounts) add(typ string, waiting, dead int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]TypeCount{}
	}
	l := typeLabel(typ)
	tc := c.m[l]
	tc.Waiting += waiting
	tc.Dead += dead
	if tc == (TypeCount{}) {
		delete(c.m, l)
		return
	}
	c.m[l] = tc
}

func (c *typeCounts) snapshot() map[string]TypeCount {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.m)
}

// openCounts are the counts read once when the spool opens.
type openCounts struct {
	depth, dead int
	bytes       int64
	types       typeCounts
}

// scan walks every waiting event and dead letter once. It decodes only the
// type, so a damaged record is found here, at start-up, not by a worker.
func (c *openCounts) scan(tx *bolt.Tx) error {
	var head struct {
		Event struct {
			Type string `json:"type"`
		} `json:"event"`
	}
	if err := tx.Bucket(bucketDigests).ForEach(func(_, raw []byte) error {
		c.bytes += int64(len(raw))
		return nil
	}); err != nil {
		return err
	}
	for _, b := range [][]byte{bucketEvents, bucketDead} {
		dead := 0
		if string(b) == string(bucketDead) {
			dead = 1
		}
		err := tx.Bucket(b).ForEach(func(k, raw []byte) error {
			head.Event.Type = ""
			if err := json.Unmarshal(raw, &head); err != nil {
				return fmt.Errorf("record %s in %s does not decode: %w", k, b, err)
			}
			c.bytes += int64(len(raw))
			c.types.add(head.Event.Type, 1-dead, dead)
			c.depth += 1 - dead
			c.dead += dead
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// remember records key for the dedup window and returns "", or returns the
// id of the event that holds key already.
func (s *Spool) remember(tx *bolt.Tx, key, id string) (string, error) {
	h := sha256.Sum256([]byte(key))
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

var _ Inspector = (*Spool)(nil)

// List returns waiting (and delivering) items in due order, or dead letters
// in id order, which is the order they were received.
func (s *Spool) List(_ context.Context, state State, limit int) ([]Item, error) {
	var items []Item
	leased := s.leasedSet()
	err := s.db.View(func(tx *bolt.Tx) error {
		add := func(raw []byte, st State) error {
			var it Item
			if err := json.Unmarshal(raw, &it); err != nil {
				return err
			}
			if st == StateWaiting && leased[it.Event.ID] {
				st = StateDelivering
			}
			it.State = st
			items = append(items, it)
			return nil
		}
		full := func() bool { return limit > 0 && len(items) >= limit }
		if state == StateDead {
			c := tx.Bucket(bucketDead).Cursor()
			for k, raw := c.First(); k != nil && !full(); k, raw = c.Next() {
				if err := add(raw, StateDead); err != nil {
					return err
				}
			}
			return nil
		}
		events := tx.Bucket(bucketEvents)
		c := tx.Bucket(bucketDue).Cursor()
		for k, _ := c.First(); k != nil && !full(); k, _ = c.Next() {
			if raw := events.Get(k[8:]); raw != nil {
				if err := add(raw, StateWaiting); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return items, err
}

func (s *Spool) leasedSet() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.leased)
}

// hold leases id for an operator's change, unless a worker holds it.
func (s *Spool) hold(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leased[id] {
		return false
	}
	s.leased[id] = true
	return true
}

func (s *Spool) isLeased(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leased[id]
}

// Get returns the waiting or dead item id.
func (s *Spool) Get(_ context.Context, id string) (*Item, error) {
	var it *Item
	err := s.db.View(func(tx *bolt.Tx) error {
		raw, st := tx.Bucket(bucketEvents).Get([]byte(id)), StateWaiting
		if raw == nil {
			raw, st = tx.Bucket(bucketDead).Get([]byte(id)), StateDead
		}
		if raw == nil {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		it = &Item{}
		if err := json.Unmarshal(raw, it); err != nil {
			return err
		}
		it.State = st
		return nil
	})
	if err == nil && it.State == StateWaiting && s.isLeased(id) {
		it.State = StateDelivering
	}
	return it, err
}

// Requeue makes a waiting or dead item due now; a dead letter goes back to
// the queue with a fresh retry.lifetime.
func (s *Spool) Requeue(_ context.Context, id string) error {
	if !s.hold(id) {
		return fmt.Errorf("%w (%s)", ErrBusy, id)
	}
	defer func() { s.release(id); s.signal() }()
	n, err := s.requeue(func(tx *bolt.Tx) ([][]byte, error) { return [][]byte{[]byte(id)}, nil }, true)
	if err == nil && n == 0 {
		err = fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return err
}

// RequeueDead makes every dead letter due now.
func (s *Spool) RequeueDead(context.Context) (int, error) {
	return s.requeue(func(tx *bolt.Tx) ([][]byte, error) {
		var ids [][]byte
		err := tx.Bucket(bucketDead).ForEach(func(k, _ []byte) error {
			ids = append(ids, append([]byte(nil), k...))
			return nil
		})
		return ids, err
	}, false)
}

// requeue moves the items ids picks to due-now, in one commit. A waiting item
// is only rescheduled when waiting is true, and its caller holds its lease.
func (s *Spool) requeue(ids func(*bolt.Tx) ([][]byte, error), waiting bool) (int, error) {
	type change struct {
		typ       string
		fromDead  bool
		sizeDelta int64
	}
	var changes []change
	now := s.now()
	err := s.update(func(tx *bolt.Tx) error {
		changes = changes[:0]
		list, err := ids(tx)
		if err != nil {
			return err
		}
		for _, id := range list {
			it, before, err := removeDead(tx, string(id))
			fromDead := it != nil
			switch {
			case err != nil:
				return err
			case fromDead:
				// A fresh start for the routes that refused it (the operator
				// fixed them); routes that got it keep it, so are not emailed
				// again.
				it.DeadReason, it.Died, it.Refused, it.LastError = "", time.Time{}, nil, ""
			case !waiting:
				continue
			default: // a waiting item, whose lease the caller holds
				if it, before, err = removeItem(tx, string(id)); errors.Is(err, ErrNotFound) {
					continue
				} else if err != nil {
					return err
				}
			}
			it.NextAttempt, it.Requeued = now, now
			it.record(now, "requeued by an operator")
			n, err := putItem(tx, it)
			if err != nil {
				return err
			}
			changes = append(changes, change{it.Event.Type, fromDead, int64(n - before)})
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, c := range changes {
		s.bytes.Add(c.sizeDelta)
		if c.fromDead {
			s.depth.Add(1)
			s.dead.Add(-1)
			s.counts.add(c.typ, 1, -1)
		}
	}
	if len(changes) > 0 {
		s.signal()
	}
	return len(changes), nil
}

// Drop deletes a waiting or dead item for good. It holds the item's lease
// while it writes, so no worker can take the item between the check and
// the commit and send an email the operator was told was dropped.
func (s *Spool) Drop(_ context.Context, id string) error {
	if !s.hold(id) {
		return fmt.Errorf("%w (%s)", ErrBusy, id)
	}
	defer s.release(id)
	var typ string
	var size int64
	var dead bool
	err := s.update(func(tx *bolt.Tx) error {
		it, n, err := removeDead(tx, id)
		dead = it != nil
		if err == nil && !dead {
			it, n, err = removeItem(tx, id)
		}
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		} else if err != nil {
			return err
		}
		typ, size = it.Event.Type, int64(n)
		return nil
	})
	if err != nil {
		return err
	}
	s.bytes.Add(-size)
	if dead {
		s.dead.Add(-1)
		s.counts.add(typ, 0, -1)
	} else {
		s.depth.Add(-1)
		s.counts.add(typ, -1, 0)
	}
	return nil
}
