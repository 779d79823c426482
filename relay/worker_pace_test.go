package relay_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/relaytest"
	"github.com/hookmail/hookmail/relay/smtp"
	"github.com/hookmail/hookmail/relay/smtp/smtptest"
)

// smsForm is a gateway's SMS webhook with text from phone.
func smsForm(phone, text string) string {
	return url.Values{"secret": {testSecret}, "type": {"sms"}, "data[phone]": {phone}, "data[message]": {text}}.Encode()
}

// recorder is a sender that records what it sends, and when.
type recorder struct {
	mu     sync.Mutex
	sent   []*relay.Message
	at     []time.Time
	onSend func(n int) // called with how many were sent before, if set
}

func (r *recorder) Send(_ context.Context, m *relay.Message) error {
	r.mu.Lock()
	n := len(r.sent)
	r.sent, r.at = append(r.sent, m), append(r.at, time.Now())
	onSend := r.onSend
	r.mu.Unlock()
	if onSend != nil {
		onSend(n)
	}
	return nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sent)
}

// TestPacedQueueGoesByPriority: while smtp.rate paces the emails, an
// event of a route with a higher priority that arrives after others are
// queued takes the next slot: the worker whose turn it is leases only once
// the slot is free, and the queue gives it the highest priority.
func TestPacedQueueGoesByPriority(t *testing.T) {
	cfg := testConfig(t)
	// A slot every 500 ms: the code must be stored before the second, and
	// a busy machine may take a while between the first send and its post.
	cfg.SMTP.Rate = "2/s"
	cfg.Routes = []config.Route{
		{Name: "otp", Match: map[string]string{"text": "code"}, To: []string{"otp@example.com"}, Priority: 9},
		{Name: "everything", To: []string{"ops@example.com"}},
	}
	rec := &recorder{}
	env := newTestEnv(t, cfg, withSender(rec))
	for i := range 8 {
		env.post(t, formType, smsForm("+15550001111", fmt.Sprintf("hello %d", i)))
	}
	rec.onSend = func(n int) {
		if n == 0 { // queued after the others, while the first goes out
			if r := post(t, env.handler, formType, smsForm("+15550002222", "your code is 123456")); r.Code != 200 {
				t.Errorf("post the code: %d %s", r.Code, r.Body)
			}
		}
	}
	env.runUntil(t, "9 emails", func() bool { return rec.count() == 9 })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.sent[1].Route != "otp" {
		var order []string
		for _, m := range rec.sent {
			order = append(order, m.Route)
		}
		t.Errorf("routes in the order sent: %v; want the code second, in the first slot after it came", order)
	}
	if most := relaytest.MaxInWindow(rec.at, time.Second); most > 11 {
		t.Errorf("%d emails within a second at smtp.rate 10/s", most)
	}
}

// TestRouteRatePutsEmailsBack: a route's own rate holds its emails back
// in the queue, not in the workers: another route's emails go out
// meanwhile, and no put-back counts as a failed attempt.
func TestRouteRatePutsEmailsBack(t *testing.T) {
	cfg := testConfig(t)
	cfg.Routes = []config.Route{
		{Name: "chatty", Match: map[string]string{"from": "+15550001111"}, To: []string{"a@example.com"}, Rate: "10/s"},
		{Name: "everything", To: []string{"ops@example.com"}},
	}
	rec := &recorder{}
	env := newTestEnv(t, cfg, withSender(rec))
	for i := range 15 {
		env.post(t, formType, smsForm("+15550001111", fmt.Sprintf("chatty %d", i)))
	}
	for i := range 5 {
		env.post(t, formType, smsForm("+15550002222", fmt.Sprintf("other %d", i)))
	}
	env.runUntil(t, "20 emails", func() bool { return rec.count() == 20 })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var chatty []time.Time
	lastOther := 0
	for i, m := range rec.sent {
		if m.Route == "chatty" {
			chatty = append(chatty, rec.at[i])
		} else {
			lastOther = i
		}
	}
	if most := relaytest.MaxInWindow(chatty, time.Second); most > 11 {
		t.Errorf("%d of the route's emails within a second at its rate 10/s", most)
	}
	if lastOther > 10 {
		t.Errorf("the other route's last email went out %dth; want it before the route's backlog", lastOther+1)
	}
	if got := env.metric(t, "hookmail_emails_failed_total", "type", "sms", "reason", "temporary"); got != 0 {
		t.Errorf("%v failed attempts, want none: a put-back is no attempt", got)
	}
}

// sinkSender is the SMTP sender to sink, and its metrics' registry.
func sinkSender(t *testing.T, cfg *config.Config, sink *smtptest.Sink) (*smtp.Sender, *prometheus.Registry) {
	t.Helper()
	cfg.SMTP.Host, cfg.SMTP.Port, cfg.SMTP.TLS = "127.0.0.1", sink.Port, config.TLSNone
	cfg.SMTP.Timeout = 5 * time.Second
	reg := prometheus.NewRegistry()
	s, err := smtp.New(cfg.SMTP, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, reg
}

// TestThrottlingServer: a mail server that answers 421 4.7.0 Try again
// later to every third message. The pace drops; every event arrives once,
// none goes to the dead letters, and no throttled attempt counts as one.
func TestThrottlingServer(t *testing.T) {
	sink := smtptest.NewSink(t)
	sink.AnswerMail(func(n int) *gosmtp.SMTPError {
		if n%3 == 0 {
			return &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 7, 0}, Message: "Try again later, closing connection."}
		}
		return nil
	})
	cfg := testConfig(t)
	sender, reg := sinkSender(t, cfg, sink)
	env := newTestEnv(t, cfg, withSender(sender))
	const events = 5
	for i := range events {
		env.post(t, formType, smsForm("+15550001111", fmt.Sprintf("hello %d", i)))
	}
	var pace float64
	env.runUntil(t, "every email", func() bool {
		if len(sink.Counts()) < events {
			return false
		}
		pace = env.metric(t, "hookmail_smtp_pace_emails_per_second")
		return true
	})
	for id, n := range sink.Counts() {
		if n != 1 {
			t.Errorf("%s arrived %d times, want once", id, n)
		}
	}
	if math.IsInf(pace, 1) || pace <= 0 {
		t.Errorf("pace %v after the server throttled, want a finite pace", pace)
	}
	if dead := env.deadLetters(t); len(dead) != 0 {
		t.Errorf("%d dead letters, want none", len(dead))
	}
	if got := env.metric(t, "hookmail_emails_failed_total", "type", "sms", "reason", "throttled"); got < 1 {
		t.Errorf("%v throttled attempts counted, want at least 1", got)
	}
	if got := env.metric(t, "hookmail_emails_failed_total", "type", "sms", "reason", "temporary"); got != 0 {
		t.Errorf("%v temporary failures, want none: a throttled attempt is not one", got)
	}
	if got := counterSum(t, reg, "hookmail_smtp_throttle_replies_total"); got < 1 {
		t.Errorf("hookmail_smtp_throttle_replies_total %v, want at least 1", got)
	}
}

// TestQuotaReplyHoldsTheQueue: a 550 5.4.5 quota reply holds every email
// until smtp.quota_reset; then they all arrive, none buried.
func TestQuotaReplyHoldsTheQueue(t *testing.T) {
	sink := smtptest.NewSink(t)
	var mu sync.Mutex
	var quotaAt time.Time
	sink.AnswerMail(func(n int) *gosmtp.SMTPError {
		if n != 2 {
			return nil
		}
		mu.Lock()
		quotaAt = time.Now()
		mu.Unlock()
		return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 4, 5}, Message: "Daily user sending quota exceeded."}
	})
	cfg := testConfig(t)
	cfg.SMTP.Workers = 1 // no other email in flight when the reply comes
	cfg.SMTP.QuotaReset = "1s"
	sender, _ := sinkSender(t, cfg, sink)
	env := newTestEnv(t, cfg, withSender(sender))
	const events = 4
	for i := range events {
		env.post(t, formType, smsForm("+15550001111", fmt.Sprintf("hello %d", i)))
	}
	var held float64
	env.runUntil(t, "every email", func() bool {
		if h := env.metric(t, "hookmail_smtp_quota_hold_seconds"); h > held {
			held = h
		}
		return len(sink.Counts()) == events
	})
	for id, n := range sink.Counts() {
		if n != 1 {
			t.Errorf("%s arrived %d times, want once", id, n)
		}
	}
	if dead := env.deadLetters(t); len(dead) != 0 {
		t.Errorf("%d dead letters, want none", len(dead))
	}
	msgs := sink.Messages()
	mu.Lock()
	defer mu.Unlock()
	if quotaAt.IsZero() || len(msgs) != events || msgs[1].At.Sub(quotaAt) < time.Second {
		t.Errorf("the email after the quota reply arrived %s after it, want a second (smtp.quota_reset) at least", msgs[1].At.Sub(quotaAt))
	}
	if held <= 0 || held > 1 {
		t.Errorf("hookmail_smtp_quota_hold_seconds peaked at %v during the hold, want up to 1", held)
	}
	if got := env.metric(t, "hookmail_emails_failed_total", "type", "sms", "reason", "quota"); got != 1 {
		t.Errorf("%v quota replies counted, want 1", got)
	}
}

// counterSum sums every series of the counter name in reg.
func counterSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range families {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
