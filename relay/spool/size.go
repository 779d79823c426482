package spool

import (
	bolt "go.etcd.io/bbolt"
)

// fill sets how full bbolt packs the pages it splits, in each bucket tx
// writes. The keys of these buckets grow as time does (event ids are
// UUIDv7, due times and expiries ascend), so new entries go at the end of
// the last page (of each priority, in priority): packed full, the pages
// behind it stay full, where bbolt's default of half full left the spool's
// pages under half used.
func fill(tx *bolt.Tx) {
	for _, name := range [][]byte{bucketEvents, bucketDue, bucketPriority, bucketDead, bucketDedupExp, bucketDigests, bucketStormExp} {
		tx.Bucket(name).FillPercent = 1.0
	}
}

// measure takes the bytes of the file's pages in use after a commit: the
// pages up to its high-water mark less the free ones (and those a commit
// freed, which the next reuses once no reader still reads them). This is
// what spool.max_bytes bounds: the file never grows much past it, as it
// reuses free pages before it grows.
func (s *Spool) measure() {
	var size int64
	_ = s.db.View(func(tx *bolt.Tx) error {
		size = tx.Size()
		return nil
	})
	st := s.db.Stats()
	s.bytes.Store(size - int64(st.FreePageN+st.PendingPageN)*int64(s.db.Info().PageSize))
}
