package spool

import (
	"context"
	"encoding/binary"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

// stormRecord is a storm window as the storms bucket holds it.
type stormRecord struct {
	Start   int64    `json:"start"` // Unix microseconds; 0: no window
	Emailed []string `json:"emailed,omitempty"`
	Folded  int      `json:"folded,omitzero"`
	// Expires is when the record may be deleted (its key in stormexp).
	Expires int64 `json:"expires"` // Unix nanoseconds
}

func (r stormRecord) window() relay.StormWindow {
	if r.Start == 0 {
		return relay.StormWindow{}
	}
	return relay.StormWindow{Start: time.UnixMicro(r.Start), Emailed: r.Emailed, Folded: r.Folded}
}

// stormWindows are the storm windows as this process decided them. One
// process holds the spool, so they are the truth, ahead of the file by the
// writes not yet committed: a count need not wait for a commit of its
// own, and a window is read from the file once.
type stormWindows struct {
	mu sync.Mutex
	m  map[string]*cachedStorm // route, NUL, conversation
}

type cachedStorm struct {
	rec stormRecord
	// pending counts its writes not yet committed: it stays in memory
	// until then.
	pending atomic.Int32
}

// stormSweepMax is how many ended windows each count deletes at most, from
// the file and from memory: one count makes at most one window, so the
// sweep keeps up, with no timer waking an idle spool.
const stormSweepMax = 4

// Storm counts ev in its window of route's storm for conversation conv.
// Counts are decided one at a time, in memory; each then hands the writer
// a write of the window as it stands when written, so the file never goes
// back to an older count. A folded event returns once its digest entry is
// committed, so it is never acked before it is stored. An emailed event's
// count is written with the next commit, as an ack is: a crash may lose
// the last counts of emailed events, so a conversation may get up to
// threshold more emails in that window, but no event is lost or listed
// twice.
func (s *Spool) Storm(_ context.Context, route *config.Route, conv string, ev *relay.Event) (relay.StormCount, error) {
	key := append(append([]byte(route.Name), 0), conv...)
	now := s.now()
	sw := &s.storms
	sw.mu.Lock()
	cs, err := s.stormWindow(key)
	if err != nil {
		sw.mu.Unlock()
		return relay.StormCount{}, err
	}
	t := &spoolStormTx{s: s, route: route, id: ev.ID, rec: cs.rec}
	c, err := relay.CountStorm(t, route, conv, ev, now)
	if err != nil || !t.changed {
		sw.mu.Unlock()
		return c, err
	}
	cs.rec = t.rec
	cs.pending.Add(1)
	sw.m[string(key)] = cs
	sw.mu.Unlock()

	fold := t.fold
	var entry []byte
	if fold != "" {
		entry, err = marshal(digestRecord{Event: toEventRecord(ev), Collected: now, To: route.To, Cc: route.Cc, Bcc: route.Bcc, ReplyTo: route.ReplyTo})
		if err != nil {
			cs.pending.Add(-1)
			return relay.StormCount{}, err
		}
	}
	op := writeOp{
		fn: func(tx *bolt.Tx, _ tally) error {
			sw.mu.Lock()
			rec := cs.rec
			sw.mu.Unlock()
			if err := sweepStorms(tx, now); err != nil {
				return err
			}
			if err := putStorm(tx, key, rec); err != nil || fold == "" {
				return err
			}
			b, k := tx.Bucket(bucketDigests), digestKey(fold, ev.ID)
			if b.Get(k) != nil {
				return nil
			}
			return b.Put(k, entry)
		},
		after: func(err error) {
			cs.pending.Add(-1)
			if err != nil && fold == "" {
				s.opts.log.Warn("the spool could not record a storm's count; after a restart its conversation may get more emails in the window", "route", route.Name, "err", err)
			}
		},
	}
	if fold == "" {
		op.linger = true // with the acks: nothing waits for it
		if err := s.submit(op); err != nil {
			cs.pending.Add(-1)
			return relay.StormCount{}, err
		}
		return c, nil
	}
	op.done = make(chan error, 1)
	if err := s.submit(op); err != nil {
		cs.pending.Add(-1)
		return relay.StormCount{}, err
	}
	// A fold that fails stays counted in memory: its event is retried and
	// folded again, so it is not lost (a window's first fold failing goes
	// uncounted in hookmail_storms_started_total).
	if err := <-op.done; err != nil {
		return relay.StormCount{}, err
	}
	return c, nil
}

// stormWindow returns key's window, from memory or else the file, and
// forgets a few windows that ended and have nothing left to write. The
// caller holds s.storms.mu.
func (s *Spool) stormWindow(key []byte) (*cachedStorm, error) {
	sw := &s.storms
	if sw.m == nil {
		sw.m = map[string]*cachedStorm{}
	}
	now, n := s.now().UnixNano(), 0
	for k, cs := range sw.m { // a random few
		if n++; n > stormSweepMax {
			break
		}
		if cs.pending.Load() == 0 && cs.rec.Expires <= now && k != string(key) {
			delete(sw.m, k)
		}
	}
	if cs, ok := sw.m[string(key)]; ok {
		return cs, nil
	}
	cs := &cachedStorm{}
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketStorms).Get(key)
		if v == nil {
			return nil
		}
		if err := unmarshal(v, &cs.rec); err != nil {
			return recordError(string(key), err)
		}
		return nil
	})
	return cs, err
}

// putStorm stores a window's record, and its key in stormexp in place of
// the one before.
func putStorm(tx *bolt.Tx, key []byte, r stormRecord) error {
	b, exp := tx.Bucket(bucketStorms), tx.Bucket(bucketStormExp)
	var old stormRecord
	if v := b.Get(key); v != nil && unmarshal(v, &old) == nil {
		if err := exp.Delete(stormExpKey(old.Expires, key)); err != nil {
			return err
		}
	}
	v, err := marshal(r)
	if err != nil {
		return err
	}
	if err := b.Put(key, v); err != nil {
		return err
	}
	return exp.Put(stormExpKey(r.Expires, key), nil)
}

// sweepStorms deletes up to stormSweepMax windows whose time is up.
func sweepStorms(tx *bolt.Tx, now time.Time) error {
	c := tx.Bucket(bucketStormExp).Cursor()
	n := 0
	for k, _ := c.First(); k != nil && len(k) > 8 && int64(binary.BigEndian.Uint64(k)) <= now.UnixNano() && n < stormSweepMax; k, _ = c.First() {
		if err := tx.Bucket(bucketStorms).Delete(k[8:]); err != nil {
			return err
		}
		if err := c.Delete(); err != nil {
			return err
		}
		n++
	}
	return nil
}

// stormExpKey indexes a window's record by when it may be deleted: 8-byte
// big-endian Unix nanoseconds, then the record's key.
func stormExpKey(expires int64, key []byte) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(expires)), key...)
}

// spoolStormTx is Storm's decision on one route's and conversation's
// window: it reads the window from memory and the digests from the file,
// and keeps what the decision changes for Storm to write.
type spoolStormTx struct {
	s       *Spool
	route   *config.Route
	id      string
	rec     stormRecord
	changed bool
	fold    string // the digest the event goes into, when it is added there
}

func (t *spoolStormTx) Window() (relay.StormWindow, error) {
	w := t.rec.window()
	w.Emailed = slices.Clone(w.Emailed) // the memory's copy is written meanwhile
	return w, nil
}

func (t *spoolStormTx) SetWindow(w relay.StormWindow) error {
	t.rec = stormRecord{Start: w.Start.UnixMicro(), Emailed: w.Emailed, Folded: w.Folded,
		Expires: w.Start.Add(t.route.Storm.Window + relay.StormKeep).UnixNano()}
	t.changed = true
	return nil
}

func (t *spoolStormTx) Collected(digest string) (bool, error) {
	var in bool
	err := t.s.view(func(tx *bolt.Tx) error {
		in = tx.Bucket(bucketDigests).Get(digestKey(digest, t.id)) != nil
		return nil
	})
	return in, err
}

// Collect reports the event new to digest when the file does not hold it:
// the one count of an event at a time (its lease) sees every fold of it
// committed before.
func (t *spoolStormTx) Collect(digest string) (bool, error) {
	in, err := t.Collected(digest)
	if err != nil || in {
		return false, err
	}
	t.fold, t.changed = digest, true
	return true, nil
}
