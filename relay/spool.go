package relay

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Spool is the embedded durable Queue: one bbolt file in a directory.
//
// Writes go through one committer goroutine that packs every write waiting
// at the moment into one transaction and one fsync (group commit). Unlike
// bbolt's DB.Batch it waits for no timer: a lone request commits at once, and
// under load each commit takes everything that queued up during the last one.
type Spool struct {
	db  *bolt.DB
	now func() time.Time

	writes   chan writeOp
	acks     chan ackReq
	closing  chan struct{}
	loopDone chan struct{}
	closed   sync.Once
	sweeps   sync.WaitGroup

	mu     sync.Mutex
	leased map[string]bool
	wake   chan struct{} // closed and replaced when something new is due

	// depth, dead and bytes are counted once at open, then kept by each
	// committed write, so a scrape never walks a large backlog.
	depth, dead, bytes atomic.Int64
	counts             typeCounts

	// writeErr is the error of the last commit when it failed (disk full,
	// read-only, I/O error); Ready reports it until a write succeeds again.
	writeErr atomic.Pointer[error]

	opts spoolOptions
	path string
}

// Path is the spool file's absolute path.
func (s *Spool) Path() string { return s.path }

// SpoolOption sets one of OpenSpool's options.
type SpoolOption func(*spoolOptions)

type spoolOptions struct {
	mustExist   bool
	maxEvents   int
	maxBytes    int64
	dedupWindow time.Duration
}

// WithLimits makes Enqueue refuse events (ErrQueueFull) while the spool holds
// maxEvents waiting events or maxBytes of events and dead letters; 0 is no
// limit.
func WithLimits(maxEvents int, maxBytes int64) SpoolOption {
	return func(o *spoolOptions) { o.maxEvents, o.maxBytes = maxEvents, maxBytes }
}

// MustExist makes OpenSpool fail with an error matching fs.ErrNotExist
// when there is no spool file yet, instead of creating one: the queue
// commands work on a spool hookmail made, never on a new empty one.
func MustExist() SpoolOption {
	return func(o *spoolOptions) { o.mustExist = true }
}

// WithDedupWindow makes Enqueue store one event per DedupKey within window
// (0: no deduplication). The keys are kept in the spool, so the window
// holds across restarts.
func WithDedupWindow(window time.Duration) SpoolOption {
	return func(o *spoolOptions) { o.dedupWindow = window }
}

var _ Queue = (*Spool)(nil)

// Buckets: events holds every waiting Item by id; due indexes them by next
// attempt (8-byte big-endian Unix nanoseconds, then the id) so Lease reads
// the earliest first; dead holds the dead letters by id; dedup maps a hashed
// DedupKey to its expiry and event id, and dedupexp indexes those by expiry.
var (
	bucketEvents   = []byte("events")
	bucketDue      = []byte("due")
	bucketDead     = []byte("dead")
	bucketMeta     = []byte("meta")
	bucketDedup    = []byte("dedup")
	bucketDedupExp = []byte("dedupexp")
)

// maxBatch bounds one group commit, so one transaction stays small.
const maxBatch = 1024

type writeOp struct {
	fn   func(*bolt.Tx) error
	done chan error
}

// SpoolFile is the name of the spool's database file in spool.dir.
const SpoolFile = "spool.db"

// OpenSpool opens (or creates) the spool in dir. It fails fast, with a
// reason, when another hookmail holds the file or the file is damaged.
func OpenSpool(dir string, now func() time.Time, opts ...SpoolOption) (s *Spool, err error) {
	var o spoolOptions
	for _, opt := range opts {
		opt(&o)
	}
	path := filepath.Join(dir, SpoolFile)
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if o.mustExist {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: cannot create %s: %w", dir, err)
	}
	// bbolt panics on some kinds of damage it meets while reading; at open
	// that is a damaged file, reported as such, not a crash.
	defer func() {
		if p := recover(); p != nil {
			s, err = nil, fmt.Errorf("spool: %s is damaged (%v); stop hookmail, move the file aside to start with an empty spool, and keep it for recovery", path, p)
		}
	}()
	if err := precheck(path); err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        2 * time.Second,
		NoFreelistSync: true, // rebuilt at open; saves a write per commit
		FreelistType:   bolt.FreelistMapType,
	})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("spool: %s is locked by another process (is another hookmail running on this spool.dir?)", path)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum), errors.Is(err, bolterrors.ErrVersionMismatch):
		return nil, fmt.Errorf("spool: %s is damaged (%v); stop hookmail, move the file aside to start with an empty spool, and keep it for recovery", path, err)
	case err != nil:
		return nil, fmt.Errorf("spool: cannot open %s: %w", path, err)
	}
	var c openCounts
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketEvents, bucketDue, bucketDead, bucketMeta, bucketDedup, bucketDedupExp, bucketDigests} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return c.scan(tx)
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("spool: cannot initialise %s: %w", path, err)
	}
	s = &Spool{
		db:       db,
		now:      now,
		writes:   make(chan writeOp),
		closing:  make(chan struct{}),
		loopDone: make(chan struct{}),
		acks:     make(chan ackReq),
		leased:   map[string]bool{},
		wake:     make(chan struct{}),
		counts:   typeCounts{m: c.types.m},
		opts:     o,
		path:     path,
	}
	s.depth.Store(int64(c.depth))
	s.dead.Store(int64(c.dead))
	s.bytes.Store(c.bytes)
	go s.commitLoop()
	s.sweeps.Go(s.ackLoop)
	if s.opts.dedupWindow > 0 {
		s.sweeps.Go(s.sweepDedup)
	}
	return s, nil
}

func dueKey(at time.Time, id string) []byte {
	k := make([]byte, 8+len(id))
	binary.BigEndian.PutUint64(k, uint64(at.UnixNano()))
	copy(k[8:], id)
	return k
}

// putItem stores it and returns the size of its record.
func putItem(tx *bolt.Tx, it *Item) (int, error) {
	raw, err := json.Marshal(it)
	if err != nil {
		return 0, err
	}
	return len(raw), putRaw(tx, it, raw)
}

// putRaw stores an item already encoded as raw, with its due entry.
func putRaw(tx *bolt.Tx, it *Item, raw []byte) error {
	if err := tx.Bucket(bucketEvents).Put([]byte(it.Event.ID), raw); err != nil {
		return err
	}
	return tx.Bucket(bucketDue).Put(dueKey(it.NextAttempt, it.Event.ID), nil)
}

// carry takes a worker's progress from it, the item as leased and tried,
// into stored, the record the spool holds.
func (stored *Item) carry(it *Item) {
	stored.Attempts = it.Attempts
	stored.Delivered = it.Delivered
	stored.Refused = it.Refused
	stored.Owed = it.Owed
}

// removeDead deletes the dead letter id and returns it with its record's
// size, or nil when there is none.
func removeDead(tx *bolt.Tx, id string) (*Item, int, error) {
	raw := tx.Bucket(bucketDead).Get([]byte(id))
	if raw == nil {
		return nil, 0, nil
	}
	var it Item
	if err := json.Unmarshal(raw, &it); err != nil {
		return nil, 0, fmt.Errorf("spool: dead letter %s does not decode: %w", id, err)
	}
	return &it, len(raw), tx.Bucket(bucketDead).Delete([]byte(id))
}

// removeItem deletes the waiting item and its due entry, found by the
// record's own NextAttempt, and returns it with its record's size.
func removeItem(tx *bolt.Tx, id string) (*Item, int, error) {
	raw := tx.Bucket(bucketEvents).Get([]byte(id))
	if raw == nil {
		return nil, 0, fmt.Errorf("spool: event %s is not waiting: %w", id, ErrNotFound)
	}
	var stored Item
	if err := json.Unmarshal(raw, &stored); err != nil {
		return nil, 0, fmt.Errorf("spool: event %s does not decode: %w", id, err)
	}
	if err := tx.Bucket(bucketDue).Delete(dueKey(stored.NextAttempt, id)); err != nil {
		return nil, 0, err
	}
	return &stored, len(raw), tx.Bucket(bucketEvents).Delete([]byte(id))
}

// Enqueue stores ev, due now. The record is encoded here, in the caller's
// goroutine, so the one committer goroutine only writes. It refuses the
// event with ErrQueueFull past the spool's limits, and with a
// *DuplicateError when its DedupKey was stored within the dedup window.
func (s *Spool) Enqueue(_ context.Context, ev *Event) error {
	if err := s.full(); err != nil {
		return err
	}
	it := &Item{Event: *ev, NextAttempt: s.now()}
	raw, err := json.Marshal(it)
	if err != nil {
		return err
	}
	var dupOf string
	err = s.update(func(tx *bolt.Tx) error {
		dupOf = ""
		if ev.DedupKey != "" && s.opts.dedupWindow > 0 {
			first, err := s.remember(tx, ev.DedupKey, ev.ID)
			if err != nil || first != "" {
				dupOf = first
				return err
			}
		}
		return putRaw(tx, it, raw)
	})
	switch {
	case err != nil:
		return err
	case dupOf != "":
		return &DuplicateError{ID: dupOf}
	}
	s.depth.Add(1)
	s.bytes.Add(int64(len(raw)))
	s.counts.add(ev.Type, 1, 0)
	s.signal()
	return nil
}

// full reports whether the spool is at one of its limits.
func (s *Spool) full() error {
	if m := s.opts.maxEvents; m > 0 && s.depth.Load() >= int64(m) {
		return fmt.Errorf("%w: %d events waiting, the spool.max_events limit", ErrQueueFull, m)
	}
	if m := s.opts.maxBytes; m > 0 && s.bytes.Load() >= m {
		return fmt.Errorf("%w: %d bytes stored, the spool.max_bytes limit", ErrQueueFull, m)
	}
	return nil
}

func (s *Spool) signal() {
	s.mu.Lock()
	close(s.wake)
	s.wake = make(chan struct{})
	s.mu.Unlock()
}

// Retry records the failed attempt and makes the item due again at next.
func (s *Spool) Retry(_ context.Context, it *Item, next time.Time, cause error) error {
	defer s.signal()
	var grew int64
	err := s.update(func(tx *bolt.Tx) error {
		stored, before, err := removeItem(tx, it.Event.ID)
		if err != nil {
			return err
		}
		stored.carry(it)
		stored.NextAttempt = next
		stored.LastError = cause.Error()
		stored.record(s.now(), fmt.Sprintf("attempt %d failed: %s", it.Attempts, cause))
		n, err := putItem(tx, stored)
		grew = int64(n - before)
		return err
	})
	if err == nil {
		s.bytes.Add(grew)
	}
	return s.settled(it.Event.ID, err)
}

// Bury moves the item to the dead letters, keeping its history.
func (s *Spool) Bury(_ context.Context, it *Item, reason string) error {
	var grew int64
	err := s.update(func(tx *bolt.Tx) error {
		stored, before, err := removeItem(tx, it.Event.ID)
		if err != nil {
			return err
		}
		stored.carry(it)
		stored.LastError = it.LastError
		stored.DeadReason = reason
		stored.Died = s.now()
		stored.record(stored.Died, "moved to the dead letters: "+reason)
		b, err := json.Marshal(stored)
		if err != nil {
			return err
		}
		grew = int64(len(b) - before)
		return tx.Bucket(bucketDead).Put([]byte(stored.Event.ID), b)
	})
	if err == nil {
		s.depth.Add(-1)
		s.dead.Add(1)
		s.bytes.Add(grew)
		s.counts.add(it.Event.Type, -1, 1)
	}
	return s.settled(it.Event.ID, err)
}

// Stats reports the kept counts and reads the oldest waiting item: O(1),
// whatever the backlog.
func (s *Spool) Stats(context.Context) (Stats, error) {
	s.mu.Lock()
	delivering := len(s.leased)
	s.mu.Unlock()
	st := Stats{
		Depth: int(s.depth.Load()), Dead: int(s.dead.Load()), Bytes: s.bytes.Load(),
		Delivering: delivering, ByType: s.counts.snapshot(),
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		// Ids are UUIDv7, so the first key is the earliest received.
		if _, raw := tx.Bucket(bucketEvents).Cursor().First(); raw != nil {
			var it Item
			if err := json.Unmarshal(raw, &it); err != nil {
				return err
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

// Ready writes a probe record, so it fails when the disk cannot take writes.
// After a commit failed, the probe is the size of a large event and is
// deleted again; its success means events fit again and clears the error,
// so hookmail reports ready again without waiting for a webhook.
//
// A spool at spool.max_events or spool.max_bytes is not ready either: it
// refuses events until workers deliver some.
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

// Close stops the committer and closes the file. Writes in flight finish
// first; later ones get ErrQueueClosed.
func (s *Spool) Close() error {
	var err error
	s.closed.Do(func() {
		close(s.closing)
		s.sweeps.Wait()
		<-s.loopDone
		err = s.db.Close()
	})
	return err
}
