package relay

import (
	"cmp"
	"context"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Acks are batched apart from other writes: a worker does not wait for its
// ack, so an ack can linger up to ackLinger for others to join it. One
// commit then removes many delivered items, whose records sit next to each
// other (ids are time-ordered), instead of one commit and one fsync each.
// An ack lost in a crash is an email sent again, so the linger stays short.
const (
	ackLinger   = 2 * time.Millisecond
	ackBatchMax = 512
)

type ackReq struct {
	it   *Item
	done chan error
}

// Ack removes a delivered item. It returns once the removal is committed.
func (s *Spool) Ack(_ context.Context, it *Item) error {
	req := ackReq{it: it, done: make(chan error, 1)}
	select {
	case s.acks <- req:
	case <-s.closing:
		return ErrQueueClosed
	}
	return <-req.done
}

// ackLoop gathers acks for up to ackLinger and removes them in one commit.
func (s *Spool) ackLoop() {
	for {
		var first ackReq
		select {
		case first = <-s.acks:
		case <-s.closing:
			return
		}
		batch := []ackReq{first}
		linger := time.NewTimer(ackLinger)
	gather:
		for len(batch) < ackBatchMax {
			select {
			case req := <-s.acks:
				batch = append(batch, req)
			case <-linger.C:
				break gather
			}
		}
		linger.Stop()
		s.ackBatch(batch)
	}
}

// ackBatch removes batch's items in one commit. An item that is no longer
// waiting (dropped by an operator meanwhile) fails alone; the others are
// removed.
func (s *Spool) ackBatch(batch []ackReq) {
	freed := make([]int, len(batch))
	missing := make([]error, len(batch))
	err := s.update(func(tx *bolt.Tx) error {
		for i, req := range batch {
			var err error
			_, freed[i], err = removeItem(tx, req.it.Event.ID)
			missing[i] = nil
			switch {
			case errors.Is(err, ErrNotFound):
				missing[i] = err
			case err != nil:
				return err
			}
		}
		return nil
	})
	for i, req := range batch {
		e := cmp.Or(err, missing[i])
		if e == nil {
			s.depth.Add(-1)
			s.bytes.Add(-int64(freed[i]))
			s.counts.add(req.it.Event.Type, -1, 0)
		}
		req.done <- s.settled(req.it.Event.ID, e)
	}
}
