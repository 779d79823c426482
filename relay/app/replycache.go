package app

import (
	"bytes"
	"cmp"
	"net/http"
	"sync"
	"time"
)

// replyCacheTTL is how long a /metrics or /readyz answer is served again
// before it is made anew.
const replyCacheTTL = time.Second

// maxCachedReplies bounds the variants (Accept, Accept-Encoding) kept.
const maxCachedReplies = 16

// cacheReplies serves next's answer to a GET again, byte for byte, for ttl
// after it was made, one answer per Accept and Accept-Encoding. Gathering
// and encoding the metrics, or writing the queue's readiness probe (an
// fsync), costs far more than a webhook: without the cache a flood of
// scrapes or probes takes the CPU and the disk the webhooks need. While an
// answer is being made, other requests for it wait and get it.
func cacheReplies(next http.Handler, ttl time.Duration, now func() time.Time) http.Handler {
	return &replyCache{next: next, ttl: ttl, now: now, replies: map[string]*cachedReply{}}
}

type replyCache struct {
	next http.Handler
	ttl  time.Duration
	now  func() time.Time

	mu      sync.Mutex
	replies map[string]*cachedReply
}

// cachedReply is one recorded answer; it is also the ResponseWriter that
// records it.
type cachedReply struct {
	at     time.Time
	status int
	header http.Header
	body   bytes.Buffer
}

func (c *cachedReply) Header() http.Header { return c.header }

func (c *cachedReply) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	return c.body.Write(p)
}

func (c *cachedReply) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
}

func (c *replyCache) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		c.next.ServeHTTP(w, r)
		return
	}
	key := r.Header.Get("Accept") + "\x00" + r.Header.Get("Accept-Encoding")
	c.mu.Lock()
	reply := c.replies[key]
	if reply == nil || c.now().Sub(reply.at) >= c.ttl {
		reply = &cachedReply{header: http.Header{}}
		c.next.ServeHTTP(reply, r)
		reply.at = c.now()
		if len(c.replies) >= maxCachedReplies {
			clear(c.replies)
		}
		c.replies[key] = reply
	}
	c.mu.Unlock()
	for k, v := range reply.header {
		w.Header()[k] = v
	}
	w.WriteHeader(cmp.Or(reply.status, http.StatusOK))
	_, _ = w.Write(reply.body.Bytes())
}
