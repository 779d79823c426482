package postgres_test

import (
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/postgres/pgtest"
)

// BenchmarkTake is what smtp.rate costs each email on Postgres: one take
// from the smtp bucket, and from a route's too. The gap is a nanosecond,
// so every take finds its slot free.
func BenchmarkTake(b *testing.B) {
	q := open(b, pgtest.Database(b))
	b.Cleanup(func() { q.Close() })
	for _, tc := range []struct {
		name    string
		buckets []relay.Bucket
	}{
		{"smtp", []relay.Bucket{{Key: relay.BucketSMTP, Every: time.Nanosecond}}},
		{"smtp+route", []relay.Bucket{{Key: relay.BucketSMTP, Every: time.Nanosecond}, {Key: relay.RouteBucket("otp"), Every: time.Nanosecond}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := q.Take(b.Context(), tc.buckets); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
