package spool

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hookmail/hookmail/relay"
)

func dueKey(at time.Time, id string) []byte {
	k := make([]byte, 8+len(id))
	binary.BigEndian.PutUint64(k, uint64(at.UnixNano()))
	copy(k[8:], id)
	return k
}

// priorityKey is the priority bucket's key: 255 minus the priority, so
// that the highest sorts first, then the due key.
func priorityKey(priority int, at time.Time, id string) []byte {
	return append([]byte{byte(255 - priority)}, dueKey(at, id)...)
}

// putRaw stores an item already encoded as raw, with its due entry and,
// above priority 0, its priority entry.
func putRaw(tx *bolt.Tx, id string, due time.Time, priority int, raw []byte) error {
	if err := tx.Bucket(bucketEvents).Put([]byte(id), raw); err != nil {
		return err
	}
	if priority > 0 {
		if err := tx.Bucket(bucketPriority).Put(priorityKey(priority, due, id), nil); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketDue).Put(dueKey(due, id), nil)
}

// putItem stores it, waiting.
func putItem(tx *bolt.Tx, it *relay.Item) error {
	raw, err := encodeItem(it)
	if err != nil {
		return err
	}
	return putRaw(tx, it.Event.ID, it.NextAttempt, it.Event.Priority, raw)
}

// removeItem deletes the waiting item id and its due entry, found by the
// record's own next attempt, and returns it.
func removeItem(tx *bolt.Tx, id string) (*relay.Item, error) {
	raw := tx.Bucket(bucketEvents).Get([]byte(id))
	if raw == nil {
		return nil, failed(fmt.Errorf("spool: event %s is not waiting: %w", id, relay.ErrNotFound))
	}
	it, err := decodeItem(raw, relay.StateWaiting)
	if err != nil {
		return nil, recordError(id, err)
	}
	return it, deleteWaiting(tx, id, it.NextAttempt, it.Event.Priority)
}

// deleteWaiting deletes the waiting item id, due at due, with its index
// entries: putRaw's inverse.
func deleteWaiting(tx *bolt.Tx, id string, due time.Time, priority int) error {
	if err := tx.Bucket(bucketDue).Delete(dueKey(due, id)); err != nil {
		return err
	}
	if priority > 0 {
		if err := tx.Bucket(bucketPriority).Delete(priorityKey(priority, due, id)); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketEvents).Delete([]byte(id))
}

// removeLeased deletes the waiting item it, leased as it is stored: its
// index entries are found from the lease's copy, without decoding the
// record again as removeItem does (a JSON decode for every email sent).
// Nothing else changes a leased record, so they match; should they not
// (or the record be gone), removeItem goes by the record, and fails as it
// does.
func removeLeased(tx *bolt.Tx, it *relay.Item) error {
	id := it.Event.ID
	key := dueKey(it.NextAttempt, id)
	k, _ := tx.Bucket(bucketDue).Cursor().Seek(key)
	if !bytes.Equal(k, key) || tx.Bucket(bucketEvents).Get([]byte(id)) == nil {
		_, err := removeItem(tx, id)
		return err
	}
	return deleteWaiting(tx, id, it.NextAttempt, it.Event.Priority)
}

// removeDead deletes the dead letter id and returns it, or nil when there
// is none.
func removeDead(tx *bolt.Tx, id string) (*relay.Item, error) {
	raw := tx.Bucket(bucketDead).Get([]byte(id))
	if raw == nil {
		return nil, nil
	}
	it, err := decodeItem(raw, relay.StateDead)
	if err != nil {
		return nil, recordError(id, err)
	}
	return it, tx.Bucket(bucketDead).Delete([]byte(id))
}

func recordError(id string, err error) error {
	return fmt.Errorf("spool: record %s does not decode: %w", id, err)
}

// opFailure marks a write's own failure (no such item, a lease lost), as
// opposed to the disk's: the writer does not take it for disk trouble.
type opFailure struct{ err error }

func (e *opFailure) Error() string { return e.err.Error() }
func (e *opFailure) Unwrap() error { return e.err }

func failed(err error) error { return &opFailure{err: err} }

// Enqueue stores ev, due now. The record is encoded here, in the caller's
// goroutine, so the one writer goroutine only writes. It refuses the event
// with relay.ErrQueueFull past the spool's limits, and with a
// *relay.DuplicateError when its DedupKey was stored within the dedup
// window.
func (s *Spool) Enqueue(_ context.Context, ev *relay.Event) error {
	if err := s.full(); err != nil {
		return err
	}
	it := &relay.Item{Event: *ev, NextAttempt: s.now()}
	raw, err := encodeItem(it)
	if err != nil {
		return err
	}
	var dupOf string
	err = s.updateCounted(func(tx *bolt.Tx, t tally) error {
		dupOf = ""
		if ev.DedupKey != "" && s.opts.dedupWindow > 0 {
			first, err := s.remember(tx, ev.DedupKey, ev.ID)
			if err != nil || first != "" {
				dupOf = first
				return err
			}
		}
		t.add(ev.Type, 1, 0)
		return putRaw(tx, ev.ID, it.NextAttempt, ev.Priority, raw)
	})
	switch {
	case err != nil:
		return err
	case dupOf != "":
		return &relay.DuplicateError{ID: dupOf}
	}
	s.signal(false)
	return nil
}

// full reports whether the spool is at one of its limits.
func (s *Spool) full() error {
	if m := s.opts.maxEvents; m > 0 && s.depth.Load() >= int64(m) {
		return fmt.Errorf("%w: %d events waiting, the spool.max_events limit", relay.ErrQueueFull, m)
	}
	if m := s.opts.maxBytes; m > 0 && s.bytes.Load() >= m {
		return fmt.Errorf("%w: the spool file's pages in use hold %d bytes, the spool.max_bytes limit", relay.ErrQueueFull, m)
	}
	return nil
}

// Ack removes the delivered item. It returns once the writer has the ack,
// which lingers briefly for other writes to share its commit; at most
// maxAcksInFlight wait at a time. An ack that cannot be written is logged,
// and its item is due again when its lease expires.
func (s *Spool) Ack(_ context.Context, l *relay.Lease) error {
	select {
	case s.ackSlots <- struct{}{}:
	case <-s.closing:
		return relay.ErrQueueClosed
	}
	id, typ := l.Item.Event.ID, l.Item.Event.Type
	op := writeOp{
		linger: true,
		fn: func(tx *bolt.Tx, t tally) error {
			if err := s.own(id, l.Token); err != nil {
				return failed(err)
			}
			t.add(typ, -1, 0)
			return removeLeased(tx, &l.Item)
		},
		after: func(err error) {
			<-s.ackSlots
			if err != nil {
				s.opts.log.Error("email sent but the spool could not record it; the event is offered again once its lease expires and resent with the same Message-ID",
					"id", id, "err", err)
				return
			}
			s.forget(id, l.Token)
		},
	}
	// The worker stops extending the lease once Ack returns: a full lease
	// from now covers the wait for the commit, as when the hand-off waited
	// for the writer.
	if err := s.own(id, l.Token); err != nil {
		<-s.ackSlots
		return err
	}
	// Into the acks' buffer, which has a place for every ack slot: while
	// the writer commits, the worker goes on to its next email instead of
	// waiting to hand this over. Close commits every ack whose slot is
	// taken (see commitAcksLeft).
	select {
	case <-s.closing:
		<-s.ackSlots
		return relay.ErrQueueClosed
	default:
		if testHookAckHandOff != nil {
			testHookAckHandOff()
		}
		s.acks <- op
	}
	return nil
}

// testHookAckHandOff, when a test sets it, runs between Ack's check that
// the spool is open and its hand-off.
var testHookAckHandOff func()

// Retry records the attempt's progress and makes the item due again at next.
func (s *Spool) Retry(_ context.Context, l *relay.Lease, next time.Time, p relay.Progress) error {
	return s.settle(l, func(it *relay.Item) bool {
		it.Apply(p)
		it.NextAttempt = next
		return false
	})
}

// Bury records the progress and moves the item to the dead letters.
func (s *Spool) Bury(_ context.Context, l *relay.Lease, reason string, p relay.Progress) error {
	return s.settle(l, func(it *relay.Item) bool {
		it.Apply(p)
		it.DeadReason, it.Died = reason, s.now()
		it.Record(it.Died, "moved to the dead letters: "+reason)
		return true
	})
}

// settle rewrites l's item as change leaves it: waiting again, or dead when
// change says so, in one commit.
func (s *Spool) settle(l *relay.Lease, change func(*relay.Item) (dead bool)) error {
	id := l.Item.Event.ID
	err := s.updateCounted(func(tx *bolt.Tx, t tally) error {
		if err := s.own(id, l.Token); err != nil {
			return failed(err)
		}
		it, err := removeItem(tx, id)
		if err != nil {
			return err
		}
		dead := change(it)
		raw, err := encodeItem(it)
		if err != nil {
			return err
		}
		if dead {
			t.add(it.Event.Type, -1, 1)
			return tx.Bucket(bucketDead).Put([]byte(id), raw)
		}
		return putRaw(tx, id, it.NextAttempt, it.Event.Priority, raw)
	})
	if err != nil {
		return err
	}
	s.release(id, l.Token) // and wakes the leasers
	return nil
}

// Stats reports the kept counts, and the pages in use as Bytes, and reads
// the oldest waiting item: O(1), whatever the backlog.
func (s *Spool) Stats(context.Context) (relay.Stats, error) {
	st := relay.Stats{
		Depth: int(s.depth.Load()), Dead: int(s.dead.Load()), Bytes: s.bytes.Load(),
		Delivering: s.leased(), ByType: s.counts.snapshot(),
	}
	err := s.view(func(tx *bolt.Tx) error {
		// Ids are UUIDv7, so the first key is the earliest received.
		if k, raw := tx.Bucket(bucketEvents).Cursor().First(); raw != nil {
			it, err := decodeItem(raw, relay.StateWaiting)
			if err != nil {
				return recordError(string(k), err)
			}
			st.Oldest = it.Event.Received
		}
		return nil
	})
	return st, err
}

// probeSize is the size of the record Ready writes after a failed commit:
// about a large event's, so it fails as long as events would.
const probeSize = 16 << 10

// Ready reports a spool at one of its limits, and writes a probe record,
// so it fails when the disk cannot take writes. After a commit failed, the
// probe is the size of a large event and is deleted again; its success
// means events fit again and clears the error, so hookmail reports ready
// again without waiting for a webhook.
func (s *Spool) Ready(context.Context) error {
	if err := s.full(); err != nil {
		return err
	}
	if failed := s.writeErr.Load(); failed != nil {
		err := s.update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put([]byte("probe-large"), make([]byte, probeSize))
		})
		if err == nil {
			err = s.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete([]byte("probe-large")) })
		}
		if err != nil {
			return fmt.Errorf("spool cannot write: %w", err)
		}
		return nil
	}
	return s.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put([]byte("probe"), []byte(s.now().UTC().Format(time.RFC3339Nano)))
	})
}
