package relay_test

import (
	"context"
	"fmt"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/spool"
)

// BenchmarkSpoolDrainStorm is what a storm costs a spool's delivery: b.N
// SMS queued, then drained by 4 workers to a sender that accepts at once,
// on a route without storm, with storm and every SMS from a phone of its
// own (each counted, each emailed: a catch-all's usual traffic), and with
// every SMS from one phone (all but the first 10 folded, one digest).
//
// It reports the wall time and the process's CPU time per event.
//
//	go test ./relay -run '^$' -bench SpoolDrainStorm -benchtime 5000x -count 3
func BenchmarkSpoolDrainStorm(b *testing.B) {
	storm := &config.Storm{Threshold: 10, Window: time.Hour}
	for _, bc := range []struct {
		name   string
		storm  *config.Storm
		phones int
	}{
		{"no-storm", nil, 0},
		{"storm-each-phone-its-own", storm, 0},
		{"storm-one-phone", storm, 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := testConfig(b)
			cfg.Routes = []config.Route{{Name: "all", To: []string{"ops@example.com"}, Storm: bc.storm}}
			s, err := spool.Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			at := time.Now()
			for i := range b.N {
				phone := fmt.Sprintf("+1555%07d", i)
				if bc.phones == 1 {
					phone = "+15550000000"
				}
				if err := s.Enqueue(b.Context(), smsEvent(i, phone, "hello", at)); err != nil {
					b.Fatal(err)
				}
			}
			rules, err := relay.NewRules(cfg)
			if err != nil {
				b.Fatal(err)
			}
			cfg.SMTP.Workers = 4
			w := relay.NewWorkers(rules, s, relay.QueueLocal, s, relay.NewLocalPace(nil), &recorder{}, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			ctx, cancel := context.WithCancel(b.Context())
			defer cancel()
			cpu0 := cpuTime(b)
			b.ResetTimer()
			done := make(chan struct{})
			go func() { defer close(done); _ = w.Run(ctx) }()
			for {
				st, err := s.Stats(b.Context())
				if err != nil {
					b.Fatal(err)
				}
				if st.Depth == 0 {
					break
				}
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
			cancel()
			<-done
		})
	}
}

// cpuTime is the CPU time the process has used, user and system: on a
// machine other work shares, a steadier figure than the wall clock.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
