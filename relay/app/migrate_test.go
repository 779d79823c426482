package app

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/postgres"
	"github.com/hookmail/hookmail/relay/spool"
)

// migrationSpool fills the spool in cfg's spool.dir as a stopped
// hookmail leaves it: more waiting events than one import batch holds, one
// of them retried (attempts, routes served and refused, recipients owed,
// history, a later next attempt), two dead letters, a dedup key for each
// event, and two digest routes' collected events. It returns every item
// and digest entry as the spool holds them, and each dedup key's event.
func migrationSpool(t *testing.T, cfg *config.Config) (items map[string]*relay.Item, digests map[string][]relay.DigestEntry, keys map[string]string) {
	t.Helper()
	ctx := t.Context()
	s, err := spool.Open(cfg.Spool.Dir, spool.WithDedupWindow(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	keys = map[string]string{}
	var wg sync.WaitGroup
	errs := make(chan error, 600)
	for i := range 600 {
		ev := &relay.Event{ID: fmt.Sprintf("01900000-0000-7000-8000-%012d", i), Source: "gateway", Type: "sms",
			Data:     map[string]string{"id": fmt.Sprint(i), "phone": "+15550001111", "message": fmt.Sprintf("event %d", i)},
			Received: time.Now(), DedupKey: fmt.Sprintf("dedup-key-%d", i)}
		if i%3 == 0 { // another gateway's, whose content is stored apart from its fields
			ev.Source, ev.Format, ev.Type = "android", relay.FormatSMSGate, relay.TypeMMS
			ev.Content = relay.Content{From: "+15550001111", To: "sim1", Text: fmt.Sprintf("event %d", i), MessageID: fmt.Sprint(i),
				Sent: time.Unix(1700000000, 0).UTC(), Attachments: []relay.Attachment{{Name: "a.png", ContentType: "image/png", Size: 3, Data: []byte{1, 2, 3}}}}
		}
		if i%5 == 0 { // some of a route with a priority, which Postgres keeps too
			ev.Priority = 1 + i%9
		}
		keys[ev.DedupKey] = ev.ID
		wg.Go(func() { errs <- s.Enqueue(ctx, ev) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	l, err := s.Lease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Retry(ctx, l, now.Add(time.Hour), relay.Progress{Attempts: 2, Delivered: []string{"ops"},
		Refused: map[string]string{"legal": "550 5.1.1 no such user"}, Owed: map[string][]string{"sales": {"late@example.com"}},
		LastError: "451 4.7.1 try later", History: []relay.Attempt{{At: now, What: "attempt 2 failed: 451 4.7.1 try later"}}}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		l, err := s.Lease(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Bury(ctx, l, "permanent error: 550 5.1.1 no such user", relay.Progress{Attempts: 1, LastError: "550 5.1.1 no such user"}); err != nil {
			t.Fatal(err)
		}
	}
	routes := []*config.Route{
		{Name: "daily", To: []string{"ops@example.com"}, Cc: []string{"cc@example.com"}, Bcc: []string{"bcc@example.com"}, ReplyTo: "desk@example.com"},
		{Name: "weekly", To: []string{"boss@example.com"}},
	}
	for i, rt := range routes {
		for j := range 2 {
			ev := &relay.Event{ID: fmt.Sprintf("01900000-0000-7000-9000-%012d", 10*i+j), Source: "gateway", Type: "whatsapp",
				Data: map[string]string{"message": "collected"}, Received: time.Now()}
			if j == 1 {
				ev.Source, ev.Format, ev.Type = "twilio", relay.FormatTwilio, relay.TypeSMS
				ev.Content = relay.Content{From: "+15550002222", Text: "collected", MessageID: "SM1"}
			}
			if err := s.Collect(ctx, rt, ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	items = map[string]*relay.Item{}
	for _, state := range []relay.State{relay.StateWaiting, relay.StateDead} {
		page, err := s.List(ctx, relay.Filter{State: state})
		if err != nil {
			t.Fatal(err)
		}
		for i := range page.Items {
			items[page.Items[i].Event.ID] = &page.Items[i]
		}
	}
	digests = map[string][]relay.DigestEntry{}
	for _, rt := range routes {
		if digests[rt.Name], _, err = s.Digest(ctx, rt.Name, 0); err != nil {
			t.Fatal(err)
		}
	}
	return items, digests, keys
}

// stored is an item or digest entry's times as Postgres keeps them: to the
// microsecond, in UTC.
func stored(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Microsecond)
}

func storedItem(it relay.Item) relay.Item {
	it.Event.Received, it.NextAttempt, it.Died, it.Requeued = stored(it.Event.Received), it.NextAttempt.UTC(), stored(it.Died), stored(it.Requeued)
	it.History = append([]relay.Attempt(nil), it.History...)
	for i := range it.History {
		it.History[i].At = stored(it.History[i].At)
	}
	return it
}

// storedEntry is e as Postgres keeps it; an empty address list is one
// whether the backend reads it back as nil or as empty.
func storedEntry(e relay.DigestEntry) relay.DigestEntry {
	e.Event.Received, e.Collected = stored(e.Event.Received), stored(e.Collected)
	for _, list := range []*[]string{&e.To, &e.Cc, &e.Bcc} {
		if len(*list) == 0 {
			*list = nil
		}
	}
	return e
}

// TestMigrateSpoolToPostgres: a stopped spool's waiting events (with their
// progress), dead letters, dedup keys and collected digests all arrive in
// Postgres with the same fields, its dedup keys still dedup there, and a
// second migration moves nothing and doubles nothing. The spool file is
// left as it was.
func TestMigrateSpoolToPostgres(t *testing.T) {
	cfg := postgresConfig(t)
	cfg.Queue.Backend = config.BackendSpool // migrate reads queue.postgres.url whatever the backend
	items, digests, keys := migrationSpool(t, cfg)
	spoolFile := filepath.Join(cfg.Spool.Dir, spool.File)
	before, _ := os.ReadFile(spoolFile)

	migrate := func() relay.MigrationProgress {
		t.Helper()
		m, err := OpenMigration(t.Context(), cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		p, err := relay.Migrate(t.Context(), m.Source, m.Target, func(relay.MigrationProgress) {})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := migrate()
	want := relay.MigrationCounts{Waiting: 598, Dead: 2, DedupKeys: 600, DigestEntries: 4}
	if p.Total != want || p.Moved != want || p.There() != (relay.MigrationCounts{}) {
		t.Fatalf("first migration %+v, want all of %+v moved", p, want)
	}

	q, err := postgres.Open(t.Context(), cfg.Queue.Postgres.URL.Reveal(), postgres.WithDedupWindow(time.Hour), postgres.MustExist())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	retried := 0
	for id, it := range items {
		got, err := q.Get(t.Context(), id)
		if err != nil {
			t.Fatalf("%s (%s) did not arrive: %v", id, it.State, err)
		}
		if g, w := storedItem(*got), storedItem(*it); !reflect.DeepEqual(g, w) {
			t.Errorf("%s arrived as\n%+v\nwant\n%+v", id, g, w)
		}
		if it.Attempts == 2 {
			retried++
		}
	}
	if retried != 1 {
		t.Errorf("%d retried items, want 1", retried)
	}
	for route, entries := range digests {
		got, n, err := q.Digest(t.Context(), route, 0)
		if err != nil || n != len(entries) {
			t.Fatalf("digest %s: %d entries, %v; want %d", route, n, err, len(entries))
		}
		for i := range entries {
			if g, w := storedEntry(got[i]), storedEntry(entries[i]); !reflect.DeepEqual(g, w) {
				t.Errorf("digest %s entry %d arrived as\n%+v\nwant\n%+v", route, i, g, w)
			}
		}
	}
	for _, key := range []string{"dedup-key-0", "dedup-key-599"} {
		again := &relay.Event{ID: "a-repeat-of-" + key, Source: "gateway", Type: "sms", Received: time.Now(), DedupKey: key}
		var dup *relay.DuplicateError
		if err := q.Enqueue(t.Context(), again); !errors.As(err, &dup) || dup.ID != keys[key] {
			t.Errorf("a repeat of %s in Postgres: %v, want a duplicate of %s", key, err, keys[key])
		}
	}
	st1, err := q.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	p = migrate()
	if p.Moved != (relay.MigrationCounts{}) || p.There() != want {
		t.Errorf("second migration %+v, there %+v; want nothing moved, all of %+v there", p, p.There(), want)
	}
	st2, err := q.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st2.Depth != st1.Depth || st2.Dead != st1.Dead || st2.Depth != 598 || st2.Dead != 2 {
		t.Errorf("after the second migration %d waiting, %d dead; want 598 and 2, as after the first", st2.Depth, st2.Dead)
	}
	for route, entries := range digests {
		if _, n, _ := q.Digest(t.Context(), route, 0); n != len(entries) {
			t.Errorf("digest %s holds %d entries after the second migration, want %d", route, n, len(entries))
		}
	}
	if after, _ := os.ReadFile(spoolFile); !bytes.Equal(before, after) {
		t.Error("the migrations changed the spool file")
	}
}

// TestMigrationNamesWhatToFix: no database URL, no spool, and a spool a
// running hookmail holds each fail naming the key or the step that fixes
// it.
func TestMigrationNamesWhatToFix(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	cfg := testConfig(t)
	if _, err := OpenMigration(t.Context(), cfg, log); err == nil || !strings.HasPrefix(err.Error(), "queue.postgres.url: is empty") {
		t.Errorf("no URL: %v", err)
	}
	cfg.Queue.Postgres.URL = "postgres://hookmail:hunter2@127.0.0.1:1/hookmail"
	if _, err := OpenMigration(t.Context(), cfg, log); err == nil || !strings.Contains(err.Error(), "no spool to migrate") || !strings.Contains(err.Error(), "--config") {
		t.Errorf("no spool: %v", err)
	}
	s, err := spool.Open(cfg.Spool.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := OpenMigration(t.Context(), cfg, log); !errors.Is(err, spool.ErrInUse) || !strings.Contains(err.Error(), "stop hookmail first") {
		t.Errorf("a running spool: %v", err)
	}
}
