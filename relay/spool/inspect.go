package spool

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hookmail/hookmail/relay"
)

// List returns a page of waiting (and delivering) items in due order, or of
// dead letters in id order, which is the order they were received. The
// cursor is the last listed item's key in its bucket (due, or dead).
func (s *Spool) List(ctx context.Context, f relay.Filter) (relay.Page, error) {
	after, err := decodeCursor(f.After)
	if err != nil {
		return relay.Page{}, err
	}
	var page struct {
		relay.Page
		lastKey []byte
	}
	bucket, state := bucketDue, relay.StateWaiting
	if f.State == relay.StateDead {
		bucket, state = bucketDead, relay.StateDead
	}
	// The leases are read before the walk, not during it: s.mu must not be
	// taken inside a read transaction. A lease takes s.mu and then opens
	// one, and a commit that grows the file waits for the open ones while
	// new ones wait for it, so the two orders would deadlock.
	var leased map[string]bool
	if state == relay.StateWaiting {
		leased = s.deliveringIDs()
	}
	// The walk reads listChunk records per read transaction, and checks
	// ctx between them: a filter that matches little walks the whole
	// bucket, and one long read transaction would hold up every commit
	// that grows the file (webhooks included) until it ended.
	from, done := after, false
	for !done {
		if err := ctx.Err(); err != nil {
			return relay.Page{}, err
		}
		err = s.view(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucket).Cursor()
			k, v := c.First()
			if from != nil {
				if k, v = c.Seek(from); k != nil && bytes.Equal(k, from) {
					k, v = c.Next()
				}
			}
			for n := 0; ; k, v = c.Next() {
				if k == nil {
					done = true
					return nil
				}
				if n == listChunk {
					return nil // the next transaction starts after from, the last read
				}
				n++
				from = append(from[:0], k...)
				raw, id := v, string(k)
				if state == relay.StateWaiting {
					id = string(k[8:])
					if raw = tx.Bucket(bucketEvents).Get(k[8:]); raw == nil {
						continue
					}
				}
				it, err := decodeItem(raw, state)
				if err != nil {
					return recordError(id, err)
				}
				if testHookListed != nil {
					testHookListed()
				}
				if leased[id] {
					it.State = relay.StateDelivering
				}
				if !f.Matches(it) {
					continue
				}
				if f.Limit > 0 && len(page.Items) == f.Limit {
					page.Next = encodeCursor(page.lastKey) // there is more
					done = true
					return nil
				}
				page.Items = append(page.Items, *it)
				page.lastKey = append(page.lastKey[:0], k...)
			}
		})
		if err != nil {
			return relay.Page{}, err
		}
	}
	return page.Page, err
}

// testHookListed, when set by a test, runs inside List's read transaction
// after each item is read.
var testHookListed func()

// listChunk is how many records List reads in one read transaction.
var listChunk = 1000

func encodeCursor(key []byte) string { return base64.RawURLEncoding.EncodeToString(key) }

func decodeCursor(c string) ([]byte, error) {
	if c == "" {
		return nil, nil
	}
	k, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil, fmt.Errorf("spool: the cursor %q is not one a listing gave", c)
	}
	return k, nil
}

// Get returns the waiting or dead item id.
func (s *Spool) Get(_ context.Context, id string) (*relay.Item, error) {
	var it *relay.Item
	err := s.view(func(tx *bolt.Tx) error {
		raw, st := tx.Bucket(bucketEvents).Get([]byte(id)), relay.StateWaiting
		if raw == nil {
			raw, st = tx.Bucket(bucketDead).Get([]byte(id)), relay.StateDead
		}
		if raw == nil {
			return fmt.Errorf("%w: %s", relay.ErrNotFound, id)
		}
		var err error
		if it, err = decodeItem(raw, st); err != nil {
			return recordError(id, err)
		}
		return nil
	})
	if err == nil && it.State == relay.StateWaiting && s.delivering(id) {
		it.State = relay.StateDelivering
	}
	return it, err
}

// Requeue makes a waiting or dead item due now; a dead letter goes back to
// the queue with a fresh retry.lifetime.
func (s *Spool) Requeue(_ context.Context, id string) error {
	token, ok := s.hold(id)
	if !ok {
		return fmt.Errorf("%w (%s)", relay.ErrBusy, id)
	}
	defer s.release(id, token)
	n, err := s.requeue(func(*bolt.Tx) ([][]byte, error) { return [][]byte{[]byte(id)}, nil }, true)
	if err == nil && n == 0 {
		err = fmt.Errorf("%w: %s", relay.ErrNotFound, id)
	}
	return err
}

// RequeueDead makes every dead letter f selects due now.
func (s *Spool) RequeueDead(_ context.Context, f relay.Filter) (int, error) {
	f.State = relay.StateDead
	return s.requeue(func(tx *bolt.Tx) ([][]byte, error) {
		var ids [][]byte
		err := tx.Bucket(bucketDead).ForEach(func(k, raw []byte) error {
			if !f.KeepsAll() {
				it, err := decodeItem(raw, relay.StateDead)
				if err != nil {
					return recordError(string(k), err)
				}
				if !f.Matches(it) {
					return nil
				}
			}
			ids = append(ids, append([]byte(nil), k...))
			return nil
		})
		return ids, err
	}, false)
}

// requeue moves the items ids picks to due-now, in one commit. A waiting
// item is only rescheduled when waiting is true, and its caller holds it.
func (s *Spool) requeue(ids func(*bolt.Tx) ([][]byte, error), waiting bool) (int, error) {
	changes := 0
	now := s.now()
	err := s.updateCounted(func(tx *bolt.Tx, t tally) error {
		changes = 0
		list, err := ids(tx)
		if err != nil {
			return err
		}
		for _, id := range list {
			it, err := removeDead(tx, string(id))
			switch {
			case err != nil:
				return err
			case it != nil:
				// A fresh start for the routes that refused it (the operator
				// fixed them); routes that got it keep it, so are not emailed
				// again.
				it.DeadReason, it.Died, it.Refused, it.LastError = "", time.Time{}, nil, ""
				t.add(it.Event.Type, 1, -1)
			case !waiting:
				continue
			default: // a waiting item, which the caller holds
				if it, err = removeItem(tx, string(id)); errors.Is(err, relay.ErrNotFound) {
					continue
				} else if err != nil {
					return err
				}
			}
			it.NextAttempt, it.Requeued = now, now
			it.Record(now, "requeued by an operator")
			if err := putItem(tx, it); err != nil {
				return err
			}
			changes++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if changes > 0 {
		s.signal(true)
	}
	return changes, nil
}

// Drop deletes a waiting or dead item for good. It holds the item while it
// writes, so no worker can take the item between the check and the commit
// and send an email the operator was told was dropped.
func (s *Spool) Drop(_ context.Context, id string) error {
	token, ok := s.hold(id)
	if !ok {
		return fmt.Errorf("%w (%s)", relay.ErrBusy, id)
	}
	defer s.release(id, token)
	return s.updateCounted(func(tx *bolt.Tx, t tally) error {
		it, err := removeDead(tx, id)
		if it != nil {
			t.add(it.Event.Type, 0, -1)
			return err
		}
		if err == nil {
			it, err = removeItem(tx, id)
		}
		if errors.Is(err, relay.ErrNotFound) {
			return failed(fmt.Errorf("%w: %s", relay.ErrNotFound, id))
		} else if err != nil {
			return err
		}
		t.add(it.Event.Type, -1, 0)
		return nil
	})
}
