package spool

import (
	"encoding/binary"
	"fmt"
	"maps"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/hookmail/hookmail/relay"
)

// The counts (Stats.ByType, and from them Depth and Dead) are kept in the
// file, in the counts bucket, by the same commit that changes them, so
// Open reads them instead of walking every event: start-up costs the same
// with a backlog of a million as with none. Each commit also stamps the
// meta bucket with its transaction id (keyCounted). A file whose last
// commit did not (one written by a hookmail from before the counts were
// kept) is counted afresh once, at open.
var (
	bucketCounts = []byte("counts")
	keyCounted   = []byte("counted")
)

// typeKey is a type's key in the counts bucket: a prefix, so that an empty
// type still has one.
func typeKey(typ string) []byte { return append([]byte{'t'}, typ...) }

// tally is what one commit changes in the counts, by type. Each write adds
// its changes to its commit's tally; the writer stores the new counts in
// the same commit and, once it is on disk, in memory.
type tally map[string]relay.TypeCount

func (t tally) add(typ string, waiting, dead int) {
	c := t[typ]
	c.Waiting += waiting
	c.Dead += dead
	t[typ] = c
}

// typeCounts keeps Stats.ByType: waiting events and dead letters per event
// type. Types are as the events name them: an authenticated sender chooses
// them, and each counted type has an event in the spool. Only the writer
// changes it, after each commit.
type typeCounts struct {
	mu sync.Mutex
	m  map[string]relay.TypeCount
}

func (c *typeCounts) get(typ string) relay.TypeCount {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[typ]
}

func (c *typeCounts) add(typ string, d relay.TypeCount) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]relay.TypeCount{}
	}
	tc := c.m[typ]
	tc.Waiting += d.Waiting
	tc.Dead += d.Dead
	if tc == (relay.TypeCount{}) {
		delete(c.m, typ)
		return
	}
	c.m[typ] = tc
}

func (c *typeCounts) snapshot() map[string]relay.TypeCount {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.m)
}

// storeTally writes what t changes into the counts bucket, and stamps the
// meta bucket with tx's id: the counts are those of this commit.
func (s *Spool) storeTally(tx *bolt.Tx, t tally) error {
	b := tx.Bucket(bucketCounts)
	for typ, d := range t {
		if d == (relay.TypeCount{}) {
			continue
		}
		c := s.counts.get(typ)
		c.Waiting += d.Waiting
		c.Dead += d.Dead
		if err := putCount(b, typ, c); err != nil {
			return err
		}
	}
	return stamp(tx, keyCounted)
}

func putCount(b *bolt.Bucket, typ string, c relay.TypeCount) error {
	if c == (relay.TypeCount{}) {
		return b.Delete(typeKey(typ))
	}
	v := binary.BigEndian.AppendUint64(nil, uint64(c.Waiting))
	return b.Put(typeKey(typ), binary.BigEndian.AppendUint64(v, uint64(c.Dead)))
}

// stamp puts tx's id under key in the meta bucket.
func stamp(tx *bolt.Tx, key []byte) error {
	return tx.Bucket(bucketMeta).Put(key, binary.BigEndian.AppendUint64(nil, uint64(tx.ID())))
}

// stamped reports whether key in the meta bucket holds the id of the last
// commit before tx: in a write transaction, tx's own id less one; in a
// read transaction, its own.
func stamped(tx *bolt.Tx, key []byte) bool {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return false
	}
	v, last := meta.Get(key), uint64(tx.ID())
	if tx.Writable() {
		last--
	}
	return len(v) == 8 && binary.BigEndian.Uint64(v) == last
}

// loadCounts reads the kept counts, or counts the events afresh (and keeps
// the result) when the file's last commit did not keep them.
func loadCounts(tx *bolt.Tx) (map[string]relay.TypeCount, error) {
	b := tx.Bucket(bucketCounts)
	m := map[string]relay.TypeCount{}
	if stamped(tx, keyCounted) {
		err := b.ForEach(func(k, v []byte) error {
			if len(k) == 0 || k[0] != 't' || len(v) != 16 {
				return fmt.Errorf("the counts bucket holds %q, which is not a count", k)
			}
			m[string(k[1:])] = relay.TypeCount{Waiting: int(binary.BigEndian.Uint64(v)), Dead: int(binary.BigEndian.Uint64(v[8:]))}
			return nil
		})
		return m, err
	}
	if err := count(tx, m); err != nil {
		return nil, err
	}
	if err := tx.DeleteBucket(bucketCounts); err != nil {
		return nil, err
	}
	b, err := tx.CreateBucket(bucketCounts)
	if err != nil {
		return nil, err
	}
	for typ, c := range m {
		if err := putCount(b, typ, c); err != nil {
			return nil, err
		}
	}
	return m, stamp(tx, keyCounted)
}

// count walks every waiting event and dead letter once, decoding only its
// type: for a spool an earlier hookmail wrote, whose counts are not kept.
func count(tx *bolt.Tx, m map[string]relay.TypeCount) error {
	for _, b := range [][]byte{bucketEvents, bucketDead} {
		dead := 0
		if string(b) == string(bucketDead) {
			dead = 1
		}
		err := tx.Bucket(b).ForEach(func(k, raw []byte) error {
			typ, ok := recordType(raw)
			if !ok {
				// Damaged: counted as "other", the type a lease moves it to
				// the dead letters with (see quarantine), rather than
				// keeping the spool from opening.
				typ = damagedType
			}
			c := m[typ]
			c.Waiting += 1 - dead
			c.Dead += dead
			m[typ] = c
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// recordType reads only the event type of an item record; false when not
// even that decodes.
func recordType(raw []byte) (string, bool) {
	var head struct {
		Event struct {
			Type string `json:"type"`
		} `json:"event"`
	}
	if unmarshal(raw, &head) != nil {
		return "", false
	}
	return head.Event.Type, true
}
