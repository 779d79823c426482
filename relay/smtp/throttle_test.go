package smtp

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/smtp/smtptest"
)

// TestSMTPThrottleReplies: a 421 that asks to slow down, on a pooled
// connection, is the server's throttling, not an idle connection it
// closed: the send is not tried again at once, and comes back throttled. A
// quota reply to RCPT holds the email instead of refusing the recipient for
// good. Both are counted by code.
func TestSMTPThrottleReplies(t *testing.T) {
	sink := smtptest.NewSink(t)
	s, _ := newTestSMTPSender(t, sinkConfig(t, sink))
	if err := s.Send(t.Context(), testMessage("a@example.com")); err != nil {
		t.Fatal(err)
	}
	sink.AnswerMail(func(n int) *gosmtp.SMTPError {
		return &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 7, 0}, Message: "Try again later, closing connection."}
	})
	err := s.Send(t.Context(), testMessage("a@example.com"))
	if c := relay.Classify(err); c != relay.Throttled || errors.Is(err, errStale) {
		t.Fatalf("Send: %v (class %s); want throttled, not a stale connection", err, c)
	}
	if tries := sink.Tries(); tries != 2 {
		t.Errorf("the server saw %d MAIL FROM, want 2: the throttled email is not sent again at once", tries)
	}
	sink.AnswerMail(nil)
	sink.RefuseRecipient("a@example.com", &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 4, 5}, Message: "Daily user sending quota exceeded."})
	err = s.Send(t.Context(), testMessage("a@example.com"))
	if c := relay.Classify(err); c != relay.Quota {
		t.Fatalf("Send: %v (class %s); want quota, not the recipient refused for good", err, c)
	}
	for _, tt := range []struct {
		kind, code, enhanced string
	}{{"throttle", "421", "4.7"}, {"quota", "550", "5.4"}} {
		if got := testutil.ToFloat64(s.metrics.throttles.WithLabelValues(tt.kind, tt.code, tt.enhanced)); got != 1 {
			t.Errorf("hookmail_smtp_throttle_replies_total{kind=%q,code=%q,enhanced=%q} = %v, want 1", tt.kind, tt.code, tt.enhanced, got)
		}
	}
}

// TestReadmeListsTheReplyTables: the README's tables of throttling and
// quota replies list every built-in pattern, as written here.
func TestReadmeListsTheReplyTables(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := strings.ReplaceAll(string(b), `\|`, "|") // a | in a table cell
	for _, p := range append(slices.Clone(builtinThrottle), builtinQuota...) {
		if row := fmt.Sprintf("| `%s` | %s | %s |", p.pattern, p.example, p.from); !strings.Contains(readme, row) {
			t.Errorf("the README lacks the row\n%s", row)
		}
	}
}
