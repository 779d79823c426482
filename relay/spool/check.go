package spool

import (
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// keyClean, in the meta bucket, holds the id of the commit with which
// Close closed the file, having written bbolt's list of free pages in it.
var keyClean = []byte("clean")

// precheck reads every page of an existing spool file before the real
// open, unless the file was closed cleanly and nothing wrote to it since.
//
// Without the list of free pages, which the spool writes only as it
// closes, bbolt rebuilds the list at open by reading every page, in a
// goroutine of its own, and panics there on a damaged one, out of reach of
// recover. Read-only and without loading the freelist, it does not start
// that goroutine, so a damaged page panics here, in this goroutine, and
// becomes an error that names the file. A file closed cleanly has the
// list, so neither reads the file through: opening it costs the same
// whatever backlog it holds. Damage done to it since is found where it is
// read, and reported as an error naming the file (see view).
func precheck(path string) (err error) {
	fi, statErr := os.Stat(path)
	if statErr != nil || fi.Size() == 0 {
		return nil // nothing yet: the real open creates it
	}
	defer func() {
		if p := recover(); p != nil {
			err = damaged(path, p)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, ReadOnly: true, PreLoadFreelist: false})
	if err != nil {
		return openError(path, err)
	}
	defer db.Close()
	if err := db.View(func(tx *bolt.Tx) error {
		// A file cut short (a full disk, a bad copy) lacks pages its
		// meta page counts; bbolt would read zeros there and panic out
		// of reach, clean stamp or not. (The size stat'd above stands:
		// a hookmail writing the file holds the lock this open waits on.)
		if fi.Size() < tx.Size() {
			return fmt.Errorf("the file is %d bytes but holds pages up to %d bytes: it was cut short", fi.Size(), tx.Size())
		}
		if stamped(tx, keyClean) {
			return nil
		}
		return walk(tx.Cursor())
	}); err != nil {
		return damaged(path, err)
	}
	return nil
}

// walk visits every key of a bucket and its nested buckets, so every
// branch and leaf page is read once.
func walk(c *bolt.Cursor) error {
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v != nil {
			continue
		}
		b := c.Bucket().Bucket(k)
		if b == nil {
			return fmt.Errorf("key %q is neither a value nor a bucket", k)
		}
		if err := walk(b.Cursor()); err != nil {
			return err
		}
	}
	return nil
}

// view runs fn in a read transaction. bbolt panics on a damaged page it
// reads; that becomes an error naming the file, for the caller to report
// (a worker logs it and tries again), not a crash.
func (s *Spool) view(fn func(*bolt.Tx) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = damaged(s.path, p)
		}
	}()
	return s.db.View(fn)
}
