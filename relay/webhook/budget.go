package webhook

import (
	"net/http"
	"sync"
)

// LargeBodyBudget bounds the bytes of large bodies held at once, read or
// being read, across every source: the part of each body above
// webhook.max_body_bytes, which only a source with a larger limit (smsgate,
// whose MMS carry pictures inline) can send. Bodies within
// webhook.max_body_bytes never wait for it, so a flood of large bodies
// cannot take what the platform's small webhooks need; a large one past
// the budget is answered 503 with Retry-After (SMS Gateway retries).
const LargeBodyBudget = 64 << 20

// byteBudget is a count of bytes that may be held at once.
type byteBudget struct {
	mu   sync.Mutex
	left int64
}

func newByteBudget(n int64) *byteBudget { return &byteBudget{left: n} }

// take takes n bytes when they are left.
func (b *byteBudget) take(n int64) bool {
	if n <= 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.left {
		return false
	}
	b.left -= n
	return true
}

// give returns n bytes taken.
func (b *byteBudget) give(n int64) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	b.left += n
	b.mu.Unlock()
}

// largePart is how much of the budget r's body needs: what it may hold
// above small, by its Content-Length or, without one, by the source's
// limit.
func largePart(r *http.Request, small, limit int64) int64 {
	n := limit
	if r.ContentLength >= 0 && r.ContentLength < limit {
		n = r.ContentLength
	}
	return n - small
}

var errLargeBodies = &reqError{status: http.StatusServiceUnavailable, result: ResultBusy, retryAfter: "5",
	reason: "too many large bodies at once; try again in a few seconds"}
