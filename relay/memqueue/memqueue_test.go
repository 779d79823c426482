package memqueue_test

import (
	"testing"

	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/memqueue"
	"github.com/hookmail/hookmail/relay/queuetest"
)

func TestConformance(t *testing.T) {
	queuetest.Run(t, func(t *testing.T) queuetest.Harness {
		store := memqueue.NewStore()
		return queuetest.Harness{
			Shared: true,
			Open: func(o queuetest.Options) queuetest.Backend {
				opts := []memqueue.Option{memqueue.WithDedupWindow(o.DedupWindow), memqueue.WithMaxEvents(o.MaxEvents)}
				if o.LeaseTimeout > 0 {
					opts = append(opts, memqueue.WithLeaseTimeout(o.LeaseTimeout))
				}
				return memqueue.Open(store, opts...)
			},
		}
	})
}

// TestPaceConformance: every Queue on a Store takes from the Store's
// buckets, as instances on one database do.
func TestPaceConformance(t *testing.T) {
	queuetest.RunPace(t, func(t *testing.T) queuetest.PaceHarness {
		store := memqueue.NewStore()
		return queuetest.PaceHarness{Open: func() relay.PaceStore { return store }}
	})
}
