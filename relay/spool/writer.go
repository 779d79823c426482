package spool

import (
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hookmail/hookmail/relay"
)

// maxBatch bounds one group commit, so one transaction stays small.
const maxBatch = 1024

// Acks linger up to ackLinger for other writes to join them: a worker does
// not wait for its ack, so one commit can remove many delivered items,
// whose records sit next to each other (ids are time-ordered), instead of
// one commit and one fsync each. Any other write ends the linger at once.
// An ack lost in a crash is an email sent again, so the linger stays short
// and at most maxAcksInFlight acks wait at a time.
const (
	ackLinger       = 2 * time.Millisecond
	maxAcksInFlight = 256
)

// commitAcksLeft commits every ack left in one batch: this does not
// compile should maxAcksInFlight outgrow maxBatch.
const _ = uint(maxBatch - maxAcksInFlight)

// writeOp is one write for the writer: fn runs in the shared transaction
// and adds what it changes in the counts to the commit's tally, then done
// (when set) gets the outcome, and after (when set) runs with it in the
// writer's goroutine.
type writeOp struct {
	fn     func(*bolt.Tx, tally) error
	done   chan error
	after  func(error)
	linger bool
}

// update runs fn in a shared write transaction and returns once it is
// committed and fsynced. fn may run more than once, so it must not have
// side effects outside tx.
func (s *Spool) update(fn func(*bolt.Tx) error) error {
	return s.updateCounted(func(tx *bolt.Tx, _ tally) error { return fn(tx) })
}

// updateCounted is update for a write that changes the counts: fn adds
// its changes to the tally (and, run again, adds them again to a fresh
// one).
func (s *Spool) updateCounted(fn func(*bolt.Tx, tally) error) error {
	op := writeOp{fn: fn, done: make(chan error, 1)}
	if err := s.submit(op); err != nil {
		return err
	}
	// The writer has the op; wait for its outcome even if the caller's
	// context ends, since returning early could report a stored event as lost.
	return <-op.done
}

func (s *Spool) submit(op writeOp) error {
	select {
	case s.writes <- op:
		return nil
	case <-s.closing:
		return relay.ErrQueueClosed
	}
}

// writeLoop commits the writes as they come, in batches, until the spool
// closes; then it commits what was handed to it and stops.
func (s *Spool) writeLoop() {
	defer close(s.loopDone)
	for {
		var first writeOp
		select {
		case first = <-s.writes:
		case first = <-s.acks:
		case <-s.closing:
			s.commitAcksLeft()
			return
		}
		batch := []writeOp{first}
		var linger <-chan time.Time
		var timer *time.Timer
		if first.linger {
			timer = time.NewTimer(ackLinger)
			linger = timer.C
		}
	gather:
		for len(batch) < maxBatch {
			if linger == nil {
				select {
				case op := <-s.writes:
					batch = append(batch, op)
				case op := <-s.acks:
					batch = append(batch, op)
				default:
					break gather
				}
				continue
			}
			select {
			case op := <-s.writes:
				batch = append(batch, op)
				if !op.linger {
					linger = nil // someone waits: commit what is there now
				}
			case op := <-s.acks:
				batch = append(batch, op)
			case <-linger:
				break gather
			}
		}
		if timer != nil {
			timer.Stop()
		}
		s.commit(batch)
	}
}

// commitAcksLeft commits the acks handed over before the spool closed,
// and those still on their way: an Ack that found the spool open holds an
// ack slot until its op is in the buffer, and its op's after gives it
// back once committed, so no slot taken means no ack left behind.
func (s *Spool) commitAcksLeft() {
	for {
		var left []writeOp
	drain:
		for {
			select {
			case op := <-s.acks:
				left = append(left, op)
			default:
				break drain
			}
		}
		if len(left) > 0 {
			s.commit(left) // at most maxAcksInFlight, within maxBatch
		}
		if len(s.ackSlots) == 0 {
			return
		}
		time.Sleep(time.Millisecond) // an Ack between its check and its send
	}
}

// errOpFailed marks a batch whose own functions failed, not its commit.
var errOpFailed = errors.New("an operation in the batch failed")

func (s *Spool) commit(batch []writeOp) {
	err := s.apply(batch)
	if errors.Is(err, errOpFailed) {
		// One op failed: run each alone so the others still commit.
		for _, op := range batch {
			err := s.apply([]writeOp{op})
			if be, ok := errors.AsType[*batchError](err); ok {
				err = be.err
			}
			var own *opFailure
			if err != nil && !errors.As(err, &own) && s.writeErr.Load() == nil {
				// Not the op's own failure: maybe the disk's. Ready's probe
				// tells; it clears the error once a write commits.
				s.writeErr.Store(&err)
			}
			s.finish(op, err)
		}
		return
	}
	if err != nil {
		s.writeErr.Store(&err)
	} else if s.writeErr.Load() != nil {
		s.writeErr.Store(nil)
	}
	for _, op := range batch {
		s.finish(op, err)
	}
}

// apply runs ops in one transaction with the counts they change, and once
// it is committed, takes those counts and the pages in use. When an op
// fails, the transaction is rolled back and the error is a *batchError
// holding the op's own.
func (s *Spool) apply(ops []writeOp) (err error) {
	t := tally{}
	defer func() {
		if _, ok := errors.AsType[*writePanic](err); ok {
			s.sawDamage.Store(true)
		}
	}()
	err = update(s.db, s.path, func(tx *bolt.Tx) error {
		fill(tx)
		for _, op := range ops {
			if err := op.fn(tx, t); err != nil {
				return &batchError{err}
			}
		}
		return s.storeTally(tx, t)
	})
	if err != nil {
		return err
	}
	for typ, d := range t {
		s.counts.add(typ, d)
		s.depth.Add(int64(d.Waiting))
		s.dead.Add(int64(d.Dead))
	}
	s.measure()
	return nil
}

// update is bbolt's DB.Update, but for a damaged page. bbolt panics on a
// damaged page it reads, and Update's rollback after a panic reads every
// page of the file to rebuild the list of free pages, which the spool does
// not keep on disk: in a goroutine of its own, where the damaged page
// panics again, out of reach of recover, and ends the process. Here the
// panic becomes an error naming the file, and the transaction is rolled
// back as after any error, reading nothing.
func update(db *bolt.DB, path string, fn func(*bolt.Tx) error) (err error) {
	tx, err := db.Begin(true)
	if err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			err = &writePanic{damaged(path, p)}
		}
		if err != nil {
			_ = tx.Rollback() // after a failed Commit, already rolled back
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// writePanic is a write transaction that met a damaged page. If that was
// in its commit, pages it had taken from the free list are not given back
// by the rollback, so Close must not write that list into the file (see
// Spool.Close).
type writePanic struct{ err error }

func (e *writePanic) Error() string { return e.err.Error() }
func (e *writePanic) Unwrap() error { return e.err }

// batchError is an op's own error, which rolled its transaction back.
type batchError struct{ err error }

func (e *batchError) Error() string        { return e.err.Error() }
func (e *batchError) Unwrap() error        { return e.err }
func (e *batchError) Is(target error) bool { return target == errOpFailed }

func (s *Spool) finish(op writeOp, err error) {
	if op.after != nil {
		op.after(err)
	}
	if op.done != nil {
		op.done <- err
	}
}
