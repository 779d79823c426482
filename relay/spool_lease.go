package relay

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Lease returns the earliest due item no other caller holds.
func (s *Spool) Lease(ctx context.Context) (*Item, error) {
	for {
		select {
		case <-s.closing:
			return nil, ErrQueueClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		default:
		}
		it, wait, wake, err := s.next()
		if err != nil || it != nil {
			return it, err
		}
		if err := s.wait(ctx, wait, wake); err != nil {
			return nil, err
		}
	}
}

// wait sleeps until wake fires, d passes (d == 0: no deadline), or the
// spool or ctx ends.
func (s *Spool) wait(ctx context.Context, d time.Duration, wake <-chan struct{}) error {
	var timer <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closing:
		return ErrQueueClosed
	case <-wake:
	case <-timer:
	}
	return nil
}

// next finds the earliest due unleased item; otherwise how long until the
// next one is due (0: none waiting) and the channel that signals new work.
func (s *Spool) next() (*Item, time.Duration, <-chan struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var found *Item
	var wait time.Duration
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDue).Cursor()
		now := s.now()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			id := string(k[8:])
			if s.leased[id] {
				continue
			}
			at := time.Unix(0, int64(binary.BigEndian.Uint64(k[:8])))
			if at.After(now) {
				wait = at.Sub(now)
				return nil
			}
			raw := tx.Bucket(bucketEvents).Get([]byte(id))
			if raw == nil {
				continue // an index entry without its event: nothing to send
			}
			var it Item
			if err := json.Unmarshal(raw, &it); err != nil {
				return fmt.Errorf("spool: event %s does not decode: %w", id, err)
			}
			found = &it
			return nil
		}
		return nil
	})
	if found != nil {
		s.leased[found.Event.ID] = true
	}
	return found, wait, s.wake, err
}

func (s *Spool) release(id string) {
	s.mu.Lock()
	delete(s.leased, id)
	s.mu.Unlock()
}

// settleRetryDelay is how long an item whose outcome could not be written
// (disk full, I/O error) stays leased before it is tried again. Releasing it
// at once would resend it in a tight loop, since its due time has passed.
const settleRetryDelay = 30 * time.Second

// settled releases the lease once the outcome is on disk; after a failed
// write it keeps the lease for settleRetryDelay, then makes the item due.
func (s *Spool) settled(id string, err error) error {
	if err == nil {
		s.release(id)
		return nil
	}
	time.AfterFunc(settleRetryDelay, func() {
		s.release(id)
		s.signal()
	})
	return err
}
