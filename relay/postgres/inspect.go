package postgres

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookmail/hookmail/relay"
)

// List pages waiting (and delivering) items in due order, or dead letters
// in id order, which is the order they were received. The cursor is the
// last listed item's key in that order, so items coming and going between
// pages neither repeat nor skip the others. The type is filtered in SQL;
// the other filters (source, text, route: the route is the rules' to
// decide) in Go, reading on in batches until the page is full.
func (q *Queue) List(ctx context.Context, f relay.Filter) (relay.Page, error) {
	dead := f.State == relay.StateDead
	afterDue, afterID, err := decodeCursor(f.After, dead)
	if err != nil {
		return relay.Page{}, err
	}
	var batch *int
	if f.Limit > 0 {
		n := f.Limit + 1 // one more tells whether there is a next page
		if !f.KeepsAll() {
			n = max(n, q.opts.listBatch)
		}
		batch = &n
	}
	var page relay.Page
	for {
		items, err := q.listRows(ctx, f.Type, dead, batch, afterDue, afterID)
		if err != nil {
			return relay.Page{}, err
		}
		for _, it := range items {
			afterDue, afterID = it.NextAttempt.UnixNano(), it.Event.ID
			if !f.Matches(&it) {
				continue
			}
			if f.Limit > 0 && len(page.Items) == f.Limit {
				page.Next = encodeCursor(page.Items[f.Limit-1], dead)
				return page, nil
			}
			page.Items = append(page.Items, it)
		}
		if batch == nil || len(items) < *batch {
			return page, nil
		}
	}
}

// defaultListBatch is how many rows List reads at a time when it filters
// in Go.
const defaultListBatch = 200

// listRows reads up to limit (nil: every) items of a listing after the
// given place in it, of typ when set.
func (q *Queue) listRows(ctx context.Context, typ string, dead bool, limit *int, afterDue int64, afterID string) ([]relay.Item, error) {
	sql, args := `SELECT `+itemColumns+` FROM hookmail_events
		WHERE NOT dead AND ($1 = '' OR type = $1) AND (due, id) > ($3, $4)
		ORDER BY due, id LIMIT $2::bigint`, []any{typ, limit, afterDue, afterID}
	if dead {
		sql, args = `SELECT `+itemColumns+` FROM hookmail_events
		WHERE dead AND ($1 = '' OR type = $1) AND id > $3
		ORDER BY id LIMIT $2::bigint`, []any{typ, limit, afterID}
	}
	rows, err := q.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, q.fail(err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (relay.Item, error) {
		it, err := scanItem(r)
		if err != nil {
			return relay.Item{}, err
		}
		return *it, nil
	})
	return items, q.fail(err)
}

// encodeCursor names an item's place in its listing: "w" due "/" id for the
// waiting items, "d" id for the dead letters.
func encodeCursor(it relay.Item, dead bool) string {
	c := "w" + strconv.FormatInt(it.NextAttempt.UnixNano(), 10) + "/" + it.Event.ID
	if dead {
		c = "d" + it.Event.ID
	}
	return base64.RawURLEncoding.EncodeToString([]byte(c))
}

// decodeCursor reads a cursor of the listing; "" starts before the first
// item.
func decodeCursor(c string, dead bool) (int64, string, error) {
	if c == "" {
		return math.MinInt64, "", nil
	}
	bad := fmt.Errorf("postgres: the cursor %q is not one a listing of these items gave", c)
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(raw) == 0 {
		return 0, "", bad
	}
	s := string(raw)
	if dead {
		if id, ok := strings.CutPrefix(s, "d"); ok {
			return math.MinInt64, id, nil
		}
		return 0, "", bad
	}
	due, id, ok := strings.Cut(strings.TrimPrefix(s, "w"), "/")
	n, err := strconv.ParseInt(due, 10, 64)
	if !ok || err != nil || s[0] != 'w' {
		return 0, "", bad
	}
	return n, id, nil
}

// Get returns the item id, waiting, delivering or dead.
func (q *Queue) Get(ctx context.Context, id string) (*relay.Item, error) {
	it, err := scanItem(q.pool.QueryRow(ctx, `SELECT `+itemColumns+` FROM hookmail_events WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", relay.ErrNotFound, id)
	}
	return it, q.fail(err)
}

// requeueSet makes an item due now with a fresh retry.lifetime, and ends
// any lease on it, so a worker whose lease lapsed cannot settle it after.
// A dead letter's refusing routes are tried again (the operator fixed
// them); routes that got it keep it. $1 is the time requeued, $2 the
// history entry.
var requeueSet = `due = ` + nowNS + `, requeued = $1,
	refused = CASE WHEN dead THEN '{}'::jsonb ELSE refused END,
	last_error = CASE WHEN dead THEN '' ELSE last_error END,
	dead = false, dead_reason = '', died = NULL,
	history = ` + appendHistory(2) + `, lease_token = NULL, lease_expires = NULL`

func requeueArgs() []any {
	now := time.Now()
	return []any{now, historyJSON([]relay.Attempt{{At: now, What: "requeued by an operator"}})}
}

// Requeue makes a waiting or dead item due now, unless a worker's lease
// holds it (relay.ErrBusy).
func (q *Queue) Requeue(ctx context.Context, id string) error {
	tag, err := q.pool.Exec(ctx, `UPDATE hookmail_events SET `+requeueSet+` WHERE id = $3 AND NOT `+leased,
		append(requeueArgs(), id)...)
	if err != nil {
		return q.fail(err)
	}
	if tag.RowsAffected() == 0 {
		return q.missing(ctx, id)
	}
	q.requeued()
	return nil
}

// defaultRequeuePage is how many dead letters a filtered RequeueDead
// reads and requeues at a time.
const defaultRequeuePage = 1000

// RequeueDead makes every dead letter f selects due now. A filter beyond
// the type is applied in Go, to the dead letters List reads a page at a
// time, so a million dead letters are never held at once. Dead letters
// list in id order, so each page starts after the last of the one before
// and none is read twice.
func (q *Queue) RequeueDead(ctx context.Context, f relay.Filter) (int, error) {
	f.State, f.Limit, f.After = relay.StateDead, q.opts.requeuePage, ""
	if f.KeepsAll() {
		return q.requeueDead(ctx, "dead", nil)
	}
	n := 0
	for {
		page, err := q.List(ctx, f)
		if err != nil {
			return n, err
		}
		if q.opts.onRequeuePage != nil {
			q.opts.onRequeuePage(len(page.Items))
		}
		ids := make([]string, len(page.Items))
		for i, it := range page.Items {
			ids[i] = it.Event.ID
		}
		if len(ids) > 0 {
			m, err := q.requeueDead(ctx, `dead AND id = ANY($3)`, ids)
			if n += m; err != nil {
				return n, err
			}
		}
		if page.Next == "" {
			return n, nil
		}
		f.After = page.Next
	}
}

// requeueDead makes the dead letters where selects due now; its $3, if
// any, is arg.
func (q *Queue) requeueDead(ctx context.Context, where string, arg any) (int, error) {
	args := requeueArgs()
	if arg != nil {
		args = append(args, arg)
	}
	tag, err := q.pool.Exec(ctx, `UPDATE hookmail_events SET `+requeueSet+` WHERE `+where, args...)
	if err != nil {
		return 0, q.fail(err)
	}
	if tag.RowsAffected() > 0 {
		q.requeued()
	}
	return int(tag.RowsAffected()), nil
}

// requeued wakes the leasers of every instance, and has the next
// maxEvents check count again.
func (q *Queue) requeued() {
	q.recount()
	q.signalAll()
	q.announce() // only a hint: the others poll too
}

// Drop deletes a waiting or dead item for good, unless a worker's lease
// holds it (relay.ErrBusy): the check and the delete are one statement,
// so no worker takes the item in between and sends an email the operator
// was told was dropped.
func (q *Queue) Drop(ctx context.Context, id string) error {
	tag, err := q.pool.Exec(ctx, `DELETE FROM hookmail_events WHERE id = $1 AND NOT `+leased, id)
	if err != nil {
		return q.fail(err)
	}
	if tag.RowsAffected() == 0 {
		return q.missing(ctx, id)
	}
	q.recount()
	return nil
}

// missing says why an operator's change found no item to change: a lease
// holds it, or there is none.
func (q *Queue) missing(ctx context.Context, id string) error {
	var busy bool
	err := q.pool.QueryRow(ctx, `SELECT `+leased+` FROM hookmail_events WHERE id = $1`, id).Scan(&busy)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%w: %s", relay.ErrNotFound, id)
	case err != nil:
		return q.fail(err)
	case busy:
		return fmt.Errorf("%w (%s)", relay.ErrBusy, id)
	}
	return fmt.Errorf("%w (%s)", relay.ErrBusy, id) // its lease lapsed just now: try again
}
