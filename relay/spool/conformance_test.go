package spool_test

import (
	"testing"

	"github.com/hookmail/hookmail/relay/queuetest"
	"github.com/hookmail/hookmail/relay/spool"
)

func TestConformance(t *testing.T) {
	queuetest.Run(t, func(t *testing.T) queuetest.Harness {
		dir := t.TempDir()
		return queuetest.Harness{
			Open: func(o queuetest.Options) queuetest.Backend {
				opts := []spool.Option{spool.WithDedupWindow(o.DedupWindow), spool.WithLimits(o.MaxEvents, 0)}
				if o.LeaseTimeout > 0 {
					opts = append(opts, spool.WithLeaseTimeout(o.LeaseTimeout))
				}
				s, err := spool.Open(dir, opts...)
				if err != nil {
					t.Fatal(err)
				}
				return s
			},
		}
	})
}
