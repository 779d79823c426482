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
// cannot take what the platform's small webhooks need; a large one that
// grows past the budget is answered 503 with Retry-After (SMS Gateway
// retries).
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

// largeCharge takes from a budget the bytes of one body held above small,
// as the body grows, and gives them all back with release. A client that
// announces a large body and sends nothing holds nothing: taking the
// announced size up front let a few requests that never sent it hold the
// whole budget until their body_timeout, without authenticating.
type largeCharge struct {
	budget *byteBudget
	small  int64
	taken  int64
}

// grow takes what holding held bytes needs beyond what was taken; false
// when the budget has not that much left.
func (c *largeCharge) grow(held int) bool {
	need := int64(held) - c.small - c.taken
	if need <= 0 {
		return true
	}
	if !c.budget.take(need) {
		return false
	}
	c.taken += need
	return true
}

// release gives back all that was taken.
func (c *largeCharge) release() {
	c.budget.give(c.taken)
	c.taken = 0
}

var errLargeBodies = &reqError{status: http.StatusServiceUnavailable, result: ResultBusy, retryAfter: "5",
	reason: "too many large bodies at once; try again in a few seconds"}
