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
