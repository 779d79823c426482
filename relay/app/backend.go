package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"syscall"
	"time"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/admin"
	"github.com/hookmail/hookmail/relay/postgres"
	"github.com/hookmail/hookmail/relay/spool"
)

// Backend is an open queue backend: the queue the receiver and workers
// use, the operator's view of it, the store of collected digests, and the
// send slots of the rates, shared as widely as the queue is.
type Backend struct {
	Queue     relay.Queue
	Inspector relay.Inspector
	Digests   relay.DigestStore
	Pace      relay.PaceStore
	// Where names it for logs and the queue commands.
	Where string
	Close func() error
	// Shared says that other hookmails may use the queue at the same time
	// (a database), so the queue commands may work on it while they run.
	Shared bool
}

// Scope is the queue label of the metrics that describe the queue:
// shared when other hookmails use it too, so that each instance's identical
// numbers are aggregated once.
func (b *Backend) Scope() relay.QueueScope {
	if b.Shared {
		return relay.QueueShared
	}
	return relay.QueueLocal
}

// OpenBackend opens the queue backend cfg describes: the spool in
// spool.dir, or the Postgres queue queue.postgres.url names. With
// mustExist it never creates one (the queue commands work on a queue
// hookmail made, never on a new empty one).
func OpenBackend(cfg *config.Config, log *slog.Logger, mustExist bool) (*Backend, error) {
	if cfg.Queue.Backend == config.BackendPostgres {
		return openPostgres(cfg, log, mustExist)
	}
	opts := []spool.Option{
		spool.WithLogger(log),
		spool.WithLimits(cfg.Spool.MaxEvents, cfg.Spool.MaxBytes),
		spool.WithDedupWindow(cfg.Dedup.Window),
		spool.WithLeaseTimeout(cfg.Queue.LeaseTimeout),
	}
	if mustExist {
		opts = append(opts, spool.MustExist())
	}
	s, err := spool.Open(cfg.Spool.Dir, opts...)
	if err != nil {
		return nil, err
	}
	return &Backend{Queue: s, Inspector: s, Digests: s, Pace: relay.NewLocalPace(nil), Where: "spool file " + s.Path(), Close: s.Close}, nil
}

// openTimeout bounds connecting to the database and migrating its schema
// at start.
const openTimeout = 30 * time.Second

// openPostgres opens the shared queue, creating or migrating its tables
// unless mustExist. spool.max_events bounds it as it does the spool;
// spool.max_bytes does not (the database's size is its administrator's).
func openPostgres(cfg *config.Config, log *slog.Logger, mustExist bool) (*Backend, error) {
	url, err := cfg.Queue.Postgres.ConnString()
	if err != nil {
		return nil, err
	}
	pg := cfg.Queue.Postgres
	opts := []postgres.Option{
		postgres.WithLogger(log),
		postgres.WithLeaseTimeout(cfg.Queue.LeaseTimeout),
		postgres.WithDedupWindow(cfg.Dedup.Window),
		postgres.WithMaxEvents(cfg.Spool.MaxEvents),
		postgres.WithListen(pg.Listen),
		postgres.WithPoll(pg.Poll),
	}
	if mustExist {
		opts = append(opts, postgres.MustExist())
	}
	ctx, cancel := context.WithTimeout(context.Background(), openTimeout)
	defer cancel()
	q, err := postgres.Open(ctx, url, opts...)
	if err != nil {
		return nil, err
	}
	return &Backend{Queue: q, Inspector: q, Digests: q, Pace: q, Where: q.Where(), Close: q.Close, Shared: true}, nil
}

// PostgresSchema connects to the database queue.postgres.url names and
// says which schema version it has, changing nothing; for `hookmail
// check`.
func PostgresSchema(ctx context.Context, cfg *config.Config) (string, error) {
	url, err := cfg.Queue.Postgres.ConnString()
	if err != nil {
		return "", err
	}
	v, where, err := postgres.ReadSchemaVersion(ctx, url)
	switch {
	case err != nil:
		return "", err
	case v == 0:
		return fmt.Sprintf("%s: no hookmail queue yet; hookmail serve creates it (postgres schema version %d)", where, postgres.KnownSchemaVersion()), nil
	case v < postgres.KnownSchemaVersion():
		return fmt.Sprintf("%s: postgres schema version %d; hookmail serve migrates it to %d", where, v, postgres.KnownSchemaVersion()), nil
	}
	return fmt.Sprintf("%s: postgres schema version %d", where, v), nil
}

// Check refuses a config the backend cannot serve: a digest or storm route
// on a backend that keeps no digests is a config error at start (or
// reload), not a failure of every event the route takes.
func (b *Backend) Check(cfg *config.Config) error {
	if b.Digests != nil {
		return nil
	}
	for i, rt := range cfg.Routes {
		if rt.Digest != nil {
			return &config.Problem{Key: fmt.Sprintf("routes[%d].digest", i),
				Message: fmt.Sprintf("route %q digests, and this queue backend keeps no digests", rt.Name),
				Fix:     "remove digest from the route, or use a backend that keeps them"}
		}
		if rt.Storm != nil {
			return &config.Problem{Key: fmt.Sprintf("routes[%d].storm", i),
				Message: fmt.Sprintf("route %q folds storms into digests, and this queue backend keeps no digests", rt.Name),
				Fix:     "remove storm from the route, or use a backend that keeps digests"}
		}
	}
	return nil
}

// ConnectQueue reaches the queue of the hookmail cfg describes, for the
// queue commands: its admin endpoint when it runs, else its queue opened
// here. It never creates a spool: a missing one is an error naming --config
// and spool.dir, since the command was most likely run with another config
// or from another directory than hookmail.
func ConnectQueue(ctx context.Context, cfg *config.Config, log *slog.Logger) (admin.Queue, error) {
	var apiErr error
	if cfg.Admin.Enabled() {
		c := admin.NewClient(cfg)
		_, err := c.Stats(ctx)
		switch {
		case err == nil:
			return c, nil
		case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, fs.ErrNotExist):
			apiErr = err // hookmail is not running: the spool file is free
		default:
			return nil, err
		}
	}
	b, err := OpenBackend(cfg, log, true)
	switch {
	case err != nil && cfg.Queue.Backend == config.BackendPostgres:
		return nil, err // it names the database and why; a running hookmail changes nothing here
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%w: is this the config hookmail runs with? Give the same --config (or $HOOKMAIL_CONFIG), and run from hookmail's working directory when spool.dir (%q) is relative", err, cfg.Spool.Dir)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("%w: only the user hookmail runs as (or root) may use the queue commands; run them as that user, e.g. with sudo -u", err)
	case err != nil && apiErr == nil:
		return nil, fmt.Errorf("%w (admin.listen is off, so a running hookmail cannot be reached; set it, or stop hookmail first)", err)
	case err != nil:
		return nil, fmt.Errorf("%w; and hookmail's admin endpoint does not answer: %v", err, apiErr)
	}
	rules, err := relay.NewRules(cfg)
	if err != nil {
		b.Close()
		return nil, err
	}
	place := b.Where
	if !b.Shared {
		place += " (hookmail is not running)"
	}
	return &admin.Local{Inspector: b.Inspector, Rules: rules, Place: place, Closer: b.Close}, nil
}
