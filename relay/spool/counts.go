package spool

import (
	"encoding/json"
	"fmt"
	"maps"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/hookmail/hookmail/relay"
)

// typeCounts keeps Stats.ByType: waiting events and dead letters per event
// type. Types are as the events name them: an authenticated sender chooses
// them, and each counted type has an event in the spool.
type typeCounts struct {
	mu sync.Mutex
	m  map[string]relay.TypeCount
}

func (c *typeCounts) add(typ string, waiting, dead int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]relay.TypeCount{}
	}
	tc := c.m[typ]
	tc.Waiting += waiting
	tc.Dead += dead
	if tc == (relay.TypeCount{}) {
		delete(c.m, typ)
		return
	}
	c.m[typ] = tc
}

func (c *typeCounts) snapshot() map[string]relay.TypeCount {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.m)
}

// openCounts are the counts read once when the spool opens.
type openCounts struct {
	depth, dead int
	bytes       int64
	types       typeCounts
}

// scan walks every waiting event and dead letter once. It decodes only the
// type, so a damaged record is found here, at start-up, not by a worker.
func (c *openCounts) scan(tx *bolt.Tx) error {
	var head struct {
		Event struct {
			Type string `json:"type"`
		} `json:"event"`
	}
	if err := tx.Bucket(bucketDigests).ForEach(func(_, raw []byte) error {
		c.bytes += int64(len(raw))
		return nil
	}); err != nil {
		return err
	}
	for _, b := range [][]byte{bucketEvents, bucketDead} {
		dead := 0
		if string(b) == string(bucketDead) {
			dead = 1
		}
		err := tx.Bucket(b).ForEach(func(k, raw []byte) error {
			head.Event.Type = ""
			if err := json.Unmarshal(raw, &head); err != nil {
				return fmt.Errorf("record %s in %s does not decode: %w", k, b, err)
			}
			c.bytes += int64(len(raw))
			c.types.add(head.Event.Type, 1-dead, dead)
			c.depth += 1 - dead
			c.dead += dead
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
