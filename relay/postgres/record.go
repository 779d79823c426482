package postgres

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookmail/hookmail/relay"
)

// The statements below share these pieces. Every time the queue compares
// is the database's (see the schema), in Unix nanoseconds for due.
const (
	// nowNS is the statement's time in Unix nanoseconds, as due holds it.
	nowNS = "(extract(epoch FROM now()) * 1000000000)::bigint"
	// leased holds while a lease that has not lapsed holds the row.
	leased = "(lease_expires IS NOT NULL AND lease_expires > now())"
	// itemColumns are what scanItem reads.
	itemColumns = "id, type, source, format, data, content, received, priority, dead, due, attempts, last_error, delivered, refused, owed, history, requeued, dead_reason, died, " + leased
)

// micros is a statement's parameter $n, a number of microseconds, as an
// interval.
func micros(n int) string { return "($" + strconv.Itoa(n) + "::float8 * interval '1 microsecond')" }

// appendHistory is the row's history with the JSON array parameter $n
// added, keeping the last relay.MaxHistory entries, as relay.Item.Record
// does.
func appendHistory(n int) string {
	return fmt.Sprintf(`(SELECT coalesce(jsonb_agg(h ORDER BY i), '[]'::jsonb) FROM (
		SELECT h, i FROM jsonb_array_elements(hookmail_events.history || $%d::jsonb) WITH ORDINALITY AS a(h, i)
		ORDER BY i DESC LIMIT %d) AS kept)`, n, relay.MaxHistory)
}

// attemptRecord is a history entry as the history column holds it.
type attemptRecord struct {
	At   time.Time `json:"at"`
	What string    `json:"what"`
}

// historyJSON encodes entries for appendHistory: always an array.
func historyJSON(entries []relay.Attempt) string {
	recs := make([]attemptRecord, 0, len(entries))
	for _, a := range entries {
		recs = append(recs, attemptRecord{At: a.At, What: a.What})
	}
	return jsonText(recs)
}

// jsonText encodes v, a value of hookmail's own types that always encodes.
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic("postgres: " + err.Error())
	}
	return string(b)
}

// scanItem reads a row of itemColumns.
func scanItem(row pgx.Row) (*relay.Item, error) {
	var (
		it                                      relay.Item
		data, content, delivered, refused, owed []byte
		history                                 []byte
		dead, leasedNow                         bool
		due                                     int64
		priority                                int16
		requeued, died                          *time.Time
	)
	err := row.Scan(&it.Event.ID, &it.Event.Type, &it.Event.Source, &it.Event.Format, &data, &content, &it.Event.Received, &priority, &dead, &due,
		&it.Attempts, &it.LastError, &delivered, &refused, &owed, &history, &requeued, &it.DeadReason, &died, &leasedNow)
	if err != nil {
		return nil, err
	}
	it.Event.Priority = int(priority)
	if err := decodeContent(content, &it.Event); err != nil {
		return nil, err
	}
	var recs []attemptRecord
	for _, f := range []struct {
		raw []byte
		v   any
	}{{data, &it.Event.Data}, {delivered, &it.Delivered}, {refused, &it.Refused}, {owed, &it.Owed}, {history, &recs}} {
		if err := json.Unmarshal(f.raw, f.v); err != nil {
			return nil, fmt.Errorf("event %s does not decode: %w", it.Event.ID, err)
		}
	}
	for _, r := range recs {
		it.History = append(it.History, relay.Attempt{At: r.At, What: r.What})
	}
	it.NextAttempt = time.Unix(0, due)
	if requeued != nil {
		it.Requeued = *requeued
	}
	if died != nil {
		it.Died = *died
	}
	switch {
	case dead:
		it.State = relay.StateDead
	case leasedNow:
		it.State = relay.StateDelivering
	default:
		it.State = relay.StateWaiting
	}
	return &it, nil
}

// contentJSON is the content column's value for ev: NULL for zender, whose
// content is its data fields.
func contentJSON(ev *relay.Event) *string {
	c := ev.StoredContent()
	if c == nil {
		return nil
	}
	s := jsonText(c)
	return &s
}

// decodeContent reads a content column's value into ev.
func decodeContent(raw []byte, ev *relay.Event) error {
	if raw == nil {
		return nil
	}
	if err := json.Unmarshal(raw, &ev.Content); err != nil {
		return fmt.Errorf("event %s's content does not decode: %w", ev.ID, err)
	}
	return nil
}
