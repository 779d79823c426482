package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"testing"

	"github.com/wneessen/go-mail"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

func TestClassify(t *testing.T) {
	reply := func(code int, msg string) error {
		return fmt.Errorf("smtp RCPT: %w", &textproto.Error{Code: code, Msg: msg})
	}
	tests := []struct {
		name string
		err  error
		want relay.ErrorClass
	}{
		{"451 greylisting", reply(451, "4.7.1 greylisted, try again"), relay.Temporary},
		{"421 service closing", reply(421, "4.3.2 shutting down"), relay.Temporary},
		{"452 mailbox full", reply(452, "4.2.2 over quota"), relay.Temporary},
		{"550 no such user", reply(550, "5.1.1 user unknown"), relay.Permanent},
		{"552 at DATA", reply(552, "5.3.4 message too big"), relay.Permanent},
		{"554 without enhanced code", reply(554, "rejected"), relay.Permanent},
		{"Gmail daily limit 5.4.5 holds the queue", reply(550, "5.4.5 Daily user sending quota exceeded."), relay.Quota},
		{"SES quota, not its throttling", reply(454, "Throttling failure: Daily message quota exceeded"), relay.Quota},
		{"535 bad credentials", reply(535, "5.7.8 Username and Password not accepted"), relay.Config},
		{"535 without enhanced code", reply(535, "authentication failed"), relay.Config},
		{"policy 5.7.1 is permanent", reply(554, "5.7.1 Relay access denied"), relay.Permanent},
		{"Gmail web login required", reply(534, "5.7.14 Please log in via your web browser"), relay.Config},
		{"auth required", reply(530, "5.7.0 Authentication required"), relay.Config},
		{"throttled, not a login problem", reply(421, "4.7.0 Try again later, closing connection."), relay.Throttled},
		{"a multi-line throttling reply", reply(421, "4.7.0 Try again later,\n4.7.0 closing connection."), relay.Throttled},
		// One recipient's mailbox, not hookmail's pace: retried for that
		// recipient at the backoff, counted, never a pace cut.
		{"Workspace relay's limit is a throttle", reply(450, "4.2.1 Peak SMTP relay limit exceeded for customer. This is a temporary error."), relay.Throttled},
		{"Gmail's busy mailbox is temporary", reply(450, "4.2.1 The user you are trying to contact is receiving mail too\n4.2.1 quickly. Please resend your message at a later time."), relay.Temporary},
		{"anvil at the greeting", &connectError{host: "h", port: 25, err: &textproto.Error{Code: 421, Msg: "4.7.0 mx.example.com Error: too many connections from 192.0.2.1"}}, relay.Throttled},
		{"a 5xx that says rate limit is no throttle", reply(550, "5.7.1 rate limit policy refuses this message"), relay.Permanent},
		{"policy refusal of one message", reply(550, "5.7.0 Message rejected as spam"), relay.Permanent},
		{"M365 basic auth disabled", reply(535, "5.7.139 Authentication unsuccessful"), relay.Config},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, relay.Temporary},
		{"timeout", context.DeadlineExceeded, relay.Temporary},
		{"connection lost mid-DATA", fmt.Errorf("smtp DATA: %w", io.ErrUnexpectedEOF), relay.Temporary},
		// What no retry fixes until smtp.* or the server is: config errors.
		{"certificate not trusted", &tls.CertificateVerificationError{Err: errors.New("unknown authority")}, relay.Config},
		{"host does not resolve", dialErr(&net.DNSError{Err: "no such host", Name: "smtp.example.invalid", IsNotFound: true}), relay.Config},
		{"DNS timeout", dialErr(&net.DNSError{Err: "i/o timeout", Name: "smtp.example.com", IsTimeout: true}), relay.Temporary},
		{"STARTTLS not offered", errors.New(`smtp connect h:587: STARTTLS mode set to: "TLSMandatory", but target host does not support STARTTLS`), relay.Config},
		{"454 to STARTTLS", &startTLSError{err: &textproto.Error{Code: 454, Msg: "4.7.0 TLS not available due to local problem"}}, relay.Config},
		{"502 to STARTTLS is not permanent", &startTLSError{err: &textproto.Error{Code: 502, Msg: "5.5.1 not implemented"}}, relay.Config},
		{"454 elsewhere is temporary", reply(454, "4.3.0 try again later"), relay.Temporary},
		{"auto finds no mechanism", fmt.Errorf("smtp connect: %w", mail.ErrNoSupportedAuthDiscovered), relay.Config},
		{"smtp.auth not offered", fmt.Errorf("smtp connect: %w", mail.ErrCramMD5AuthNotSupported), relay.Config},
		{"no AUTH offered (go-mail)", errors.New("smtp connect h:25: server does not support SMTP AUTH"), relay.Config},
		{"no AUTH offered (clearLogin)", fmt.Errorf("smtp connect: %w", errNoAuthOffered), relay.Config},
		{"5xx before any message", &connectError{host: "h", port: 25, err: &textproto.Error{Code: 554, Msg: "5.7.1 blocked"}}, relay.Config},
		{"421 before any message", &connectError{host: "h", port: 25, err: &textproto.Error{Code: 421, Msg: "4.3.2 busy"}}, relay.Temporary},
		{"504 to AUTH", &connectError{host: "h", port: 25, err: fmt.Errorf("SMTP AUTH failed: %w", &textproto.Error{Code: 504, Msg: "5.5.4 unrecognized"})}, relay.Config},
		// MAIL FROM is smtp.from for every email: refused for good, it is
		// the setup's fault, and must not bury every event.
		{"sender refused for good", &senderError{err: reply(550, "5.7.60 SMTP; Client does not have permissions to send as this sender")}, relay.Config},
		{"sender refused for now", &senderError{err: reply(451, "4.3.0 try again later")}, relay.Temporary},
		{"quota at MAIL FROM", &senderError{err: reply(550, "5.4.5 Daily user sending quota exceeded.")}, relay.Quota},
		{"template error", relay.PermanentErr(errors.New("render html: bad")), relay.Permanent},
		{"outbox disk full", errors.New("outbox: write: no space left on device"), relay.Temporary},
	}
	replies, err := newReplyTable(config.SMTP{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := replies.classify(tt.err); got != tt.want {
				t.Errorf("classify(%v) = %s, want %s", tt.err, got, tt.want)
			}
		})
	}
}

// TestReplyTables: every built-in pattern's example is a reply of its
// kind, a server's own pattern in smtp.throttle_replies or
// smtp.quota_replies adds to them, and the labels of a reply stay bounded.
func TestReplyTables(t *testing.T) {
	replies, err := newReplyTable(config.SMTP{
		ThrottleReplies: []string{`^451 4\.4\.\d+ slow down`},
		QuotaReplies:    []string{`^550 5\.7\.60 `},
	})
	if err != nil {
		t.Fatal(err)
	}
	reply := func(line string) error {
		code, msg, _ := strings.Cut(line, " ")
		n, _ := strconv.Atoi(code)
		return fmt.Errorf("smtp MAIL FROM: %w", &textproto.Error{Code: n, Msg: msg})
	}
	for _, tc := range []struct {
		patterns []replyPattern
		want     relay.ErrorClass
	}{{builtinThrottle, relay.Throttled}, {builtinQuota, relay.Quota}} {
		for _, p := range tc.patterns {
			if got := replies.classify(reply(p.example)); got != tc.want {
				t.Errorf("%s (%s): %s, want %s", p.example, p.from, got, tc.want)
			}
		}
	}
	for line, want := range map[string]relay.ErrorClass{
		"451 4.4.1 Slow down please":             relay.Throttled,
		"550 5.7.60 Sending limit of the tenant": relay.Quota,
		"451 4.4.1 try once more":                relay.Temporary,
	} {
		if got := replies.classify(reply(line)); got != want {
			t.Errorf("%s: %s, want %s", line, got, want)
		}
	}
	if _, err := newReplyTable(config.SMTP{QuotaReplies: []string{"ok", "("}}); err == nil || !strings.HasPrefix(err.Error(), "smtp.quota_replies[1]: ") {
		t.Errorf("a pattern that does not compile: %v, want an error naming smtp.quota_replies[1]", err)
	}
	for line, want := range map[string][2]string{
		"421 4.7.28 rate limited":     {"421", "4.7"},
		"454 Throttling failure":      {"454", "none"},
		"999 9.99.1 made up":          {"other", "none"},
		"450 4.123.4 a large subject": {"450", "none"},
	} {
		if code, enhanced := replyLabels(reply(line)); code != want[0] || enhanced != want[1] {
			t.Errorf("labels of %q: %s %s, want %s %s", line, code, enhanced, want[0], want[1])
		}
	}
}

func dialErr(err error) error {
	return fmt.Errorf("smtp connect: %w", &net.OpError{Op: "dial", Net: "tcp", Err: err})
}

// TestHint: every config error has a hint naming the key to fix; a 454 to
// STARTTLS does not blame the password; other errors have none.
func TestHint(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string // in the hint; "" for no hint
	}{
		{"certificate", &tls.CertificateVerificationError{Err: errors.New("unknown authority")}, "smtp.ca_file"},
		{"no such host", dialErr(&net.DNSError{Err: "no such host", Name: "smtp.example.invalid", IsNotFound: true}), `smtp.host "smtp.example.invalid" does not resolve`},
		{"no STARTTLS", errors.New(`STARTTLS mode set to: "TLSMandatory", but target host does not support STARTTLS`), "smtp.tls: tls"},
		{"454 to STARTTLS", &startTLSError{err: &textproto.Error{Code: 454, Msg: "4.7.0 TLS not available due to local problem"}}, "cannot start TLS"},
		{"no common mechanism", mail.ErrNoSupportedAuthDiscovered, "smtp.auth"},
		{"no AUTH", errNoAuthOffered, "smtp.username"},
		{"login refused", &textproto.Error{Code: 535, Msg: "5.7.8 Username and Password not accepted"}, "smtp.password"},
		{"greylisting", &textproto.Error{Code: 451, Msg: "4.7.1 try again"}, ""},
		{"no such user", &textproto.Error{Code: 550, Msg: "5.1.1 user unknown"}, ""},
		{"DNS timeout", dialErr(&net.DNSError{Err: "i/o timeout", Name: "smtp.example.com", IsTimeout: true}), ""},
		{"connection refused", dialErr(errors.New("connection refused")), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hint := hint(tt.err)
			if tt.want == "" {
				if hint != "" {
					t.Errorf("hint(%v) = %q, want none", tt.err, hint)
				}
				return
			}
			if !strings.Contains(hint, tt.want) || !strings.Contains(hint, "smtp.") {
				t.Errorf("hint(%v) = %q, want it to name the key (%q)", tt.err, hint, tt.want)
			}
			if tt.name == "454 to STARTTLS" && strings.Contains(hint, "smtp.password") {
				t.Errorf("a 454 to STARTTLS blames the password: %q", hint)
			}
		})
	}
}

func TestSMTPReply(t *testing.T) {
	code, enhanced := SMTPReply(fmt.Errorf("wrapped: %w", &textproto.Error{Code: 550, Msg: "5.1.1 <x@example.com>: user unknown"}))
	if code != 550 || enhanced != "5.1.1" {
		t.Errorf("SMTPReply = %d %q, want 550 5.1.1", code, enhanced)
	}
	if code, enhanced := SMTPReply(errors.New("dial tcp: refused")); code != 0 || enhanced != "" {
		t.Errorf("SMTPReply of a network error = %d %q, want 0 \"\"", code, enhanced)
	}
}

// TestQuotaAtMailFromHasNoSenderHint: a quota reply to MAIL FROM is quota,
// and says nothing of smtp.from, which is not what needs fixing; a refusal
// for good there is config, and names it.
func TestQuotaAtMailFromHasNoSenderHint(t *testing.T) {
	replies, err := newReplyTable(config.SMTP{})
	if err != nil {
		t.Fatal(err)
	}
	quota := replies.classified(&senderError{err: &textproto.Error{Code: 550, Msg: "5.4.5 Daily user sending quota exceeded."}})
	if relay.Classify(quota) != relay.Quota || relay.Hint(quota) != "" {
		t.Errorf("quota at MAIL FROM: %s, hint %q; want quota and no hint", relay.Classify(quota), relay.Hint(quota))
	}
	refused := replies.classified(&senderError{err: &textproto.Error{Code: 550, Msg: "5.7.60 not allowed to send as this sender"}})
	if relay.Classify(refused) != relay.Config || !strings.Contains(relay.Hint(refused), "smtp.from") {
		t.Errorf("sender refused at MAIL FROM: %s, hint %q; want config naming smtp.from", relay.Classify(refused), relay.Hint(refused))
	}
}
