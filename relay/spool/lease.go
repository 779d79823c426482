package spool

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hookmail/hookmail/relay"
)

// lease is the spool's record of a hold on an item: a worker's, or an
// operator's while their change commits.
type lease struct {
	token   string
	expires time.Time
}

// Lease returns the due item of the highest priority no lease holds, the
// earliest due first.
func (s *Spool) Lease(ctx context.Context) (*relay.Lease, error) {
	woken := false // the last wait ended in a wake-up: look, or pass it on
	for {
		if err := s.waiters.Stopped(ctx, s.closing, woken); err != nil {
			return nil, err
		}
		got, wait, wake, err := s.next()
		if err != nil {
			return nil, err
		}
		if got != nil {
			// Decoded outside s.mu, which every worker's lease, extension
			// and settling takes: the lease already holds the item.
			it, err := decodeItem(got.raw, relay.StateDelivering)
			if err != nil {
				// Left in place, it would come first at every lease and hold
				// up everything due after it: it goes to the dead letters.
				qerr := s.quarantine(got, err)
				s.endLease(got.id, got.token, true, false)
				if qerr != nil {
					return nil, fmt.Errorf("%w; moving it to the dead letters failed too: %w", recordError(got.id, err), qerr)
				}
				s.opts.log.Error("spool: a waiting record does not decode; it is moved to the dead letters with its bytes, and the others are delivered",
					"id", got.id, "err", err)
				continue
			}
			return &relay.Lease{Item: *it, Token: got.token, Expires: got.expires}, nil
		}
		if woken, err = s.waiters.Wait(ctx, s.closing, wait, wake); err != nil {
			return nil, err
		}
	}
}

// next leases the due item of the highest priority no lease holds, the
// earliest due first; otherwise it says how
// long until an item is due or a lease expires (0: nothing waits), and the
// channel that signals new work.
func (s *Spool) next() (*leased, time.Duration, chan struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var found *leased
	var wait time.Duration
	var resumed, passed bool // the walk started where the last stopped, past entries
	var walkErr error
	sooner := func(d time.Duration) {
		if wait == 0 || d < wait {
			wait = max(d, time.Millisecond)
		}
	}
	err := s.view(func(tx *bolt.Tx) error {
		events := tx.Bucket(bucketEvents)
		// take leases id, due at, unless a lease holds it; done says the
		// walk of its index (or priority) is over.
		// id is the index key's bytes: looked up without a copy, since
		// the walk passes every leased item at the head of the index.
		take := func(id []byte, at time.Time) (done bool, err error) {
			if l, ok := s.leases[string(id)]; ok && now.Before(l.expires) {
				sooner(l.expires.Sub(now))
				return false, nil
			}
			if at.After(now) {
				sooner(at.Sub(now))
				return true, nil // the rest is due later still
			}
			raw := events.Get(id)
			if raw == nil {
				return false, nil // an index entry without its event: nothing to send
			}
			found = &leased{id: string(id), raw: bytes.Clone(raw), due: at}
			return true, nil
		}
		// The events of a priority above 0 first, highest first; each
		// priority's in due order.
		c := tx.Bucket(bucketPriority).Cursor()
		for k, _ := c.First(); k != nil; {
			done, err := take(k[9:], time.Unix(0, int64(binary.BigEndian.Uint64(k[1:9]))))
			switch {
			case err != nil || found != nil:
				return err
			case done && k[0] == 255:
				k = nil
			case done:
				k, _ = c.Seek([]byte{k[0] + 1}) // the next priority's
			default:
				k, _ = c.Next()
			}
		}
		// Then every event in due order: those of a priority above 0
		// left are leased or due later. The walk starts where the last
		// one stopped while nothing has cleared that (see Spool.resume),
		// instead of passing again every item leased at the head of the
		// index: with 16 workers, hundreds of sent emails whose acks wait
		// for their commit, under the lock every worker takes. A lease
		// that expires before that key is found by the full walk, at
		// most resumeFor later.
		c = tx.Bucket(bucketDue).Cursor()
		k, _ := c.First()
		if d := now.Sub(s.resumeAt); s.resume != nil && d >= 0 && d < resumeFor {
			resumed = true
			passed = k != nil && bytes.Compare(k, s.resume) < 0
			k, _ = c.Seek(s.resume)
		}
		var last []byte
		for ; k != nil; k, _ = c.Next() {
			last = k
			done, err := take(k[8:], time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))))
			if done || err != nil {
				walkErr = err
				break
			}
		}
		if !resumed {
			s.resumeAt = now
		}
		s.resume = bytes.Clone(last)
		return walkErr
	})
	if passed && found == nil && (wait == 0 || wait > resumeFor) {
		wait = resumeFor // the entries passed over may have leases that lapse
	}
	if err != nil || found == nil {
		var wake chan struct{}
		if err == nil {
			// In line under s.mu, which an enqueue's signal takes: one
			// that came after this walk wakes it.
			wake = s.waiters.Join()
		}
		return nil, wait, wake, err
	}
	found.token, found.expires = s.newToken(), now.Add(s.opts.leaseTimeout)
	s.leases[found.id] = lease{token: found.token, expires: found.expires}
	return found, 0, nil, nil
}

// leased is the item next found and leased: its stored record, still to
// be decoded.
type leased struct {
	id, token string
	expires   time.Time
	raw       []byte
	due       time.Time // its entry in the due index
}

// resumeFor is how long a lease's walk may start where the last stopped
// (see next) before it walks the due index from its start again.
const resumeFor = time.Second

func (s *Spool) newToken() string { return strconv.FormatUint(s.tokens.Add(1), 10) }

// Extend pushes l's expiry a lease timeout from now.
func (s *Spool) Extend(_ context.Context, l *relay.Lease) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.leases[l.Item.Event.ID]
	if !ok || cur.token != l.Token {
		return relay.ErrLeaseLost
	}
	cur.expires = s.now().Add(s.opts.leaseTimeout)
	s.leases[l.Item.Event.ID] = cur
	l.Expires = cur.expires
	return nil
}

// own checks, inside a write, that token still holds id, and keeps it held
// until the write's outcome is known, however long the commit takes.
func (s *Spool) own(id, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.leases[id]
	if !ok || cur.token != token {
		return relay.ErrLeaseLost
	}
	cur.expires = s.now().Add(s.opts.leaseTimeout)
	s.leases[id] = cur
	return nil
}

// release ends the hold token has on id, if it still has it.
// Its item may be waiting still, so leasers are woken: one that looked
// while the hold was on (an operator's requeue) would otherwise sleep until
// the hold lapsed.
func (s *Spool) release(id, token string) { s.endLease(id, token, true, true) }

// forget ends the hold token has on id, whose item has left the waiting
// index with the commit that acked it: unlike release, the next lease's
// walk may still start where the last stopped, and no leaser is woken.
func (s *Spool) forget(id, token string) { s.endLease(id, token, false, false) }

// endLease ends token's hold on id. mayWait: the item may be waiting still,
// so the next walk starts from the index's start; wake: leasers look again.
func (s *Spool) endLease(id, token string, mayWait, wake bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leases[id].token != token {
		return
	}
	delete(s.leases, id)
	if mayWait {
		s.resume = nil // before the walk's start, perhaps
	}
	if wake {
		s.waiters.WakeOne()
	}
}

// hold leases id for an operator's change, unless a worker holds it now.
func (s *Spool) hold(id string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if l, ok := s.leases[id]; ok && now.Before(l.expires) {
		return "", false
	}
	token := s.newToken()
	s.leases[id] = lease{token: token, expires: now.Add(s.opts.leaseTimeout)}
	return token, true
}

// delivering reports whether a lease holds id now.
func (s *Spool) delivering(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.leases[id]
	return ok && s.now().Before(l.expires)
}

// deliveringIDs returns the ids leases hold now.
func (s *Spool) deliveringIDs() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now, ids := s.now(), make(map[string]bool, len(s.leases))
	for id, l := range s.leases {
		if now.Before(l.expires) {
			ids[id] = true
		}
	}
	return ids
}

// leased counts the items leases hold now.
func (s *Spool) leased() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now, n := s.now(), 0
	for _, l := range s.leases {
		if now.Before(l.expires) {
			n++
		}
	}
	return n
}

// damagedField is the data field of a dead letter made from a record that
// did not decode: the record's bytes, kept for whoever mends it; its type
// is the record's when that much reads, else damagedType.
const (
	damagedField = "damaged_record"
	damagedType  = "other"
)

// quarantine moves the waiting record l leased, which does not decode
// (cause), to the dead letters: an item of its id, its type when that much
// reads, and its bytes in the data field damagedField. The counts follow:
// by its type, or, when not even that reads, by counting every record
// again (once, in this commit).
func (s *Spool) quarantine(l *leased, cause error) error {
	now := s.now()
	reason := "the stored record does not decode (" + cause.Error() + "); its bytes are in the field " + damagedField
	return s.updateCounted(func(tx *bolt.Tx, t tally) error {
		events := tx.Bucket(bucketEvents)
		if cur := events.Get([]byte(l.id)); cur == nil || !bytes.Equal(cur, l.raw) {
			return nil // changed or gone since the lease read it
		}
		typ, _ := recordType(l.raw) // "" when not even the type reads
		if err := tx.Bucket(bucketDue).Delete(dueKey(l.due, l.id)); err != nil {
			return err
		}
		// Its priority entry, if it has one: the priority is in the record.
		pc := tx.Bucket(bucketPriority).Cursor()
		for k, _ := pc.First(); k != nil; k, _ = pc.Next() {
			if string(k[9:]) == l.id {
				if err := pc.Delete(); err != nil {
					return err
				}
				break
			}
		}
		if err := events.Delete([]byte(l.id)); err != nil {
			return err
		}
		damaged := strings.ToValidUTF8(string(l.raw), "\uFFFD")
		dead := tx.Bucket(bucketDead)
		var it *relay.Item
		joined := false
		old := dead.Get([]byte(l.id))
		if old != nil {
			// A dead letter of the same id already (a spool an earlier
			// hookmail wrote could hold one beside a waiting item): the
			// damaged bytes join it, and it stays counted once. Damaged
			// too, it is replaced and the counts are counted again.
			if it, _ = decodeItem(old, relay.StateDead); it == nil {
				typ = ""
				damaged += "\n" + strings.ToValidUTF8(string(old), "\uFFFD")
			}
		}
		if it != nil {
			joined = true
			it.Event.Data = maps.Clone(it.Event.Data)
			if it.Event.Data == nil {
				it.Event.Data = map[string]string{}
			}
			it.Event.Data[damagedField] = damaged
		} else {
			it = &relay.Item{
				Event: relay.Event{ID: l.id, Source: "spool", Type: cmp.Or(typ, damagedType), Received: now,
					Data: map[string]string{damagedField: damaged}},
				NextAttempt: now, LastError: reason, DeadReason: reason, Died: now,
			}
		}
		it.Record(now, "moved to the dead letters: "+reason)
		raw, err := encodeItem(it)
		if err != nil {
			return err
		}
		if err := dead.Put([]byte(l.id), raw); err != nil {
			return err
		}
		if typ != "" {
			if joined {
				t.add(typ, -1, 0)
			} else {
				t.add(typ, -1, 1)
			}
			return nil
		}
		// Which type it was counted as is unknown: count them all again.
		m := map[string]relay.TypeCount{}
		if err := count(tx, m); err != nil {
			return err
		}
		// Committed counts, plus this batch's changes so far, plus what this
		// adds, make what was just counted.
		have := s.counts.snapshot()
		types := map[string]bool{}
		for _, m := range []map[string]relay.TypeCount{m, have, t} {
			for typ := range m {
				types[typ] = true
			}
		}
		for typ := range types {
			want, h, d := m[typ], have[typ], t[typ]
			t.add(typ, want.Waiting-h.Waiting-d.Waiting, want.Dead-h.Dead-d.Dead)
		}
		return nil
	})
}
