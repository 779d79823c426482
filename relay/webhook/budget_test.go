package webhook

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
)

// TestLargeBodiesShareABudget: bodies larger than webhook.max_body_bytes
// (only smsgate's) hold at most LargeBodyBudget bytes above it at once;
// past it a large one is answered 503 with Retry-After once its part above
// max_body_bytes arrives, while a small webhook still gets in, and the
// budget comes back when a request ends.
func TestLargeBodiesShareABudget(t *testing.T) {
	cfg := testConfig(t)
	env := newTestEnv(t, cfg)
	src := config.Source{Name: "android", Path: "/hooks/sms", Format: config.FormatSMSGate, MaxBodyBytes: config.DefaultSMSGateBodyBytes, ReplayWindow: time.Minute}
	h := env.rc.Handler(src)
	gateway := env.rc.Handler(env.gateway())
	// Clients that announced large bodies and are still sending them.
	held := LargeBodyBudget / (config.DefaultSMSGateBodyBytes - cfg.Webhook.MaxBodyBytes)
	if !env.rc.large.take(int64(held) * (config.DefaultSMSGateBodyBytes - cfg.Webhook.MaxBodyBytes)) {
		t.Fatal("the budget is smaller than it says")
	}
	large := func() *httptest.ResponseRecorder {
		body := strings.Repeat("x", 3<<20)
		req := httptest.NewRequest(http.MethodPost, "/hooks/sms", strings.NewReader(body))
		req.Header.Set("X-Signature", strings.Repeat("0", 64))
		req.Header.Set("X-Timestamp", strconv.FormatInt(time.Now().Unix(), 10))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := large(); rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("a large body past the budget: %d %q, want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	if rec := post(t, gateway, formType, "secret="+testSecret+"&type=sms&data[message]=hi"); rec.Code != http.StatusOK {
		t.Errorf("a small webhook while large ones fill the budget: %d %s", rec.Code, rec.Body)
	}
	env.rc.large.give(int64(held) * (config.DefaultSMSGateBodyBytes - cfg.Webhook.MaxBodyBytes))
	for range 3 { // each gives its share back when it ends
		if rec := large(); rec.Code != http.StatusUnauthorized {
			t.Fatalf("a large body within the budget: %d %s, want it read and refused for its signature", rec.Code, rec.Body)
		}
	}
	if env.rc.large.left != LargeBodyBudget {
		t.Errorf("after the requests ended %d bytes of the budget are left, want %d", env.rc.large.left, LargeBodyBudget)
	}
}

// TestAnnouncedLargeBodiesHoldNothing: clients that announce large bodies
// and send a few bytes (no signature checked yet) take nothing from the
// budget, so an MMS arriving meanwhile is read: when the announced size
// was taken up front, a handful of such requests, from one address,
// without a key, turned every MMS away with 503 until their body_timeout.
func TestAnnouncedLargeBodiesHoldNothing(t *testing.T) {
	cfg := testConfig(t)
	env := newTestEnv(t, cfg)
	src := config.Source{Name: "android", Path: "/hooks/sms", Format: config.FormatSMSGate, MaxBodyBytes: config.DefaultSMSGateBodyBytes, ReplayWindow: time.Minute}
	h := env.rc.Handler(src)
	signed := func(req *http.Request) {
		req.Header.Set("X-Signature", strings.Repeat("0", 64))
		req.Header.Set("X-Timestamp", strconv.FormatInt(time.Now().Unix(), 10))
	}
	const stalled = 20 // each announcing 8 MiB: 20 x 7 MiB above max_body_bytes is over the budget
	var writers []*io.PipeWriter
	var wg, started sync.WaitGroup
	for range stalled {
		pr, pw := io.Pipe()
		writers = append(writers, pw)
		req := httptest.NewRequest(http.MethodPost, "/hooks/sms", pr)
		req.ContentLength = config.DefaultSMSGateBodyBytes
		signed(req)
		// Started once its first bytes are read, or it was answered
		// without reading them.
		var once sync.Once
		started.Add(1)
		wg.Go(func() {
			h.ServeHTTP(httptest.NewRecorder(), req)
			once.Do(started.Done)
			pr.Close()
		})
		go func() {
			_, _ = pw.Write([]byte(`{"event":`))
			once.Do(started.Done)
		}()
	}
	started.Wait()
	defer func() {
		for _, pw := range writers {
			pw.CloseWithError(io.ErrUnexpectedEOF)
		}
		wg.Wait()
	}()
	req := httptest.NewRequest(http.MethodPost, "/hooks/sms", strings.NewReader(strings.Repeat("x", 3<<20)))
	signed(req)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("a 3 MiB body while %d clients announce 8 MiB and stall: %d %s, want it read (and refused for its signature)", stalled, rec.Code, rec.Body)
	}
}
