// Package memqueue is a queue backend in memory: it keeps the workers'
// and the admin API's tests fast and free of disk. It meets the same
// contract as the real backends (relay/queuetest runs it), but holds
// nothing across a restart of the process, so `hookmail serve` never uses
// it.
package memqueue

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hookmail/hookmail/relay"
)

// Store is what a Queue holds. It outlives the Queues opened on it, as a
// database outlives its connections: close a Queue and open another on the
// same Store, and everything accepted is still there.
type Store struct {
	mu      sync.Mutex
	waiting map[string]*relay.Item
	dead    map[string]*relay.Item
	leases  map[string]lease
	dedup   map[string]dedupEntry
	digests map[string]map[string]relay.DigestEntry // route → event id → entry
	claims  map[string]claim
	storms  map[string]memStorm // route, NUL, conversation → window
	waiters relay.Waiters       // idle leasers, all woken by signal
	tokens  int
	owners  int
	pace    *relay.LocalPace
}

type lease struct {
	token   string
	expires time.Time
}

type dedupEntry struct {
	id      string
	expires time.Time
}

type claim struct {
	owner int
	until time.Time
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{
		waiting: map[string]*relay.Item{}, dead: map[string]*relay.Item{}, leases: map[string]lease{},
		dedup: map[string]dedupEntry{}, digests: map[string]map[string]relay.DigestEntry{},
		claims: map[string]claim{}, storms: map[string]memStorm{}, pace: relay.NewLocalPace(nil),
	}
}

var _ relay.PaceStore = (*Store)(nil)

// Take takes the rates' slots that every Queue on the store shares, as the
// instances on one database share theirs.
func (s *Store) Take(ctx context.Context, buckets []relay.Bucket) ([]time.Duration, error) {
	return s.pace.Take(ctx, buckets)
}

// Queue is one instance's connection to a Store.
type Queue struct {
	s       *Store
	owner   int
	now     func() time.Time
	timeout time.Duration
	window  time.Duration
	max     int
	closed  chan struct{}
	once    sync.Once
}

var (
	_ relay.Queue       = (*Queue)(nil)
	_ relay.Inspector   = (*Queue)(nil)
	_ relay.DigestStore = (*Queue)(nil)
)

// Option sets one of Open's options.
type Option func(*Queue)

// WithClock sets the clock (default time.Now).
func WithClock(now func() time.Time) Option { return func(q *Queue) { q.now = now } }

// WithLeaseTimeout sets how long a lease lasts (default relay.DefaultLeaseTimeout).
func WithLeaseTimeout(d time.Duration) Option { return func(q *Queue) { q.timeout = d } }

// WithDedupWindow sets how long a DedupKey is remembered (0: not at all).
func WithDedupWindow(d time.Duration) Option { return func(q *Queue) { q.window = d } }

// WithMaxEvents makes Enqueue refuse events while max wait (0: no limit).
func WithMaxEvents(max int) Option { return func(q *Queue) { q.max = max } }

// Open connects a Queue to s.
func Open(s *Store, opts ...Option) *Queue {
	s.mu.Lock()
	s.owners++
	q := &Queue{s: s, owner: s.owners, now: time.Now, timeout: relay.DefaultLeaseTimeout, closed: make(chan struct{})}
	s.mu.Unlock()
	for _, o := range opts {
		o(q)
	}
	return q
}

// signal wakes the leasers (all of them: a store for tests keeps to the
// simplest rule); the caller holds s.mu.
func (s *Store) signal() {
	s.waiters.WakeAll()
}

func (q *Queue) check() error {
	select {
	case <-q.closed:
		return relay.ErrQueueClosed
	default:
		return nil
	}
}

// Enqueue stores ev, due now.
func (q *Queue) Enqueue(_ context.Context, ev *relay.Event) error {
	if err := q.check(); err != nil {
		return err
	}
	s := q.s
	s.mu.Lock()
	defer s.mu.Unlock()
	now := q.now()
	if q.max > 0 && len(s.waiting) >= q.max {
		return fmt.Errorf("%w: %d events waiting", relay.ErrQueueFull, q.max)
	}
	if ev.DedupKey != "" && q.window > 0 {
		if d, ok := s.dedup[ev.DedupKey]; ok && now.Before(d.expires) {
			return &relay.DuplicateError{ID: d.id}
		}
		s.dedup[ev.DedupKey] = dedupEntry{id: ev.ID, expires: now.Add(q.window)}
	}
	e := *ev
	e.DedupKey = ""
	s.waiting[ev.ID] = &relay.Item{Event: e, NextAttempt: now}
	s.signal()
	return nil
}

// Lease hands out the due item of the highest priority no lease holds,
// the earliest due first.
func (q *Queue) Lease(ctx context.Context) (*relay.Lease, error) {
	woken := false
	for {
		if err := q.s.waiters.Stopped(ctx, q.closed, woken); err != nil {
			return nil, err
		}
		l, wait, wake := q.next()
		if l != nil {
			return l, nil
		}
		var err error
		if woken, err = q.s.waiters.Wait(ctx, q.closed, wait, wake); err != nil {
			return nil, err
		}
	}
}

func (q *Queue) next() (*relay.Lease, time.Duration, chan struct{}) {
	s := q.s
	s.mu.Lock()
	defer s.mu.Unlock()
	now := q.now()
	var best *relay.Item
	var wait time.Duration
	sooner := func(d time.Duration) {
		if wait == 0 || d < wait {
			wait = max(d, time.Millisecond)
		}
	}
	for id, it := range s.waiting {
		if l, ok := s.leases[id]; ok && now.Before(l.expires) {
			sooner(l.expires.Sub(now))
			continue
		}
		if it.NextAttempt.After(now) {
			sooner(it.NextAttempt.Sub(now))
			continue
		}
		if best == nil || dueBefore(it, best) {
			best = it
		}
	}
	if best == nil {
		return nil, wait, s.waiters.Join() // under s.mu, which signal takes
	}
	s.tokens++
	l := &relay.Lease{Item: copyItem(best, relay.StateDelivering), Token: strconv.Itoa(s.tokens), Expires: now.Add(q.timeout)}
	s.leases[best.Event.ID] = lease{token: l.Token, expires: l.Expires}
	return l, 0, nil
}

func dueBefore(a, b *relay.Item) bool {
	return cmp.Or(cmp.Compare(b.Event.Priority, a.Event.Priority), a.NextAttempt.Compare(b.NextAttempt), cmp.Compare(a.Event.ID, b.Event.ID)) < 0
}

// copyItem is a copy of it the caller may change without touching the store.
func copyItem(it *relay.Item, state relay.State) relay.Item {
	c := *it
	p := it.Progress()
	c.Delivered, c.Refused, c.Owed = p.Delivered, p.Refused, p.Owed
	c.History = slices.Clone(it.History)
	c.State = state
	return c
}

// Extend pushes l's expiry a lease timeout from now.
func (q *Queue) Extend(_ context.Context, l *relay.Lease) error {
	s := q.s
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.leases[l.Item.Event.ID]
	if !ok || cur.token != l.Token {
		return relay.ErrLeaseLost
	}
	cur.expires = q.now().Add(q.timeout)
	s.leases[l.Item.Event.ID] = cur
	l.Expires = cur.expires
	return nil
}

// settle applies change to l's item if l still holds it; the caller holds
// s.mu.
func (q *Queue) settle(l *relay.Lease, change func(it *relay.Item)) error {
	if err := q.check(); err != nil {
		return err
	}
	s := q.s
	id := l.Item.Event.ID
	it, ok := s.waiting[id]
	if cur := s.leases[id]; !ok || cur.token != l.Token {
		return relay.ErrLeaseLost
	}
	delete(s.leases, id)
	change(it)
	s.signal()
	return nil
}

// Ack removes the delivered item.
func (q *Queue) Ack(_ context.Context, l *relay.Lease) error {
	q.s.mu.Lock()
	defer q.s.mu.Unlock()
	return q.settle(l, func(it *relay.Item) { delete(q.s.waiting, it.Event.ID) })
}

// Retry records p and makes the item due at next.
func (q *Queue) Retry(_ context.Context, l *relay.Lease, next time.Time, p relay.Progress) error {
	q.s.mu.Lock()
	defer q.s.mu.Unlock()
	return q.settle(l, func(it *relay.Item) {
		it.Apply(p)
		it.NextAttempt = next
	})
}

// Bury records p and moves the item to the dead letters.
func (q *Queue) Bury(_ context.Context, l *relay.Lease, reason string, p relay.Progress) error {
	q.s.mu.Lock()
	defer q.s.mu.Unlock()
	return q.settle(l, func(it *relay.Item) {
		it.Apply(p)
		it.DeadReason, it.Died = reason, q.now()
		it.Record(it.Died, "moved to the dead letters: "+reason)
		delete(q.s.waiting, it.Event.ID)
		q.s.dead[it.Event.ID] = it
	})
}

// Stats counts what the store holds.
func (q *Queue) Stats(context.Context) (relay.Stats, error) {
	s := q.s
	s.mu.Lock()
	defer s.mu.Unlock()
	now := q.now()
	st := relay.Stats{Depth: len(s.waiting), Dead: len(s.dead), ByType: map[string]relay.TypeCount{}}
	for id, it := range s.waiting {
		if st.Oldest.IsZero() || it.Event.Received.Before(st.Oldest) {
			st.Oldest = it.Event.Received
		}
		if l, ok := s.leases[id]; ok && now.Before(l.expires) {
			st.Delivering++
		}
		tc := st.ByType[it.Event.Type]
		tc.Waiting++
		st.ByType[it.Event.Type] = tc
	}
	for _, it := range s.dead {
		tc := st.ByType[it.Event.Type]
		tc.Dead++
		st.ByType[it.Event.Type] = tc
	}
	return st, nil
}

// Ready is ready while the queue is open and below its limit.
func (q *Queue) Ready(context.Context) error {
	if err := q.check(); err != nil {
		return err
	}
	q.s.mu.Lock()
	defer q.s.mu.Unlock()
	if q.max > 0 && len(q.s.waiting) >= q.max {
		return fmt.Errorf("%w: %d events waiting", relay.ErrQueueFull, q.max)
	}
	return nil
}

// Close ends this connection; its leases expire as any other.
func (q *Queue) Close() error {
	q.once.Do(func() { close(q.closed) })
	return nil
}
