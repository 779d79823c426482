package relay

import (
	"context"
	"fmt"
	"time"
)

// Exporter is a queue backend that can hand over everything it holds, so
// `hookmail queue migrate` can move it to another backend and switching
// backends loses nothing. It walks a backend nobody uses at the time (a
// stopped spool): no item is leased, and nothing changes under the walk.
type Exporter interface {
	// Count says how many records of each kind the Export methods will
	// hand over, so progress can say how far along it is.
	Count(ctx context.Context) (MigrationCounts, error)
	// ExportItems hands f every item in state (StateWaiting or
	// StateDead), with its progress (attempts, history, next attempt) or
	// its burial, and State set. It stops at f's first error and returns
	// it.
	ExportItems(ctx context.Context, state State, f func(*Item) error) error
	// ExportDedupKeys hands f every dedup key whose window has not passed.
	ExportDedupKeys(ctx context.Context, f func(*DedupRecord) error) error
	// ExportDigests hands f every event a digest route collected.
	ExportDigests(ctx context.Context, f func(*DigestRecord) error) error
}

// Importer is a queue backend that takes an Exporter's records. Each
// Import stores its records in one transaction, and stores a record only
// when the backend holds none under its key (an item's event id, a dedup
// key, a digest route and event id): a migration run again, or resumed
// after a failure, moves nothing twice. Each returns how many it stored.
type Importer interface {
	ImportItems(ctx context.Context, items []Item) (int, error)
	ImportDedupKeys(ctx context.Context, keys []DedupRecord) (int, error)
	ImportDigests(ctx context.Context, entries []DigestRecord) (int, error)
}

// DedupRecord is a dedup key as a backend stores it.
type DedupRecord struct {
	// Hash is the key's DedupHash; the key itself is never stored.
	Hash DedupHash
	// Event is the id of the event first stored with the key.
	Event string
	// Expires is when the key's dedup window ends.
	Expires time.Time
}

// DigestRecord is one event a digest route collected.
type DigestRecord struct {
	Route string
	Entry DigestEntry
}

// MigrationCounts counts records by kind.
type MigrationCounts struct {
	Waiting, Dead, DedupKeys, DigestEntries int
}

// MigrationProgress is how far a migration has come.
type MigrationProgress struct {
	// Total is what the source holds, Read what has been read from it so
	// far, Moved what of that the target stored.
	Total, Read, Moved MigrationCounts
	// Kind is the kind being moved now; "" once every kind is done.
	Kind MigrationKind
}

// MigrationKind names a kind of record Migrate moves, for output.
type MigrationKind string

// The kinds of record, in the order Migrate moves them.
const (
	KindWaiting       MigrationKind = "waiting events"
	KindDead          MigrationKind = "dead letters"
	KindDedupKeys     MigrationKind = "dedup keys"
	KindDigestEntries MigrationKind = "digest entries"
)

// Of is c's count of kind.
func (c MigrationCounts) Of(kind MigrationKind) int {
	switch kind {
	case KindWaiting:
		return c.Waiting
	case KindDead:
		return c.Dead
	case KindDedupKeys:
		return c.DedupKeys
	case KindDigestEntries:
		return c.DigestEntries
	}
	return 0
}

// There counts the records read that the target held already.
func (p MigrationProgress) There() MigrationCounts {
	return MigrationCounts{
		Waiting: p.Read.Waiting - p.Moved.Waiting, Dead: p.Read.Dead - p.Moved.Dead,
		DedupKeys: p.Read.DedupKeys - p.Moved.DedupKeys, DigestEntries: p.Read.DigestEntries - p.Moved.DigestEntries,
	}
}

// migrateBatch is how many records each Import stores in one transaction:
// few enough that a transaction stays short, enough that a large queue
// takes few round trips.
const migrateBatch = 500

// Migrate copies everything the source holds into the target, kind by
// kind: waiting events, dead letters, dedup keys, then digest entries, in
// batches of migrateBatch. It calls progress as each kind starts and after
// each batch. It changes nothing in the source. Records the target holds
// already are counted as there and not stored again, so Migrate may be run
// again after a failure or an interruption, and moves only what it had not
// moved yet. On an error the progress returned says what was moved before
// it.
func Migrate(ctx context.Context, from Exporter, to Importer, progress func(MigrationProgress)) (MigrationProgress, error) {
	m := &migration{ctx: ctx, progress: progress}
	total, err := from.Count(ctx)
	if err != nil {
		return m.p, err
	}
	m.p.Total = total
	items := func(state State) func(context.Context, func(*Item) error) error {
		return func(ctx context.Context, f func(*Item) error) error { return from.ExportItems(ctx, state, f) }
	}
	read, moved := &m.p.Read, &m.p.Moved
	for _, step := range []func() error{
		func() error {
			return move(m, KindWaiting, &read.Waiting, &moved.Waiting, items(StateWaiting), to.ImportItems)
		},
		func() error {
			return move(m, KindDead, &read.Dead, &moved.Dead, items(StateDead), to.ImportItems)
		},
		func() error {
			return move(m, KindDedupKeys, &read.DedupKeys, &moved.DedupKeys, from.ExportDedupKeys, to.ImportDedupKeys)
		},
		func() error {
			return move(m, KindDigestEntries, &read.DigestEntries, &moved.DigestEntries, from.ExportDigests, to.ImportDigests)
		},
	} {
		if err := step(); err != nil {
			return m.p, err
		}
	}
	m.p.Kind = ""
	return m.p, nil
}

// migration is a Migrate in progress.
type migration struct {
	ctx      context.Context
	p        MigrationProgress
	progress func(MigrationProgress)
}

// move reads every record of one kind that export hands over and stores
// them with store, migrateBatch at a time, counting them in read and
// moved.
func move[R any](m *migration, kind MigrationKind, read, moved *int,
	export func(context.Context, func(*R) error) error, store func(context.Context, []R) (int, error)) error {
	m.p.Kind = kind
	m.progress(m.p)
	batch := make([]R, 0, migrateBatch)
	flush := func() error {
		if err := m.ctx.Err(); err != nil {
			return err
		}
		n, err := store(m.ctx, batch)
		if err != nil {
			return err
		}
		*read += len(batch)
		*moved += n
		batch = batch[:0]
		m.progress(m.p)
		return nil
	}
	err := export(m.ctx, func(r *R) error {
		if batch = append(batch, *r); len(batch) == migrateBatch {
			return flush()
		}
		return nil
	})
	if err == nil && len(batch) > 0 {
		err = flush()
	}
	if err != nil {
		return fmt.Errorf("moving the %s: %w", kind, err)
	}
	return nil
}
