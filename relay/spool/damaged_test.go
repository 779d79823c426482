package spool

import (
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hookmail/hookmail/relay"
)

// TestDamagedRecordGoesToTheDeadLetters: a waiting record that does not
// decode, due first, is moved to the dead letters with its bytes, and the
// event due after it is leased; before, every lease met it first and
// failed, and nothing was delivered again. The counts stay right, by the
// record's type when that much reads, else by counting again.
func TestDamagedRecordGoesToTheDeadLetters(t *testing.T) {
	for name, tc := range map[string]struct {
		raw    string
		byType map[string]relay.TypeCount
	}{
		"its type reads":      {`{"event":{"id":"bad","type":"sms","data":5}}`, map[string]relay.TypeCount{"sms": {Waiting: 1, Dead: 1}}},
		"nothing of it reads": {"\xffnot json", map[string]relay.TypeCount{"sms": {Waiting: 1}, "other": {Dead: 1}}},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTestSpool(t, dir)
			ctx := t.Context()
			// Stored as an sms, then damaged on disk.
			l := leaseAfterDamage(t, s, func(tx *bolt.Tx, tl tally) error {
				tl.add("sms", 1, 0)
				return putRaw(tx, "bad", time.Unix(1, 0), 0, []byte(tc.raw))
			})
			dead, err := s.Get(ctx, "bad")
			if err != nil || dead.State != relay.StateDead || dead.Event.Data[damagedField] != strings.ToValidUTF8(tc.raw, "\uFFFD") ||
				!strings.Contains(dead.DeadReason, "does not decode") {
				t.Errorf("the damaged record's dead letter: %+v %v", dead, err)
			}
			check := func(when string) {
				st, err := s.Stats(ctx)
				if err != nil || st.Depth != 1 || st.Dead != 1 || len(st.ByType) != len(tc.byType) {
					t.Errorf("%s: stats %+v %v", when, st, err)
				}
				for typ, want := range tc.byType {
					if st.ByType[typ] != want {
						t.Errorf("%s: %s counted %+v, want %+v", when, typ, st.ByType[typ], want)
					}
				}
			}
			check("after the lease")
			if err := s.Ack(ctx, l); err != nil {
				t.Fatal(err)
			}
			s.Close()
			s = openTestSpool(t, dir)
			if st, _ := s.Stats(ctx); st.Depth != 0 || st.Dead != 1 {
				t.Errorf("reopened after the ack: %+v, want 0 waiting and the dead letter", st)
			}
		})
	}
}

// TestTwoDamagedRecordsAndADeadLetterOfTheSameID: two waiting records
// that do not even name their type (a damaged page) both go to the dead
// letters and the good event after them is leased: the recount that
// follows the first counts the second as "other" rather than failing,
// which made every lease fail again and the writer recount the whole
// spool each time. A damaged record whose id has a dead letter already
// joins it, counted once.
func TestTwoDamagedRecordsAndADeadLetterOfTheSameID(t *testing.T) {
	s := openTestSpool(t, t.TempDir())
	ctx := t.Context()
	leaseAfterDamage(t, s, func(tx *bolt.Tx, tl tally) error {
		tl.add("sms", 4, 2)
		if err := tx.Bucket(bucketDead).Put([]byte("twin2"), []byte("\x00dead too")); err != nil {
			return err
		}
		for i, id := range []string{"bad1", "bad2", "twin", "twin2"} {
			if err := putRaw(tx, id, time.Unix(int64(i+1), 0), 0, []byte("\x00garbled")); err != nil {
				return err
			}
		}
		old, err := encodeItem(&relay.Item{Event: relay.Event{ID: "twin", Type: "sms", Data: map[string]string{"a": "b"}}, DeadReason: "550 no"})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketDead).Put([]byte("twin"), old)
	})
	twin, err := s.Get(ctx, "twin")
	if err != nil || twin.DeadReason != "550 no" || twin.Event.Data["a"] != "b" || twin.Event.Data[damagedField] != "\x00garbled" {
		t.Errorf("the dead letter the damaged twin joined: %+v %v", twin, err)
	}
	twin2, err := s.Get(ctx, "twin2")
	if err != nil || twin2.Event.Data[damagedField] != "\x00garbled\n\x00dead too" {
		t.Errorf("a damaged record whose dead letter is damaged too: %+v %v, want one dead letter with both", twin2, err)
	}
	st, err := s.Stats(ctx)
	if err != nil || st.Depth != 1 || st.Dead != 4 || st.ByType["sms"] != (relay.TypeCount{Waiting: 1, Dead: 1}) || st.ByType["other"] != (relay.TypeCount{Dead: 3}) {
		t.Errorf("stats %+v %v, want the good one waiting, the twin an sms dead letter, the three others 'other'", st, err)
	}
}

// leaseAfterDamage writes damage into s as another program would have
// left it (records and their counts), stores a good event due after it,
// and leases: it must be the good event.
func leaseAfterDamage(t *testing.T, s *Spool, damage func(*bolt.Tx, tally) error) *relay.Lease {
	t.Helper()
	if err := s.updateCounted(damage); err != nil {
		t.Fatal(err)
	}
	if err := s.Enqueue(t.Context(), testEvent("good")); err != nil {
		t.Fatal(err)
	}
	l, err := s.Lease(t.Context())
	if err != nil || l.Item.Event.ID != "good" {
		t.Fatalf("lease: %+v %v, want the good event", l, err)
	}
	return l
}
