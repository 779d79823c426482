package postgres

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/postgres/pgtest"
)

// TestListFiltersAcrossBatches: a filter applied in Go reads on, batch
// after batch, until the page is full, and its cursor takes the next page
// up after the last item listed, not after the last row read.
func TestListFiltersAcrossBatches(t *testing.T) {
	q, err := Open(t.Context(), pgtest.Database(t), func(o *options) { o.listBatch = 3 })
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var want []string
	for i := range 20 {
		ev := &relay.Event{ID: fmt.Sprintf("batch-%02d", i), Type: "sms", Source: "gateway", Received: time.Now(),
			Data: map[string]string{"message": fmt.Sprintf("event %d", i)}}
		if i%7 == 2 {
			ev.Source = "android"
			want = append(want, ev.ID)
		}
		if err := q.Enqueue(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	for _, limit := range []int{0, 1, 2, 5} {
		var got []string
		f := relay.Filter{State: relay.StateWaiting, Source: "android", Limit: limit}
		for range 10 {
			page, err := q.List(t.Context(), f)
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range page.Items {
				got = append(got, it.Event.ID)
			}
			if f.After = page.Next; f.After == "" {
				break
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%d a page: %v, want %v", limit, got, want)
		}
	}
}

// TestRequeueDeadFilteredReadsAPageAtATime: a RequeueDead whose filter is
// applied in Go reads the dead letters a page at a time and requeues
// every match, however many pages they span. (Before, it read every
// dead letter the filter kept at once.)
func TestRequeueDeadFilteredReadsAPageAtATime(t *testing.T) {
	var pages []int
	q, err := Open(t.Context(), pgtest.Database(t), WithListen(false), func(o *options) {
		o.requeuePage = 2
		o.onRequeuePage = func(n int) { pages = append(pages, n) }
	})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var want []string
	for i := range 7 {
		ev := &relay.Event{ID: fmt.Sprintf("dead-%02d", i), Type: "sms", Source: "gateway", Received: time.Now(),
			Data: map[string]string{"message": fmt.Sprintf("event %d", i)}}
		if i != 3 {
			ev.Source = "android"
			want = append(want, ev.ID)
		}
		if err := q.Enqueue(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
		l, err := q.Lease(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Bury(t.Context(), l, "550 no such user", relay.Progress{Attempts: 1}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := q.RequeueDead(t.Context(), relay.Filter{Source: "android"})
	if err != nil || n != len(want) {
		t.Fatalf("RequeueDead = %d, %v; want %d", n, err, len(want))
	}
	if len(pages) < 3 || slices.Max(pages) > 2 {
		t.Errorf("pages of %v dead letters; want pages of at most 2", pages)
	}
	page, err := q.List(t.Context(), relay.Filter{State: relay.StateWaiting})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range page.Items {
		got = append(got, it.Event.ID)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("waiting after the requeue: %v, want %v", got, want)
	}
	if st, _ := q.Stats(t.Context()); st.Dead != 1 {
		t.Errorf("%d dead letters left, want the one the filter did not keep", st.Dead)
	}
}
