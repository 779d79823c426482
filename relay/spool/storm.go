package spool

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

// stormRecord is a storm window as the storms bucket holds it.
type stormRecord struct {
	Start   int64    `json:"start"` // Unix microseconds
	Emailed []string `json:"emailed,omitempty"`
	Folded  int      `json:"folded,omitempty"`
	// Expires is when the record may be deleted (its key in stormexp).
	Expires int64 `json:"expires"` // Unix nanoseconds
}

// stormSweepMax is how many ended windows each count deletes at most: one
// count makes at most one window, so the sweep keeps up, with no timer
// waking an idle spool.
const stormSweepMax = 4

// Storm counts ev in its window of route's storm for conversation conv in
// one write, which the writer serialises with every other: the decision,
// the window and the folded event commit together.
func (s *Spool) Storm(_ context.Context, route *config.Route, conv string, ev *relay.Event) (relay.StormCount, error) {
	now := s.now()
	// Encoded here, in the caller's goroutine, in case the event is folded.
	raw, err := json.Marshal(digestRecord{Event: toEventRecord(ev), Collected: now, To: route.To, Cc: route.Cc, Bcc: route.Bcc, ReplyTo: route.ReplyTo})
	if err != nil {
		return relay.StormCount{}, err
	}
	var c relay.StormCount
	var added int64
	err = s.update(func(tx *bolt.Tx) error {
		if err := sweepStorms(tx, now); err != nil {
			return err
		}
		stx := &spoolStormTx{tx: tx, route: route, key: append(append([]byte(route.Name), 0), conv...), id: ev.ID, digest: raw}
		var err error
		c, err = relay.CountStorm(stx, route, conv, ev, now)
		added = stx.added
		return err
	})
	if err != nil {
		return relay.StormCount{}, err
	}
	s.bytes.Add(added) // folded events count in spool.max_bytes, as collected ones
	return c, nil
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

// spoolStormTx is Storm's transaction on one route's and conversation's
// window (key: route, NUL, conversation).
type spoolStormTx struct {
	tx     *bolt.Tx
	route  *config.Route
	key    []byte
	id     string
	digest []byte // the event's digest record
	added  int64  // bytes collected
}

func (t *spoolStormTx) record() (stormRecord, bool, error) {
	var r stormRecord
	v := t.tx.Bucket(bucketStorms).Get(t.key)
	if v == nil {
		return r, false, nil
	}
	if err := json.Unmarshal(v, &r); err != nil {
		return r, false, recordError(string(t.key), err)
	}
	return r, true, nil
}

func (t *spoolStormTx) Window() (relay.StormWindow, error) {
	r, ok, err := t.record()
	if !ok || err != nil {
		return relay.StormWindow{}, err
	}
	return relay.StormWindow{Start: time.UnixMicro(r.Start), Emailed: r.Emailed, Folded: r.Folded}, nil
}

func (t *spoolStormTx) SetWindow(w relay.StormWindow) error {
	old, had, err := t.record()
	if err != nil {
		return err
	}
	exp := t.tx.Bucket(bucketStormExp)
	if had {
		if err := exp.Delete(stormExpKey(old.Expires, t.key)); err != nil {
			return err
		}
	}
	r := stormRecord{Start: w.Start.UnixMicro(), Emailed: w.Emailed, Folded: w.Folded,
		Expires: w.Start.Add(t.route.Storm.Window + relay.StormKeep).UnixNano()}
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := t.tx.Bucket(bucketStorms).Put(t.key, v); err != nil {
		return err
	}
	return exp.Put(stormExpKey(r.Expires, t.key), nil)
}

func (t *spoolStormTx) Collected(digest string) (bool, error) {
	return t.tx.Bucket(bucketDigests).Get(digestKey(digest, t.id)) != nil, nil
}

func (t *spoolStormTx) Collect(digest string) (bool, error) {
	b, k := t.tx.Bucket(bucketDigests), digestKey(digest, t.id)
	if b.Get(k) != nil {
		return false, nil
	}
	if err := b.Put(k, t.digest); err != nil {
		return false, err
	}
	t.added += int64(len(t.digest))
	return true, nil
}

// stormExpKey indexes a window's record by when it may be deleted: 8-byte
// big-endian Unix nanoseconds, then the record's key.
func stormExpKey(expires int64, key []byte) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(expires)), key...)
}
