package relay_test

import (
	"context"
	"errors"
	"fmt"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

// TestDeliverEmailsEveryRouteOnceAcrossRetries: an event two routes take,
// where one route's server refuses for now: the retry emails only the route
// still owed; a dropped event is acked and never emailed.
func TestDeliverEmailsEveryRouteOnceAcrossRetries(t *testing.T) {
	cfg := testConfig(t)
	cfg.Routes = relay.SmallBusiness()
	cfg.Retry.Initial, cfg.Retry.Max = time.Millisecond, time.Millisecond
	var mu sync.Mutex
	sent := map[string]int{}
	failAudit := 1
	env := newTestEnv(t, cfg, withSender(&fakeSender{send: func(_ context.Context, m *relay.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if m.Route == "audit-sim2" && failAudit > 0 {
			failAudit--
			return errors.New("451 4.3.0 try later")
		}
		sent[m.Route]++
		return nil
	}}))
	env.post(t, formType, "secret="+testSecret+"&type=sms&data[id]=1&data[sim]=2&data[phone]=%2B1&data[message]=hi")
	env.post(t, formType, "secret="+testSecret+"&type=sms&data[id]=2&data[sim]=1&data[phone]=%2B1&data[message]=your+OTP+is+1")
	env.runUntil(t, "the queue to drain", func() bool { return env.stats(t).Depth == 0 })
	mu.Lock()
	defer mu.Unlock()
	if sent["support-sim2"] != 1 || sent["audit-sim2"] != 1 || len(sent) != 2 {
		t.Errorf("emails by route %v, want support-sim2 and audit-sim2 once each", sent)
	}
	if got := env.metric(t, "hookmail_events_dropped_total", "route", "drop-otp"); got != 1 {
		t.Errorf("dropped counted %v, want 1", got)
	}
	if st := env.stats(t); st.Depth != 0 || st.Dead != 0 {
		t.Errorf("queue %+v, want empty", st)
	}
}

// TestMixedRouteOutcomes: two routes take an event; one refuses it for good
// and the other for now, in either order. The refused route is tried once,
// the other is retried until it takes the email, then the event goes to the
// dead letters naming the refusal.
func TestMixedRouteOutcomes(t *testing.T) {
	for _, permFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("permanent first %v", permFirst), func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Retry.Initial, cfg.Retry.Max = time.Millisecond, time.Millisecond
			a := config.Route{Name: "a", To: []string{"a@example.com"}, Continue: true}
			b := config.Route{Name: "b", To: []string{"b@example.com"}}
			cfg.Routes = []config.Route{a, b}
			perm, temp := "a", "b"
			if !permFirst {
				perm, temp = "b", "a"
				cfg.Routes[0].Continue, cfg.Routes[1].Continue = true, false
			}
			var mu sync.Mutex
			tries := map[string]int{}
			env := newTestEnv(t, cfg, withSender(&fakeSender{send: func(_ context.Context, m *relay.Message) error {
				mu.Lock()
				defer mu.Unlock()
				tries[m.Route]++
				switch {
				case m.Route == perm:
					return reply(550, "5.1.1 no such user")
				case tries[m.Route] < 3:
					return reply(451, "4.3.0 try later")
				}
				return nil
			}}))
			env.post(t, formType, string(readTestdata(t, "sms.form")))
			env.runUntil(t, "the event settled", func() bool {
				st := env.stats(t)
				return st.Depth == 0 && st.Dead == 1
			})
			mu.Lock()
			defer mu.Unlock()
			if tries[perm] != 1 || tries[temp] != 3 {
				t.Errorf("tries %v, want %s once and %s three times", tries, perm, temp)
			}
			dead := env.deadLetters(t)
			if len(dead) != 1 || !strings.Contains(dead[0].DeadReason, "route "+perm+": ") || !strings.Contains(dead[0].DeadReason, "550") ||
				!slices.Equal(dead[0].Delivered, []string{temp}) {
				t.Errorf("dead letter %+v", dead)
			}
		})
	}
}

// TestRefusalsAfterRequeueAndReload: an operator who fixes a refusing
// route and requeues the dead letter gets the email sent; a refusal by a
// route a reload removed does not bury an event the remaining routes took.
func TestRefusalsAfterRequeueAndReload(t *testing.T) {
	cfg := testConfig(t)
	cfg.Retry.Initial, cfg.Retry.Max = time.Millisecond, time.Millisecond
	cfg.Routes = []config.Route{{Name: "only", To: []string{"a@example.com"}}}
	var mu sync.Mutex
	refuse := true
	sent := 0
	env := newTestEnv(t, cfg, withSender(&fakeSender{send: func(_ context.Context, m *relay.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if refuse {
			return reply(550, "5.1.1 no such user")
		}
		sent++
		return nil
	}}))
	env.post(t, formType, string(readTestdata(t, "sms.form")))
	env.runUntil(t, "the dead letter", func() bool { return env.stats(t).Dead == 1 })
	mu.Lock()
	refuse = false // the operator fixed the address
	mu.Unlock()
	if n, err := env.queue.RequeueDead(t.Context(), relay.Filter{}); n != 1 || err != nil {
		t.Fatal(n, err)
	}
	env.runUntil(t, "the requeued event", func() bool { st := env.stats(t); return st.Depth == 0 && st.Dead == 0 })
	if sent != 1 {
		t.Errorf("after the requeue %d emails sent, want 1", sent)
	}

	// A route refuses for good, another for now; a reload removes the
	// first; the second then takes the email: the event is done, not dead.
	cfg2 := testConfig(t)
	// The retry comes well after the reload below.
	cfg2.Retry.Initial, cfg2.Retry.Max = 2*time.Second, 2*time.Second // room on a loaded machine (300 ms once was not)
	cfg2.Routes = []config.Route{{Name: "bad", To: []string{"x@example.com"}, Continue: true}, {Name: "good", To: []string{"a@example.com"}}}
	tries := 0
	reloaded := make(chan struct{})
	env2 := newTestEnv(t, cfg2, withSender(&fakeSender{send: func(_ context.Context, m *relay.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if m.Route == "bad" {
			return reply(550, "5.1.1 no such user")
		}
		tries++
		if tries == 1 {
			return reply(451, "4.3.0 later")
		}
		select {
		case <-reloaded:
		default:
			t.Error("the retry came before the reload")
		}
		return nil
	}}))
	env2.post(t, formType, string(readTestdata(t, "sms.form")))
	cfg3 := *cfg2
	cfg3.Routes = []config.Route{{Name: "good", To: []string{"a@example.com"}}}
	go func() {
		for {
			mu.Lock()
			n := tries
			mu.Unlock()
			if n >= 1 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		env2.reload(t, &cfg3)
		close(reloaded)
	}()
	env2.runUntil(t, "the event settled", func() bool { return env2.stats(t).Depth == 0 })
	if st := env2.stats(t); st.Dead != 0 {
		t.Errorf("buried for a route the reload removed: %+v", st)
	}
}

// TestDeferredRecipientsGetTheRetryAlone: the server takes an email for a
// and defers b; the retry goes to b only and the event is then done.
func TestDeferredRecipientsGetTheRetryAlone(t *testing.T) {
	cfg := testConfig(t)
	cfg.Retry.Initial, cfg.Retry.Max = time.Millisecond, time.Millisecond
	cfg.Routes = []config.Route{{Name: "team", To: []string{"a@example.com", "b@example.com"}}}
	var mu sync.Mutex
	var envelopes [][]string
	env := newTestEnv(t, cfg, withSender(&fakeSender{send: func(_ context.Context, m *relay.Message) error {
		mu.Lock()
		defer mu.Unlock()
		envelopes = append(envelopes, m.Envelope)
		if len(envelopes) == 1 {
			return &relay.PartialError{Later: []string{"b@example.com"}, Err: &textproto.Error{Code: 452, Msg: "4.2.2 mailbox full"}}
		}
		return nil
	}}))
	env.post(t, formType, string(readTestdata(t, "sms.form")))
	env.runUntil(t, "the event done", func() bool { return env.stats(t).Depth == 0 })
	mu.Lock()
	defer mu.Unlock()
	if len(envelopes) != 2 || envelopes[0] != nil || !slices.Equal(envelopes[1], []string{"b@example.com"}) {
		t.Errorf("envelopes %q, want everyone, then b alone", envelopes)
	}
	if st := env.stats(t); st.Dead != 0 {
		t.Errorf("%+v", st)
	}
}
