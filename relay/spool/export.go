package spool

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/hookmail/hookmail/relay"
)

// Export is a stopped hookmail's spool, opened read-only to hand
// everything it holds to another backend (`hookmail queue migrate`). It
// never writes to the file: the user deletes it once the other backend
// runs.
type Export struct {
	db   *bolt.DB
	path string
	now  func() time.Time
}

var _ relay.Exporter = (*Export)(nil)

// exportLockWait is how long OpenExport waits for the file's lock: a
// running hookmail holds it for as long as it runs, so there is no point
// in waiting long.
const exportLockWait = time.Second

// ErrInUse is returned by OpenExport when a running hookmail holds the
// spool file.
var ErrInUse = errors.New("the spool is in use by a running hookmail")

// OpenExport opens the spool in dir read-only. It never creates one
// (a missing file is an error matching fs.ErrNotExist), and fails within
// about a second with ErrInUse when a hookmail holds the file; while the
// Export is open, no hookmail can open the spool. Only WithClock of the
// options applies: it decides which dedup keys are still in their window.
func OpenExport(dir string, opts ...Option) (e *Export, err error) {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	path := filepath.Join(dir, File)
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			e, err = nil, damaged(path, p)
		}
	}()
	// Read-only takes a shared lock, which a running hookmail's exclusive
	// one refuses; it reads no freelist, so it writes nothing, not even
	// the freelist a spool written without one would get.
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: exportLockWait, PreLoadFreelist: false})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("spool: %s: %w: stop hookmail first (e.g. systemctl stop hookmail), then run this again", path, ErrInUse)
	} else if err != nil {
		return nil, openError(path, err)
	}
	return &Export{db: db, path: path, now: o.now}, nil
}

// Path is the spool file's absolute path.
func (e *Export) Path() string { return e.path }

// Close releases the file.
func (e *Export) Close() error { return e.db.Close() }

// view runs f in a read transaction; a spool file bbolt finds damaged as
// it reads (it panics) is an error naming the file.
func (e *Export) view(f func(tx *bolt.Tx) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = damaged(e.path, p)
		}
	}()
	return e.db.View(f)
}

// each calls f on every key and value of bucket b, and stops at ctx's end.
func each(ctx context.Context, tx *bolt.Tx, b []byte, f func(k, v []byte) error) error {
	bucket := tx.Bucket(b)
	if bucket == nil {
		return nil // a spool made before this bucket existed
	}
	return bucket.ForEach(func(k, v []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return f(k, v)
	})
}

// Count counts the waiting events, dead letters, dedup keys in their
// window and collected digest entries.
func (e *Export) Count(ctx context.Context) (relay.MigrationCounts, error) {
	var c relay.MigrationCounts
	err := e.view(func(tx *bolt.Tx) error {
		for _, k := range []struct {
			bucket []byte
			n      *int
		}{{bucketEvents, &c.Waiting}, {bucketDead, &c.Dead}, {bucketDigests, &c.DigestEntries}} {
			if b := tx.Bucket(k.bucket); b != nil {
				*k.n = b.Stats().KeyN
			}
		}
		now := e.now()
		return each(ctx, tx, bucketDedup, func(k, v []byte) error {
			if _, ok := dedupRecord(k, v, now); ok {
				c.DedupKeys++
			}
			return nil
		})
	})
	return c, err
}

// ExportItems hands f the waiting events or the dead letters, in the order
// they were received. A stopped spool leases nothing, so every waiting
// item is StateWaiting.
func (e *Export) ExportItems(ctx context.Context, state relay.State, f func(*relay.Item) error) error {
	b := bucketEvents
	if state == relay.StateDead {
		b = bucketDead
	}
	return e.view(func(tx *bolt.Tx) error {
		return each(ctx, tx, b, func(k, v []byte) error {
			it, err := decodeItem(v, state)
			if err != nil {
				return recordError(string(k), err)
			}
			return f(it)
		})
	})
}

// ExportDedupKeys hands f the dedup keys whose window has not passed; the
// others dedup nothing any more (a running spool deletes them within a
// minute).
func (e *Export) ExportDedupKeys(ctx context.Context, f func(*relay.DedupRecord) error) error {
	now := e.now()
	return e.view(func(tx *bolt.Tx) error {
		return each(ctx, tx, bucketDedup, func(k, v []byte) error {
			if r, ok := dedupRecord(k, v, now); ok {
				return f(&r)
			}
			return nil
		})
	})
}

// dedupRecord reads a dedup key's record as remember writes it (expiry in
// Unix nanoseconds, then the event id), and reports whether it is still in
// its window at now; one remember would not take (no event id) is not.
func dedupRecord(k, v []byte, now time.Time) (relay.DedupRecord, bool) {
	if len(k) != len(relay.DedupHash{}) || len(v) <= 8 {
		return relay.DedupRecord{}, false
	}
	exp := time.Unix(0, int64(binary.BigEndian.Uint64(v)))
	if !now.Before(exp) {
		return relay.DedupRecord{}, false
	}
	return relay.DedupRecord{Hash: relay.DedupHash(k), Event: string(v[8:]), Expires: exp}, true
}

// ExportDigests hands f every collected digest entry, route by route,
// oldest first.
func (e *Export) ExportDigests(ctx context.Context, f func(*relay.DigestRecord) error) error {
	return e.view(func(tx *bolt.Tx) error {
		return each(ctx, tx, bucketDigests, func(k, v []byte) error {
			route, _, ok := bytes.Cut(k, []byte{0})
			if !ok {
				return recordError(string(k), errors.New("the key names no route"))
			}
			entry, err := decodeDigest(v)
			if err != nil {
				return recordError(string(k), err)
			}
			return f(&relay.DigestRecord{Route: string(route), Entry: entry})
		})
	})
}
