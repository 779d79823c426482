package webhook

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkWebhookIntake measures the receiver alone, on the in-memory
// queue and without the HTTP transport: read, decode, check the secret,
// store, answer (bench/intake.sh measures the whole, the spool's fsync
// included). Run with -cpu and -benchtime to vary load.
func BenchmarkWebhookIntake(b *testing.B) {
	cfg := testConfig(b)
	env := newTestEnv(b, cfg)
	h := env.rc.Handler(env.gateway())
	body := string(readTestdata(b, "sms.form"))
	b.SetParallelism(32) // 32 × GOMAXPROCS concurrent requests, like wrk's 64 connections on 2 cores
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/webhook", strings.NewReader(body))
			req.Header.Set("Content-Type", formType)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Errorf("status %d", rec.Code)
				return
			}
		}
	})
}
