package webhook

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestSmallBodyTakesLittleMemory: a body of known length is read into a
// buffer of about its size. Each webhook used to take 48 KB (a 16 KB read
// buffer, grown to 32 KB for the read that finds the end), which the
// garbage collector then had to clear at thousands of webhooks a second.
func TestSmallBodyTakesLittleMemory(t *testing.T) {
	body := strings.Repeat("x", 300)
	const runs = 200
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		req := httptest.NewRequest(http.MethodPost, "/webhook", strings.NewReader(body))
		got, rerr := readBody(httptest.NewRecorder(), req, 1<<20, time.Minute, nil, nil)
		if rerr != nil || len(got) != len(body) {
			t.Fatalf("readBody = %d bytes, %v", len(got), rerr)
		}
	}
	runtime.ReadMemStats(&after)
	// The request and recorder take about 2 KB of their own.
	if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 6<<10 {
		t.Errorf("reading a 300-byte body allocates %d bytes, want under 6 KB", per)
	}
}

// TestLargeBodyChargedAsItArrives: a body of known length asks the
// large-body budget for no more than its length, a read's worth ahead of
// what has arrived, and before its buffer grows. Charged by the buffer's
// capacity, which runs up to a quarter ahead while it grows, an 8 MiB MMS
// took about 9 MiB of the budget where the announced size took 7.
func TestLargeBodyChargedAsItArrives(t *testing.T) {
	const size = 3 << 20
	req := httptest.NewRequest(http.MethodPost, "/hooks/sms", strings.NewReader(strings.Repeat("x", size)))
	var asked []int
	got, rerr := readBody(httptest.NewRecorder(), req, 8<<20, time.Minute, nil, func(held int) bool {
		asked = append(asked, held)
		return true
	})
	if rerr != nil || len(got) != size {
		t.Fatalf("readBody = %d bytes, %v", len(got), rerr)
	}
	for i, held := range asked {
		if held > size+1 {
			t.Fatalf("charge %d asked for %d bytes, more than the %d-byte body", i, held, size)
		}
		if i > 0 && held-asked[i-1] > readChunk {
			t.Fatalf("charge %d asked for %d bytes more at once, over a read's %d", i, held-asked[i-1], readChunk)
		}
	}
	if len(asked) == 0 || asked[len(asked)-1] != size+1 {
		t.Errorf("charges %v, want them to end at the body's size and a byte", asked[max(0, len(asked)-3):])
	}
}
