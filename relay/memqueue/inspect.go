package memqueue

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hookmail/hookmail/relay"
)

// cursor names an item's place in its listing: due time and id for the
// waiting, id for the dead.
func cursor(it *relay.Item, dead bool) string {
	if dead {
		return it.Event.ID
	}
	return strconv.FormatInt(it.NextAttempt.UnixNano(), 10) + "|" + it.Event.ID
}

// List returns the page f asks for.
func (q *Queue) List(_ context.Context, f relay.Filter) (relay.Page, error) {
	s := q.s
	s.mu.Lock()
	defer s.mu.Unlock()
	dead := f.State == relay.StateDead
	src := s.waiting
	if dead {
		src = s.dead
	}
	var all []*relay.Item
	for _, it := range src {
		all = append(all, it)
	}
	slices.SortFunc(all, func(a, b *relay.Item) int {
		if dead {
			return cmp.Compare(a.Event.ID, b.Event.ID)
		}
		return cmp.Compare(cursor(a, false), cursor(b, false))
	})
	var page relay.Page
	now := q.now()
	for _, it := range all {
		if f.After != "" && !(cmpCursor(cursor(it, dead), f.After, dead) > 0) {
			continue
		}
		state := relay.StateWaiting
		if dead {
			state = relay.StateDead
		} else if l, ok := s.leases[it.Event.ID]; ok && now.Before(l.expires) {
			state = relay.StateDelivering
		}
		c := copyItem(it, state)
		if !f.Matches(&c) {
			continue
		}
		if f.Limit > 0 && len(page.Items) == f.Limit {
			page.Next = cursor(&page.Items[len(page.Items)-1], dead)
			break
		}
		page.Items = append(page.Items, c)
	}
	return page, nil
}

// cmpCursor orders two cursors as their listing does; waiting cursors
// compare by due time first (the same width of digits until 2286).
func cmpCursor(a, b string, dead bool) int {
	if dead {
		return cmp.Compare(a, b)
	}
	at, aid, _ := strings.Cut(a, "|")
	bt, bid, _ := strings.Cut(b, "|")
	an, _ := strconv.ParseInt(at, 10, 64)
	bn, _ := strconv.ParseInt(bt, 10, 64)
	return cmp.Or(cmp.Compare(an, bn), cmp.Compare(aid, bid))
}

// Get returns the waiting or dead item id.
func (q *Queue) Get(_ context.Context, id string) (*relay.Item, error) {
	s := q.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if it, ok := s.dead[id]; ok {
		c := copyItem(it, relay.StateDead)
		return &c, nil
	}
	it, ok := s.waiting[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", relay.ErrNotFound, id)
	}
	state := relay.StateWaiting
	if l, ok := s.leases[id]; ok && q.now().Before(l.expires) {
		state = relay.StateDelivering
	}
	c := copyItem(it, state)
	return &c, nil
}

// busy reports whether a lease holds id now; the caller holds s.mu.
func (q *Queue) busy(id string) bool {
	l, ok := q.s.leases[id]
	return ok && q.now().Before(l.expires)
}

// requeue makes it due now; the caller holds s.mu.
func (q *Queue) requeue(it *relay.Item, now time.Time) {
	if _, dead := q.s.dead[it.Event.ID]; dead {
		delete(q.s.dead, it.Event.ID)
		it.DeadReason, it.Died, it.Refused, it.LastError = "", time.Time{}, nil, ""
		q.s.waiting[it.Event.ID] = it
	}
	delete(q.s.leases, it.Event.ID) // an expired lease can no longer settle it
	it.NextAttempt, it.Requeued = now, now
	it.Record(now, "requeued by an operator")
}

// Requeue makes a waiting or dead item due now.
func (q *Queue) Requeue(_ context.Context, id string) error {
	s := q.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if q.busy(id) {
		return fmt.Errorf("%w (%s)", relay.ErrBusy, id)
	}
	it, ok := s.waiting[id]
	if !ok {
		it, ok = s.dead[id]
	}
	if !ok {
		return fmt.Errorf("%w: %s", relay.ErrNotFound, id)
	}
	q.requeue(it, q.now())
	s.signal()
	return nil
}

// RequeueDead makes every dead letter f selects due now.
func (q *Queue) RequeueDead(_ context.Context, f relay.Filter) (int, error) {
	f.State = relay.StateDead
	s := q.s
	s.mu.Lock()
	defer s.mu.Unlock()
	now, n := q.now(), 0
	for _, it := range s.dead {
		if f.Matches(it) {
			q.requeue(it, now)
			n++
		}
	}
	if n > 0 {
		s.signal()
	}
	return n, nil
}

// Drop deletes a waiting or dead item for good.
func (q *Queue) Drop(_ context.Context, id string) error {
	s := q.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if q.busy(id) {
		return fmt.Errorf("%w (%s)", relay.ErrBusy, id)
	}
	_, waiting := s.waiting[id]
	_, dead := s.dead[id]
	if !waiting && !dead {
		return fmt.Errorf("%w: %s", relay.ErrNotFound, id)
	}
	delete(s.waiting, id)
	delete(s.dead, id)
	delete(s.leases, id)
	return nil
}
