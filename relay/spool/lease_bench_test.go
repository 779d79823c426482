package spool

import (
	"fmt"
	"testing"
)

// BenchmarkLeaseBehindLeased is a lease while 256 earlier items are still
// leased at the head of the due index, as with 16 busy workers whose acks
// wait for their commit: the walk used to pass over all of them, under
// the lock every worker takes.
func BenchmarkLeaseBehindLeased(b *testing.B) {
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := b.Context()
	n := 256 + b.N
	for i := range n {
		if err := s.Enqueue(ctx, testEvent(fmt.Sprintf("ev-%09d", i))); err != nil {
			b.Fatal(err)
		}
	}
	for range 256 {
		if _, err := s.Lease(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		if _, err := s.Lease(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
