package postgres_test

import (
	"testing"

	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/postgres"
	"github.com/hookmail/hookmail/relay/postgres/pgtest"
	"github.com/hookmail/hookmail/relay/queuetest"
)

// TestConformance runs the queue contract's suite on a database of each
// subtest's own, with several instances open on it at once.
func TestConformance(t *testing.T) {
	queuetest.Run(t, func(t *testing.T) queuetest.Harness {
		url := pgtest.Database(t)
		return queuetest.Harness{
			Shared: true,
			Open: func(o queuetest.Options) queuetest.Backend {
				opts := []postgres.Option{postgres.WithDedupWindow(o.DedupWindow), postgres.WithMaxEvents(o.MaxEvents)}
				if o.LeaseTimeout > 0 {
					opts = append(opts, postgres.WithLeaseTimeout(o.LeaseTimeout))
				}
				return open(t, url, opts...)
			},
		}
	})
}

// open opens an instance on url; the test closes it.
func open(t testing.TB, url string, opts ...postgres.Option) *postgres.Queue {
	t.Helper()
	q, err := postgres.Open(t.Context(), url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// TestPaceConformance runs the PaceStore suite with instances on one
// database.
func TestPaceConformance(t *testing.T) {
	queuetest.RunPace(t, func(t *testing.T) queuetest.PaceHarness {
		url := pgtest.Database(t)
		return queuetest.PaceHarness{Open: func() relay.PaceStore {
			q := open(t, url)
			t.Cleanup(func() { q.Close() })
			return q
		}}
	})
}
