package memqueue

import (
	"context"
	"slices"
	"time"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

// Storm counts ev in its window of route's storm for conversation conv,
// under the store's lock. Windows ended StormKeep ago are deleted as it
// goes.
func (q *Queue) Storm(_ context.Context, route *config.Route, conv string, ev *relay.Event) (relay.StormCount, error) {
	if err := q.check(); err != nil {
		return relay.StormCount{}, err
	}
	s := q.s
	s.mu.Lock()
	defer s.mu.Unlock()
	now := q.now()
	for k, w := range s.storms {
		if now.After(w.expires) {
			delete(s.storms, k)
		}
	}
	return relay.CountStorm(&memStormTx{q: q, route: route, key: route.Name + "\x00" + conv, ev: ev}, route, conv, ev, now)
}

// memStorm is a stored storm window and when it may be deleted.
type memStorm struct {
	window  relay.StormWindow
	expires time.Time
}

// memStormTx is Storm's transaction: the caller holds the store's lock.
type memStormTx struct {
	q     *Queue
	route *config.Route
	key   string
	ev    *relay.Event
}

func (tx *memStormTx) Window() (relay.StormWindow, error) {
	w := tx.q.s.storms[tx.key].window
	w.Emailed = slices.Clone(w.Emailed)
	return w, nil
}

func (tx *memStormTx) SetWindow(w relay.StormWindow) error {
	tx.q.s.storms[tx.key] = memStorm{window: w, expires: w.Start.Add(tx.route.Storm.Window + relay.StormKeep)}
	return nil
}

func (tx *memStormTx) Collected(digest string) (bool, error) {
	_, ok := tx.q.s.digests[digest][tx.ev.ID]
	return ok, nil
}

func (tx *memStormTx) Collect(digest string) (bool, error) {
	if _, ok := tx.q.s.digests[digest][tx.ev.ID]; ok {
		return false, nil
	}
	tx.q.s.collect(tx.route, digest, tx.ev, tx.q.now())
	return true, nil
}
