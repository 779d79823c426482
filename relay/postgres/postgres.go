// Package postgres is hookmail's shared queue backend: tables in a
// Postgres database that several hookmail instances use at once, so one
// can be stopped, replaced or lost while the others deliver. It implements
// relay.Queue, relay.Inspector and relay.DigestStore, as relay/spool does
// for one process; relay/queuetest checks both the same way.
//
// Workers claim the earliest due row with FOR UPDATE SKIP LOCKED, as
// River's and Oban's job tables do. A new event wakes one idle worker of
// the instance that stored it, and the other instances' through
// LISTEN/NOTIFY on a connection of their own; polling finds events without
// it (behind PgBouncer in transaction mode LISTEN does not work). The
// schema is created and migrated at open from the SQL files embedded in
// the binary.
package postgres

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookmail/hookmail/relay"
)

// Queue is the Postgres queue backend, one instance's connections to it.
type Queue struct {
	pool      *pgxpool.Pool
	listenCfg *pgx.ConnConfig
	opts      options
	red       *redactor
	where     string
	version   int
	// owner tells this instance's digest claims and NOTIFYs from other
	// instances'.
	owner string

	closing chan struct{}
	closed  sync.Once
	bg      sync.WaitGroup // the listener, the notifier and the dedup sweeper
	notify  chan struct{}  // a NOTIFY is due; see notifyLoop

	// waiters are this instance's idle leasers (see signal).
	waiters relay.Waiters
	// listening is whether the LISTEN connection is up (for tests).
	listening atomic.Bool

	mu sync.Mutex
	// depth and depthAt are the waiting events last counted for
	// maxEvents, and when, countTook how long that count took, counting
	// whether a check counts now, and recounts how many times recount
	// asked for a count; see full.
	depth     int
	depthAt   time.Time
	countTook time.Duration
	counting  bool
	recounts  int
	// countsMade counts the maxEvents counts (for tests).
	countsMade atomic.Int64
}

var (
	_ relay.Queue       = (*Queue)(nil)
	_ relay.Inspector   = (*Queue)(nil)
	_ relay.DigestStore = (*Queue)(nil)
)

// Option sets one of Open's options.
type Option func(*options)

type options struct {
	log          *slog.Logger
	leaseTimeout time.Duration
	dedupWindow  time.Duration
	maxEvents    int
	listen       bool
	poll         time.Duration
	mustExist    bool
	listBatch    int
	// requeuePage is how many dead letters a filtered RequeueDead reads
	// at a time; onRequeuePage, when set, hears how many each page held.
	requeuePage   int
	onRequeuePage func(n int)
}

// DefaultPoll is how often an idle worker looks for due events by default,
// besides being woken by LISTEN/NOTIFY.
const DefaultPoll = time.Second

// WithLogger sets where the backend reports what no caller waits for: the
// LISTEN connection lost and back (default: discarded).
func WithLogger(log *slog.Logger) Option { return func(o *options) { o.log = log } }

// WithLeaseTimeout sets how long a lease lasts unless extended (default
// relay.DefaultLeaseTimeout).
func WithLeaseTimeout(d time.Duration) Option { return func(o *options) { o.leaseTimeout = d } }

// WithDedupWindow makes Enqueue store one event per DedupKey within window
// (0: no deduplication), across every instance on the database.
func WithDedupWindow(window time.Duration) Option {
	return func(o *options) { o.dedupWindow = window }
}

// WithMaxEvents makes Enqueue refuse events (relay.ErrQueueFull) while
// maxEvents wait; 0 is no limit.
func WithMaxEvents(n int) Option { return func(o *options) { o.maxEvents = n } }

// WithListen turns LISTEN/NOTIFY on or off (default on). Turn it off behind
// PgBouncer in transaction mode, where a LISTEN is lost: polling alone then
// finds new events.
func WithListen(on bool) Option { return func(o *options) { o.listen = on } }

// WithPoll sets how often an idle worker looks for due events (default
// DefaultPoll).
func WithPoll(d time.Duration) Option { return func(o *options) { o.poll = d } }

// MustExist makes Open change nothing in the database: it fails unless the
// schema is there and current. The queue commands use it, so they never
// create an empty queue in a database that was not hookmail's.
func MustExist() Option { return func(o *options) { o.mustExist = true } }

// opTimeout bounds each of the workers' and the receiver's statements, so
// none waits on a database that does not answer for as long as TCP's
// retransmissions would (minutes): a webhook gets its 503 instead.
const opTimeout = 15 * time.Second

// defaultConnectTimeout bounds a connection attempt when the URL sets no
// connect_timeout.
const defaultConnectTimeout = 5 * time.Second

// defaultMaxConns is the pool's size when the URL sets no pool_max_conns:
// the workers, the receiver and the scrapes each take a connection for one
// statement at a time.
const defaultMaxConns = 10

// Open connects to the database connString names (a postgres:// URL or a
// key=value string), creates or migrates hookmail's tables in it, and
// starts listening for new events. ctx bounds the connecting and the
// migration. No error it returns quotes connString's password.
func Open(ctx context.Context, connString string, opts ...Option) (*Queue, error) {
	o := options{
		log:          slog.New(slog.DiscardHandler),
		leaseTimeout: relay.DefaultLeaseTimeout,
		listen:       true,
		poll:         DefaultPoll,
		listBatch:    defaultListBatch,
		requeuePage:  defaultRequeuePage,
	}
	for _, opt := range opts {
		opt(&o)
	}
	red := newRedactor(connString)
	cfg, err := parseConfig(connString, red)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, red.wrap(err)
	}
	version, err := migrate(ctx, pool, o.mustExist)
	if err != nil {
		pool.Close()
		msg := fmt.Sprintf("postgres: cannot open the queue in %s: %s", describe(cfg.ConnConfig), red.text(err.Error()))
		return nil, &dbError{msg: msg, err: err}
	}
	q := &Queue{
		pool:      pool,
		listenCfg: cfg.ConnConfig.Copy(),
		opts:      o,
		red:       red,
		where:     describe(cfg.ConnConfig),
		version:   version,
		owner:     rand.Text(),
		closing:   make(chan struct{}),
		notify:    make(chan struct{}, 1),
	}
	bg, stop := context.WithCancel(context.Background())
	q.bg.Go(func() { <-q.closing; stop() })
	if o.listen {
		q.bg.Go(func() { q.listenLoop(bg) })
	}
	q.bg.Go(func() { q.notifyLoop(bg) })
	q.bg.Go(func() { q.sweepLoop(bg) })
	return q, nil
}

// parseConfig reads connString into a pool config with hookmail's
// defaults. Statements run in pgx's exec mode, without prepared
// statements: they work alike straight to Postgres and through PgBouncer in
// transaction mode, and no cached plan outlives a migration another
// instance makes.
func parseConfig(connString string, red *redactor) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		// Only the redacted text: the parse error unwraps to the string.
		return nil, fmt.Errorf("postgres: queue.postgres.url is not a connection URL: %s", red.text(err.Error()))
	}
	red.add(cfg.ConnConfig.Password) // it may come from PGPASSWORD or a passfile
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	if !strings.Contains(connString, "pool_max_conns") {
		cfg.MaxConns = defaultMaxConns
	}
	return cfg, nil
}

// describe names the database for logs: host and database, never the
// password.
func describe(c *pgx.ConnConfig) string {
	host := c.Host
	if strings.HasPrefix(host, "/") {
		host = "socket " + host
	}
	return fmt.Sprintf("postgres database %q on %s port %d", c.Database, host, c.Port)
}

// Where names the database for logs and the queue commands.
func (q *Queue) Where() string { return q.where }

// SchemaVersion is the version of the database's schema, as Open left it.
func (q *Queue) SchemaVersion() int { return q.version }

// ReadSchemaVersion connects to the database connString names and returns
// its hookmail schema's version (0 when it has none yet), changing
// nothing; for `hookmail check`. A schema newer than this hookmail knows
// is an error saying so.
func ReadSchemaVersion(ctx context.Context, connString string) (int, string, error) {
	red := newRedactor(connString)
	cfg, err := parseConfig(connString, red)
	if err != nil {
		return 0, "", err
	}
	where := describe(cfg.ConnConfig)
	conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig)
	if err != nil {
		return 0, where, red.wrap(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	v, err := readVersion(ctx, conn)
	if err != nil {
		return 0, where, red.wrap(err)
	}
	if v > KnownSchemaVersion() {
		return v, where, fmt.Errorf("postgres: %w", newerError(v))
	}
	return v, where, nil
}

// Close stops listening, notifying and sweeping and closes the
// connections. Leases
// this instance holds expire as any other; later calls get
// relay.ErrQueueClosed.
func (q *Queue) Close() error {
	q.closed.Do(func() {
		close(q.closing)
		q.bg.Wait()
		q.pool.Close()
	})
	return nil
}

func (q *Queue) isClosed() bool {
	select {
	case <-q.closing:
		return true
	default:
		return false
	}
}

// bound limits a statement of the workers or the receiver to opTimeout.
func (q *Queue) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, opTimeout)
}

// fail is the error of a failed statement: relay.ErrQueueClosed once the
// queue closed under it, else the database's error, redacted.
func (q *Queue) fail(err error) error {
	switch {
	case err == nil:
		return nil
	case q.isClosed():
		return relay.ErrQueueClosed
	}
	return q.red.wrap(err)
}

// signal wakes one of this instance's idle leasers, for one item due now
// (or sooner than a leaser waits for): each wake-up costs a claim and,
// when it finds nothing, a second query, so waking every idle worker for
// each webhook, as a broadcast did, cost up to two queries per worker per
// event. signalAll wakes them all, for many items or an unknown number.
func (q *Queue) signal() { q.waiters.WakeOne() }

func (q *Queue) signalAll() { q.waiters.WakeAll() }
