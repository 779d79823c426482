package spool

import (
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// precheck reads every page of an existing spool file before the real
// open. bbolt verifies the pages it frees in a goroutine of its own when it
// opens a file written with NoFreelistSync, and panics there on a damaged
// one, out of reach of recover. Read-only and without loading the freelist,
// it does not start that goroutine, so a damaged page panics here, in this
// goroutine, and becomes an error that names the file.
func precheck(path string) (err error) {
	if fi, statErr := os.Stat(path); statErr != nil || fi.Size() == 0 {
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
	if err := db.View(func(tx *bolt.Tx) error { return walk(tx.Cursor()) }); err != nil {
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
