package relay

import (
	"context"
	"sync"
	"time"
)

// PaceStore keeps the send slots of smtp.rate and of the routes' rates
// where every hookmail sharing the queue takes them, so that a rate holds
// for the whole deployment: the backend supplies it, as it supplies the
// DigestStore (a table on Postgres, this process's memory on the spool,
// which one hookmail holds). relay/queuetest checks a store's contract.
//
// Each bucket allows one email every Every and remembers no unused slots
// (the generic cell rate algorithm with no burst): no window of a rate's
// unit holds more than its count of emails, and one more at its edge.
type PaceStore interface {
	// Take takes a slot from every bucket at once when each has one free
	// now, and returns nil. Otherwise it takes none, and returns for each
	// bucket how long until its slot is free (0 for a bucket free now).
	Take(ctx context.Context, buckets []Bucket) ([]time.Duration, error)
}

// Bucket is one rate's slots: Key names it (BucketSMTP, or RouteBucket's),
// and Every is the gap the rate keeps between two emails. A bucket's Every
// may change between calls (a reload): each take spaces the next by its
// own.
type Bucket struct {
	Key   string
	Every time.Duration
}

// BucketSMTP is smtp.rate's bucket, which every email takes from.
const BucketSMTP = "smtp"

// RouteBucket is the key of route's own rate's bucket.
func RouteBucket(route string) string { return "route:" + route }

// LocalPace is a PaceStore in this process's memory, for a queue one
// hookmail holds: its rates hold for this process only.
type LocalPace struct {
	mu   sync.Mutex
	now  func() time.Time
	free map[string]time.Time // by key: when the bucket's next slot is free
}

var _ PaceStore = (*LocalPace)(nil)

// NewLocalPace returns an empty store on the clock now (time.Now if nil).
func NewLocalPace(now func() time.Time) *LocalPace {
	if now == nil {
		now = time.Now
	}
	return &LocalPace{now: now, free: map[string]time.Time{}}
}

// Take takes a slot from every bucket when each has one free now.
func (p *LocalPace) Take(_ context.Context, buckets []Bucket) ([]time.Duration, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	waits := make([]time.Duration, len(buckets))
	blocked := false
	for i, b := range buckets {
		if w := p.free[b.Key].Sub(now); w > 0 {
			waits[i], blocked = w, true
		}
	}
	if blocked {
		return waits, nil
	}
	for _, b := range buckets {
		p.free[b.Key] = now.Add(b.Every)
	}
	return nil, nil
}
