package relay

import (
	"errors"

	bolt "go.etcd.io/bbolt"
)

// update runs fn in a shared write transaction and returns once it is
// committed and fsynced. fn may run more than once, so it must not have
// side effects outside tx.
func (s *Spool) update(fn func(*bolt.Tx) error) error {
	op := writeOp{fn: fn, done: make(chan error, 1)}
	select {
	case s.writes <- op:
	case <-s.closing:
		return ErrQueueClosed
	}
	// The committer has the op; wait for its outcome even if the caller's
	// context ends, since returning early could report a stored event as lost.
	return <-op.done
}

func (s *Spool) commitLoop() {
	defer close(s.loopDone)
	for {
		var first writeOp
		select {
		case first = <-s.writes:
		case <-s.closing:
			return
		}
		batch := []writeOp{first}
	drain:
		for len(batch) < maxBatch {
			select {
			case op := <-s.writes:
				batch = append(batch, op)
			default:
				break drain
			}
		}
		s.commit(batch)
	}
}

// errOpFailed marks a batch whose own functions failed, not its commit.
var errOpFailed = errors.New("an operation in the batch failed")

func (s *Spool) commit(batch []writeOp) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, op := range batch {
			if err := op.fn(tx); err != nil {
				return errOpFailed
			}
		}
		return nil
	})
	if errors.Is(err, errOpFailed) {
		// One op failed: run each alone so the others still commit.
		for _, op := range batch {
			err := s.db.Update(op.fn)
			if err != nil && !errors.Is(err, errOpFailed) && s.writeErr.Load() == nil {
				// Whether this failure is the op's or the disk's, Ready's
				// probe tells: it clears the error once a write commits.
				s.writeErr.Store(&err)
			}
			op.done <- err
		}
		return
	}
	if err != nil {
		s.writeErr.Store(&err)
	} else if s.writeErr.Load() != nil {
		s.writeErr.Store(nil)
	}
	for _, op := range batch {
		op.done <- err
	}
}
