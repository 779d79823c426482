package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/mail"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hookmail/hookmail/config"
)

// smallBusiness is the README's routing example.
func smallBusiness() []config.Route {
	return []config.Route{
		{Name: "drop-otp", Match: map[string]string{"type": "sms", "message": `(?i)\bOTP\b|verification code`}, Drop: true},
		{Name: "sales-sim1", Match: map[string]string{"type": "sms", "sim": "1"}, To: []string{"sales@example.com"}},
		{Name: "support-sim2", Match: map[string]string{"type": "sms", "sim": "2"}, To: []string{"support@example.com"}, Continue: true},
		{Name: "audit-sim2", Match: map[string]string{"sim": "/^2$/"}, To: []string{"audit@example.com"}},
		{Name: "owner-whatsapp", Match: map[string]string{"type": "whatsapp", "wid": "+639760713666"}, To: []string{"owner@example.com"}},
		{Name: "facebook", Match: map[string]string{"type": "notifications", "package": `^com\.facebook\.`}, To: []string{"me@example.com"}},
		{Name: "default", To: []string{"ops@example.com"}},
	}
}

func TestRouterRules(t *testing.T) {
	r := NewRouter(smallBusiness())
	for _, tc := range []struct {
		name string
		ev   Event
		want []string
	}{
		{"sim 1 to sales", Event{Type: "sms", Data: map[string]string{"sim": "1", "message": "hello"}}, []string{"sales-sim1"}},
		{"sim 10 is not sim 1", Event{Type: "sms", Data: map[string]string{"sim": "10"}}, []string{"default"}},
		{"sim 2 continues to audit", Event{Type: "sms", Data: map[string]string{"sim": "2"}}, []string{"support-sim2", "audit-sim2"}},
		{"OTP dropped, case-insensitively", Event{Type: "sms", Data: map[string]string{"sim": "1", "message": "Your otp is 1234"}}, []string{"drop-otp"}},
		{"OTP inside a word is not", Event{Type: "sms", Data: map[string]string{"sim": "1", "message": "hotpot tonight"}}, []string{"sales-sim1"}},
		{"verification code dropped", Event{Type: "sms", Data: map[string]string{"message": "Your verification code: 9"}}, []string{"drop-otp"}},
		{"whatsapp of the owner's number", Event{Type: "whatsapp", Data: map[string]string{"wid": "+639760713666"}}, []string{"owner-whatsapp"}},
		{"whatsapp of another number", Event{Type: "whatsapp", Data: map[string]string{"wid": "+1555"}}, []string{"default"}},
		{"facebook by package regex", Event{Type: "notification", Data: map[string]string{"package": "com.facebook.katana"}}, []string{"facebook"}},
		{"a look-alike package", Event{Type: "notification", Data: map[string]string{"package": "comXfacebook.katana"}}, []string{"default"}},
		{"a field the event lacks", Event{Type: "ussd", Data: map[string]string{}}, []string{"default"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, rt := range r.Routes(&tc.ev) {
				got = append(got, rt.Name)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("routes %v, want %v", got, tc.want)
			}
		})
	}
	if rt := r.Match(&Event{Type: "sms", Data: map[string]string{"message": "OTP 1"}}); rt != nil {
		t.Errorf("Match of a dropped event = %s, want none", rt.Name)
	}
	noDefault := NewRouter(smallBusiness()[:6])
	if rts := noDefault.Routes(&Event{Type: "ussd"}); len(rts) != 0 {
		t.Errorf("without a default: %v, want none", rts)
	}
}

// TestDeliverEmailsEveryRouteOnceAcrossRetries: an event two routes take,
// where one route's server refuses for now: the retry emails only the route
// still owed; a dropped event is acked and never emailed.
func TestDeliverEmailsEveryRouteOnceAcrossRetries(t *testing.T) {
	cfg := testConfig(t)
	cfg.Routes = smallBusiness()
	cfg.Retry.Initial, cfg.Retry.Max = time.Millisecond, time.Millisecond
	env := newTestEnv(t, cfg)
	var mu sync.Mutex
	sent := map[string]int{}
	failAudit := 1
	env.relay.sender = &fakeSender{send: func(_ context.Context, m *Message) error {
		mu.Lock()
		defer mu.Unlock()
		if m.Route == "audit-sim2" && failAudit > 0 {
			failAudit--
			return errors.New("451 4.3.0 try later")
		}
		sent[m.Route]++
		return nil
	}}
	h := env.relay.Handler()
	post(t, h, formType, "secret="+testSecret+"&type=sms&data[id]=1&data[sim]=2&data[phone]=%2B1&data[message]=hi")
	post(t, h, formType, "secret="+testSecret+"&type=sms&data[id]=2&data[sim]=1&data[phone]=%2B1&data[message]=your+OTP+is+1")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = env.relay.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if st, _ := env.spool.Stats(t.Context()); st.Depth == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if sent["support-sim2"] != 1 || sent["audit-sim2"] != 1 || len(sent) != 2 {
		t.Errorf("emails by route %v, want support-sim2 and audit-sim2 once each", sent)
	}
	if got := testutil.ToFloat64(env.relay.metrics.dropped.WithLabelValues("drop-otp")); got != 1 {
		t.Errorf("dropped counted %v, want 1", got)
	}
	if st, _ := env.spool.Stats(t.Context()); st.Depth != 0 || st.Dead != 0 {
		t.Errorf("queue %+v, want empty", st)
	}
}

// TestThreadingOneConversation: three SMS from one number share one thread
// id and subject; another number is another thread; thread: false has none.
func TestThreadingOneConversation(t *testing.T) {
	r, err := NewRenderer("", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	route := &config.Route{Name: "r", To: []string{"a@example.com"}}
	sms := func(id, phone, msg string) *Event {
		return &Event{ID: id, Source: SourceGateway, Type: "sms", Data: map[string]string{"phone": phone, "message": msg}, Received: time.Now()}
	}
	var threads, subjects []string
	for i, msg := range []string{"hi", "are you there?", "call me"} {
		m, err := r.Render(sms(string(rune('a'+i)), "+639760713666", msg), route, "hookmail <h@example.com>")
		if err != nil {
			t.Fatal(err)
		}
		threads, subjects = append(threads, m.ThreadID), append(subjects, m.Subject)
		var eml bytes.Buffer
		if err := m.WriteEML(&eml); err != nil {
			t.Fatal(err)
		}
		parsed, err := mail.ReadMessage(&eml)
		if err != nil {
			t.Fatal(err)
		}
		want := "<" + m.ThreadID + ">"
		if parsed.Header.Get("References") != want || parsed.Header.Get("In-Reply-To") != want {
			t.Errorf("email %d: References %q In-Reply-To %q, want %q", i, parsed.Header.Get("References"), parsed.Header.Get("In-Reply-To"), want)
		}
		if parsed.Header.Get("Message-Id") == want {
			t.Error("the thread id is an email's own Message-ID")
		}
	}
	if threads[0] == "" || threads[0] != threads[1] || threads[1] != threads[2] {
		t.Errorf("thread ids %q, want one shared", threads)
	}
	if subjects[0] != "SMS from +639760713666" || subjects[0] != subjects[2] {
		t.Errorf("subjects %q, want one stable subject", subjects)
	}
	if strings.Contains(threads[0], "639760713666") {
		t.Errorf("thread id %s shows the phone number", threads[0])
	}
	other, _ := r.Render(sms("d", "+15550001", "hi"), route, "h@example.com")
	if other.ThreadID == threads[0] {
		t.Error("another number shares the thread")
	}
	off := false
	flat, _ := r.Render(sms("e", "+639760713666", "hi"), &config.Route{Name: "r", To: []string{"a@example.com"}, Thread: &off}, "h@example.com")
	if flat.ThreadID != "" || flat.Subject != "SMS from +639760713666: hi" {
		t.Errorf("thread: false gives thread %q subject %q", flat.ThreadID, flat.Subject)
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
			env := newTestEnv(t, cfg)
			var mu sync.Mutex
			tries := map[string]int{}
			env.relay.sender = &fakeSender{send: func(_ context.Context, m *Message) error {
				mu.Lock()
				defer mu.Unlock()
				tries[m.Route]++
				switch {
				case m.Route == perm:
					return &textproto.Error{Code: 550, Msg: "5.1.1 no such user"}
				case tries[m.Route] < 3:
					return &textproto.Error{Code: 451, Msg: "4.3.0 try later"}
				}
				return nil
			}}
			post(t, env.relay.Handler(), formType, string(readTestdata(t, "sms.form")))
			runUntil(t, env, "the event settled", func() bool {
				st, _ := env.spool.Stats(t.Context())
				return st.Depth == 0 && st.Dead == 1
			})
			mu.Lock()
			defer mu.Unlock()
			if tries[perm] != 1 || tries[temp] != 3 {
				t.Errorf("tries %v, want %s once and %s three times", tries, perm, temp)
			}
			dead, _ := env.spool.List(t.Context(), StateDead, 0)
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
	env := newTestEnv(t, cfg)
	var mu sync.Mutex
	refuse := true
	sent := 0
	env.relay.sender = &fakeSender{send: func(_ context.Context, m *Message) error {
		mu.Lock()
		defer mu.Unlock()
		if refuse {
			return &textproto.Error{Code: 550, Msg: "5.1.1 no such user"}
		}
		sent++
		return nil
	}}
	post(t, env.relay.Handler(), formType, string(readTestdata(t, "sms.form")))
	runUntil(t, env, "the dead letter", func() bool { st, _ := env.spool.Stats(t.Context()); return st.Dead == 1 })
	mu.Lock()
	refuse = false // the operator fixed the address
	mu.Unlock()
	if n, err := env.spool.RequeueDead(t.Context()); n != 1 || err != nil {
		t.Fatal(n, err)
	}
	runUntil(t, env, "the requeued event", func() bool { st, _ := env.spool.Stats(t.Context()); return st.Depth == 0 && st.Dead == 0 })
	if sent != 1 {
		t.Errorf("after the requeue %d emails sent, want 1", sent)
	}

	// A route refuses for good, another for now; a reload removes the
	// first; the second then takes the email: the event is done, not dead.
	cfg2 := testConfig(t)
	// The retry comes well after the reload below.
	cfg2.Retry.Initial, cfg2.Retry.Max = 300*time.Millisecond, 300*time.Millisecond
	cfg2.Routes = []config.Route{{Name: "bad", To: []string{"x@example.com"}, Continue: true}, {Name: "good", To: []string{"a@example.com"}}}
	env2 := newTestEnv(t, cfg2)
	tries := 0
	reloaded := make(chan struct{})
	env2.relay.sender = &fakeSender{send: func(_ context.Context, m *Message) error {
		mu.Lock()
		defer mu.Unlock()
		if m.Route == "bad" {
			return &textproto.Error{Code: 550, Msg: "5.1.1 no such user"}
		}
		tries++
		if tries == 1 {
			return &textproto.Error{Code: 451, Msg: "4.3.0 later"}
		}
		select {
		case <-reloaded:
		default:
			t.Error("the retry came before the reload")
		}
		return nil
	}}
	post(t, env2.relay.Handler(), formType, string(readTestdata(t, "sms.form")))
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
		if _, err := env2.relay.Reload(&cfg3); err != nil {
			t.Error(err)
		}
		close(reloaded)
	}()
	runUntil(t, env2, "the event settled", func() bool { st, _ := env2.spool.Stats(t.Context()); return st.Depth == 0 })
	if st, _ := env2.spool.Stats(t.Context()); st.Dead != 0 {
		t.Errorf("buried for a route the reload removed: %+v", st)
	}
}

// TestDeferredRecipientsGetTheRetryAlone: the server takes an email for a
// and defers b; the retry goes to b only and the event is then done.
func TestDeferredRecipientsGetTheRetryAlone(t *testing.T) {
	cfg := testConfig(t)
	cfg.Retry.Initial, cfg.Retry.Max = time.Millisecond, time.Millisecond
	cfg.Routes = []config.Route{{Name: "team", To: []string{"a@example.com", "b@example.com"}}}
	env := newTestEnv(t, cfg)
	var mu sync.Mutex
	var envelopes [][]string
	env.relay.sender = &fakeSender{send: func(_ context.Context, m *Message) error {
		mu.Lock()
		defer mu.Unlock()
		envelopes = append(envelopes, m.Envelope)
		if len(envelopes) == 1 {
			return &PartialError{Later: []string{"b@example.com"}, Err: &textproto.Error{Code: 452, Msg: "4.2.2 mailbox full"}}
		}
		return nil
	}}
	post(t, env.relay.Handler(), formType, string(readTestdata(t, "sms.form")))
	runUntil(t, env, "the event done", func() bool { st, _ := env.spool.Stats(t.Context()); return st.Depth == 0 })
	mu.Lock()
	defer mu.Unlock()
	if len(envelopes) != 2 || envelopes[0] != nil || !slices.Equal(envelopes[1], []string{"b@example.com"}) {
		t.Errorf("envelopes %q, want everyone, then b alone", envelopes)
	}
	if st, _ := env.spool.Stats(t.Context()); st.Dead != 0 {
		t.Errorf("%+v", st)
	}
}
