// Package spool is hookmail's embedded queue backend: one bbolt file in
// spool.dir holds the waiting events, the dead letters, the dedup keys and
// the events collected for digests. It implements relay.Queue,
// relay.Inspector and relay.DigestStore for one hookmail process, which
// holds the file locked.
package spool

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/hookmail/hookmail/relay"
)

// Spool is the embedded durable queue.
//
// Writes go through one writer goroutine that packs every write waiting at
// the moment into one transaction and one fsync (group commit). Unlike
// bbolt's DB.Batch it waits for no timer: a lone request commits at once,
// and under load each commit takes everything that queued up during the
// last one. Only acks linger, briefly, for company (see Ack).
type Spool struct {
	db   *bolt.DB
	path string
	opts options

	writes   chan writeOp
	acks     chan writeOp // buffered: a worker hands its ack over without waiting for the writer
	ackSlots chan struct{}
	closing  chan struct{}
	loopDone chan struct{}
	closed   sync.Once
	sweeps   sync.WaitGroup

	mu     sync.Mutex
	leases map[string]lease     // by event id
	claims map[string]time.Time // digest claims: route → until
	storms stormWindows         // storm windows as counted, ahead of the file
	// waiters are the leasers waiting for something due, longest first.
	waiters relay.Waiters
	tokens  atomic.Uint64
	// resume is the due-index key the last lease's walk stopped at, when
	// every entry before it was leased, and resumeAt when: the next walk
	// starts there (see next). Anything that may put a takeable entry
	// before it clears it: a new or rescheduled item (signal), a lease
	// given up with its item still waiting (release).
	resume   []byte
	resumeAt time.Time
	// sawDamage is set once a write met a damaged page (see writePanic).
	sawDamage atomic.Bool

	// depth and dead are kept by each commit (and in the file, with the
	// counts by type); bytes are the file's pages in use after the last
	// commit. A scrape never walks a large backlog, nor does Open.
	depth, dead, bytes atomic.Int64
	counts             typeCounts

	// writeErr is the error of the last commit when it failed (disk full,
	// read-only, I/O error); Ready reports it until a write succeeds again.
	writeErr atomic.Pointer[error]
}

// Option sets one of Open's options.
type Option func(*options)

type options struct {
	now          func() time.Time
	log          *slog.Logger
	mustExist    bool
	maxEvents    int
	maxBytes     int64
	dedupWindow  time.Duration
	leaseTimeout time.Duration
}

// WithClock sets the clock (default time.Now).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithLogger sets where the spool reports what no caller waits for: an ack
// that could not be written (default: discarded).
func WithLogger(log *slog.Logger) Option { return func(o *options) { o.log = log } }

// MustExist makes Open fail with an error matching fs.ErrNotExist when
// there is no spool file yet, instead of creating one: the queue commands
// work on a spool hookmail made, never on a new empty one.
func MustExist() Option { return func(o *options) { o.mustExist = true } }

// WithLimits makes Enqueue refuse events (relay.ErrQueueFull) while the
// spool holds maxEvents waiting events, or its file's pages in use hold
// maxBytes (everything: events, dead letters, collected digests, dedup
// keys, the indexes and bbolt's own); 0 is no limit.
func WithLimits(maxEvents int, maxBytes int64) Option {
	return func(o *options) { o.maxEvents, o.maxBytes = maxEvents, maxBytes }
}

// WithDedupWindow makes Enqueue store one event per DedupKey within window
// (0: no deduplication). The keys are kept in the spool, so the window
// holds across restarts.
func WithDedupWindow(window time.Duration) Option {
	return func(o *options) { o.dedupWindow = window }
}

// WithLeaseTimeout sets how long a lease lasts unless extended (default
// relay.DefaultLeaseTimeout).
func WithLeaseTimeout(d time.Duration) Option { return func(o *options) { o.leaseTimeout = d } }

var (
	_ relay.Queue       = (*Spool)(nil)
	_ relay.Inspector   = (*Spool)(nil)
	_ relay.DigestStore = (*Spool)(nil)
)

// Buckets: events holds every waiting item by id; due indexes them by next
// attempt (8-byte big-endian Unix nanoseconds, then the id) so Lease reads
// the earliest first; priority indexes again those of a priority above 0,
// by 255 minus the priority, then as due does, so Lease reads the highest
// priority first; dead holds the dead letters by id; dedup maps a
// hashed DedupKey to its expiry and event id, and dedupexp indexes those by
// expiry; digests holds digest routes' collected events by route, NUL and
// event id (a storm's digest has a route name of its own, see
// relay.StormDigest); storms holds storm routes' windows by route, NUL and
// conversation, and stormexp indexes those by when they may be deleted;
// counts holds the counts by type (see counts.go); meta holds Ready's probe
// and the stamps keyCounted and keyClean.
var (
	bucketEvents   = []byte("events")
	bucketDue      = []byte("due")
	bucketPriority = []byte("priority")
	bucketDead     = []byte("dead")
	bucketMeta     = []byte("meta")
	bucketDedup    = []byte("dedup")
	bucketDedupExp = []byte("dedupexp")
	bucketDigests  = []byte("digests")
	bucketStorms   = []byte("storms")
	bucketStormExp = []byte("stormexp")
)

// File is the name of the spool's database file in spool.dir.
const File = "spool.db"

// Open opens (or creates) the spool in dir. It fails fast, with a reason,
// when another hookmail holds the file or the file is damaged.
func Open(dir string, opts ...Option) (s *Spool, err error) {
	o := options{now: time.Now, log: slog.New(slog.DiscardHandler), leaseTimeout: relay.DefaultLeaseTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	path := filepath.Join(dir, File)
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
			s, err = nil, damaged(path, p)
		}
	}()
	if err := precheck(path); err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        2 * time.Second,
		NoFreelistSync: true, // saves a write per commit; Close writes it once
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return nil, openError(path, err)
	}
	var types map[string]relay.TypeCount
	err = update(db, path, func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketEvents, bucketDue, bucketPriority, bucketDead, bucketMeta, bucketDedup, bucketDedupExp, bucketDigests, bucketStorms, bucketStormExp, bucketCounts} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		types, err = loadCounts(tx)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("spool: cannot initialise %s: %w", path, err)
	}
	s = &Spool{
		db:       db,
		path:     path,
		opts:     o,
		writes:   make(chan writeOp),
		acks:     make(chan writeOp, maxAcksInFlight),
		ackSlots: make(chan struct{}, maxAcksInFlight),
		closing:  make(chan struct{}),
		loopDone: make(chan struct{}),
		leases:   map[string]lease{},
		claims:   map[string]time.Time{},
		counts:   typeCounts{m: types},
	}
	for _, c := range types {
		s.depth.Add(int64(c.Waiting))
		s.dead.Add(int64(c.Dead))
	}
	s.measure()
	go s.writeLoop()
	if o.dedupWindow > 0 {
		s.sweeps.Go(s.sweepDedup)
	}
	return s, nil
}

// openError explains why bbolt could not open path.
func openError(path string, err error) error {
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return fmt.Errorf("spool: %s is locked by another process (is another hookmail running on this spool.dir?)", path)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum), errors.Is(err, bolterrors.ErrVersionMismatch):
		return damaged(path, err)
	}
	return fmt.Errorf("spool: cannot open %s: %w", path, err)
}

// damaged is the error for a spool file that cannot be read, with what to
// do about it.
func damaged(path string, cause any) error {
	return fmt.Errorf("spool: %s is damaged (%v); stop hookmail, move the file aside to start with an empty spool, and keep it for recovery", path, cause)
}

// Path is the spool file's absolute path.
func (s *Spool) Path() string { return s.path }

// Close stops the writer and closes the file. Writes in flight, acks
// included, are committed first; later ones get relay.ErrQueueClosed.
//
// Its last commit writes bbolt's list of free pages, which the spool does
// not write at each commit, and marks the file closed cleanly: the next
// Open then reads that list and trusts the file, instead of reading every
// page of it (see precheck).
func (s *Spool) Close() error {
	var err error
	s.closed.Do(func() {
		close(s.closing)
		s.sweeps.Wait()
		<-s.loopDone
		if s.sawDamage.Load() {
			// The list of free pages in memory may be wrong: not written,
			// and the file not marked clean, so the next start reads the
			// whole file (and reports the damage there).
			s.opts.log.Error("spool: a write met a damaged page; the file is not marked closed cleanly", "path", s.path)
			err = s.db.Close()
			return
		}
		s.db.NoFreelistSync = false
		if cerr := update(s.db, s.path, func(tx *bolt.Tx) error {
			if err := stamp(tx, keyCounted); err != nil {
				return err
			}
			return stamp(tx, keyClean)
		}); cerr != nil {
			s.opts.log.Warn("spool: cannot mark the file closed cleanly; the next start reads all of it", "path", s.path, "err", cerr)
		}
		err = s.db.Close()
	})
	return err
}

func (s *Spool) now() time.Time { return s.opts.now() }

// signal wakes a leaser for an item that has become due (all of them
// with all, for many).
func (s *Spool) signal(all bool) {
	s.mu.Lock()
	s.resume = nil
	if all {
		s.waiters.WakeAll()
	} else {
		s.waiters.WakeOne()
	}
	s.mu.Unlock()
}
