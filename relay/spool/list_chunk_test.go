package spool

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/hookmail/hookmail/relay"
)

// TestListReadsInChunks: a listing read a few records per read
// transaction pages exactly as one read in a single transaction, and a
// listing whose context has ended stops: a filter that matches little
// walked the whole spool in one read transaction, past the admin page's
// timeout, holding up every commit that grows the file meanwhile.
func TestListReadsInChunks(t *testing.T) {
	s := openTestSpool(t, t.TempDir())
	ctx := t.Context()
	for i := range 10 {
		ev := testEvent(fmt.Sprintf("ev-%02d", i))
		if i%3 == 0 {
			ev.Type = "whatsapp"
		}
		if err := s.Enqueue(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	all := func(f relay.Filter) []string {
		var ids []string
		for {
			page, err := s.List(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range page.Items {
				ids = append(ids, it.Event.ID)
			}
			if page.Next == "" {
				return ids
			}
			f.After = page.Next
		}
	}
	filters := []relay.Filter{{}, {Limit: 2}, {Type: "whatsapp", Limit: 1}, {Type: "whatsapp"}, {Type: "ussd", Limit: 3}}
	var whole [][]string
	for _, f := range filters {
		whole = append(whole, all(f))
	}
	defer func(n int) { listChunk = n }(listChunk)
	listChunk = 3
	for i, f := range filters {
		if got := all(f); !reflect.DeepEqual(got, whole[i]) {
			t.Errorf("filter %+v read 3 at a time: %v, want %v", f, got, whole[i])
		}
	}
	if len(whole[2]) != 4 || len(whole[4]) != 0 {
		t.Errorf("whatsapp %v, ussd %v: want 4 and none", whole[2], whole[4])
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.List(done, relay.Filter{Type: "ussd"}); !errors.Is(err, context.Canceled) {
		t.Errorf("a listing whose context ended: %v, want it stopped", err)
	}
}
