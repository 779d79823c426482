package app

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/outbox"
)

// queueCalls counts the calls the workers make into the queue and the
// digest store.
type queueCalls struct {
	relay.Queue
	relay.DigestStore
	leases, looks atomic.Int64
}

func (q *queueCalls) Lease(ctx context.Context) (*relay.Lease, error) {
	q.leases.Add(1)
	return q.Queue.Lease(ctx)
}

func (q *queueCalls) DigestRoutes(ctx context.Context) ([]string, error) {
	q.looks.Add(1)
	return q.DigestStore.DigestRoutes(ctx)
}

// TestIdleWorkersLeaveTheQueueAlone: with no digest route and nothing
// queued, the workers wait in Lease and the digest loop sleeps: no call
// into the spool over a few idle seconds. A reload that adds a digest
// route wakes the digest loop.
func TestIdleWorkersLeaveTheQueueAlone(t *testing.T) {
	cfg := testConfig(t)
	env := newTestEnv(t, cfg, nil)
	q := &queueCalls{Queue: env.backend.Queue, DigestStore: env.backend.Digests}
	backend := *env.backend
	backend.Queue, backend.Digests = q, q
	rules, err := relay.NewRules(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ob, err := outbox.New(cfg.Outbox.Dir)
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(Options{Config: cfg, Log: slog.New(slog.DiscardHandler)}, prometheus.NewRegistry(), rules, &backend, ob)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.workers.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitFor(t, "each worker to wait in Lease and the digests to be looked at", func() bool {
		return q.leases.Load() == int64(cfg.SMTP.Workers) && q.looks.Load() >= 1
	})
	leases, looks := q.leases.Load(), q.looks.Load()
	time.Sleep(3 * time.Second)
	if n := q.leases.Load() - leases; n != 0 {
		t.Errorf("idle for 3s, the workers leased %d more times", n)
	}
	if n := q.looks.Load() - looks; n != 0 {
		t.Errorf("idle for 3s with no digest route, the digests were looked at %d times", n)
	}

	digesting := *cfg
	digesting.Routes = append([]config.Route{{Name: "digest", Match: map[string]string{"type": "whatsapp"},
		To: []string{"me@example.com"}, Digest: &config.Digest{Every: time.Hour}}}, cfg.Routes...)
	withDigest, err := relay.NewRules(&digesting)
	if err != nil {
		t.Fatal(err)
	}
	s.workers.SetRules(withDigest)
	waitFor(t, "the digest loop to look again after the reload", func() bool { return q.looks.Load() > looks+1 })
}
