package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/postgres"
	"github.com/hookmail/hookmail/relay/postgres/pgtest"
)

func testEvent(i int) *relay.Event {
	return &relay.Event{
		ID: fmt.Sprintf("01900000-0000-7000-8000-%012d", i), Source: "gateway", Type: "sms",
		Data: map[string]string{"message": fmt.Sprintf("event %d", i)}, Received: time.Now(),
	}
}

// within runs f with a context of 5 s and fails the test unless it
// returns an error within limit.
func within(t *testing.T, what string, limit time.Duration, f func(ctx context.Context) error) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	start := time.Now()
	err := f(ctx)
	if took := time.Since(start); err == nil || took > limit {
		t.Errorf("%s while the database is away: %v after %s, want an error within %s", what, err, took, limit)
	}
	return err
}

// TestDatabaseDown: with the database stopped, the queue answers errors at
// once, Ready saying why; with it hanging, within the caller's context;
// back, it works again without being reopened.
func TestDatabaseDown(t *testing.T) {
	url := pgtest.Database(t)
	p := startProxy(t, url)
	q := open(t, p.url(url))
	defer q.Close()
	ctx := t.Context()
	if err := q.Enqueue(ctx, testEvent(1)); err != nil {
		t.Fatal(err)
	}

	p.stop()
	err := within(t, "Ready", time.Second, q.Ready)
	if err == nil || !strings.HasPrefix(err.Error(), "postgres: ") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Ready while the database is down: %v, want postgres: ... connection refused", err)
	}
	within(t, "Stats", time.Second, func(ctx context.Context) error { _, err := q.Stats(ctx); return err })
	within(t, "Enqueue", time.Second, func(ctx context.Context) error { return q.Enqueue(ctx, testEvent(2)) })
	within(t, "Lease", time.Second, func(ctx context.Context) error { _, err := q.Lease(ctx); return err })

	p.start()
	p.hangs()
	for name, f := range map[string]func(context.Context) error{
		"Ready":   q.Ready,
		"Enqueue": func(ctx context.Context) error { return q.Enqueue(ctx, testEvent(2)) },
		"Stats":   func(ctx context.Context) error { _, err := q.Stats(ctx); return err },
	} {
		ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		start := time.Now()
		err := f(ctx)
		cancel()
		if took := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || took > 2*time.Second {
			t.Errorf("%s while the database hangs: %v after %s, want the context's deadline at 300ms", name, err, took)
		}
	}

	p.stop()
	p.start()
	waitUntil(t, "ready again", func() bool { return q.Ready(ctx) == nil })
	if err := q.Enqueue(ctx, testEvent(3)); err != nil {
		t.Fatalf("enqueue once the database is back: %v", err)
	}
	for _, want := range []string{testEvent(1).ID, testEvent(3).ID} {
		l := leaseWithin(t, q, 5*time.Second)
		if l.Item.Event.ID != want {
			t.Errorf("leased %s, want %s", l.Item.Event.ID, want)
		}
		if err := q.Ack(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
}

// waitUntil polls cond for up to 15 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// leaseWithin leases an item, failing the test unless one comes within d.
func leaseWithin(t *testing.T, q relay.Queue, d time.Duration) *relay.Lease {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	l, err := q.Lease(ctx)
	if err != nil {
		t.Fatalf("lease within %s: %v", d, err)
	}
	return l
}

// TestPollingAlone: with LISTEN off, as behind PgBouncer in transaction
// mode, an idle worker finds another instance's event by polling; with a
// poll too long to matter it does not, so nothing else woke it.
func TestPollingAlone(t *testing.T) {
	url := pgtest.Database(t)
	other := open(t, url, postgres.WithListen(false))
	defer other.Close()
	for _, tc := range []struct {
		poll time.Duration
		find bool
	}{{time.Hour, false}, {100 * time.Millisecond, true}} {
		t.Run(tc.poll.String(), func(t *testing.T) {
			q := open(t, url, postgres.WithListen(false), postgres.WithPoll(tc.poll))
			defer q.Close()
			got := make(chan *relay.Lease, 1)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			go func() {
				l, _ := q.Lease(ctx)
				got <- l
			}()
			// In line, then its first look, a single query, done.
			waitUntil(t, "the worker to be idle", func() bool { return postgres.Waiting(q) == 1 })
			time.Sleep(500 * time.Millisecond)
			ev := testEvent(int(tc.poll.Milliseconds()))
			if err := other.Enqueue(t.Context(), ev); err != nil {
				t.Fatal(err)
			}
			// A second is ten polls; a busy machine may take longer to
			// find it, never a poll an hour away.
			wait := time.Second
			if tc.find {
				wait = 10 * time.Second
			}
			time.AfterFunc(wait, cancel)
			l := <-got
			switch {
			case tc.find && (l == nil || l.Item.Event.ID != ev.ID):
				t.Errorf("polling every %s did not find the event within %s: %v", tc.poll, wait, l)
			case !tc.find && l != nil:
				t.Errorf("leased %s with LISTEN off and no poll due: something else woke the worker", l.Item.Event.ID)
			}
			if l != nil {
				if err := q.Ack(t.Context(), l); err != nil {
					t.Fatal(err)
				}
			} else {
				if err := other.Drop(t.Context(), ev.ID); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestListenWakesAndReconnects: with a poll too long to matter, NOTIFY
// wakes an idle worker for another instance's event; after the LISTEN
// connection is cut, it is made again and wakes workers as before.
func TestListenWakesAndReconnects(t *testing.T) {
	url := pgtest.Database(t)
	p := startProxy(t, url)
	logs := newLogSink()
	q := open(t, p.url(url), postgres.WithPoll(time.Hour), postgres.WithLogger(logs.logger()))
	defer q.Close()
	other := open(t, url, postgres.WithListen(false))
	defer other.Close()
	wakes := func(i int) {
		t.Helper()
		got := make(chan *relay.Lease, 1)
		go func() {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			defer cancel()
			l, _ := q.Lease(ctx)
			got <- l
		}()
		time.Sleep(200 * time.Millisecond) // the worker is idle
		ev := testEvent(i)
		if err := other.Enqueue(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
		l := <-got
		if l == nil || l.Item.Event.ID != ev.ID {
			t.Fatalf("the idle worker was not woken for event %d", i)
		}
		if err := q.Ack(t.Context(), l); err != nil {
			t.Fatal(err)
		}
	}
	wakes(1)
	p.stop()
	logs.waitFor(t, "no LISTEN connection")
	p.start()
	logs.waitFor(t, "listening for new events again")
	wakes(2)
}
