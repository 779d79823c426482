package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"testing"

	"github.com/wneessen/go-mail"
)

func TestClassify(t *testing.T) {
	reply := func(code int, msg string) error {
		return fmt.Errorf("smtp RCPT: %w", &textproto.Error{Code: code, Msg: msg})
	}
	tests := []struct {
		name string
		err  error
		want ErrorClass
	}{
		{"451 greylisting", reply(451, "4.7.1 greylisted, try again"), Temporary},
		{"421 service closing", reply(421, "4.3.2 shutting down"), Temporary},
		{"452 mailbox full", reply(452, "4.2.2 over quota"), Temporary},
		{"550 no such user", reply(550, "5.1.1 user unknown"), Permanent},
		{"552 at DATA", reply(552, "5.3.4 message too big"), Permanent},
		{"554 without enhanced code", reply(554, "rejected"), Permanent},
		{"Gmail daily limit 5.4.5", reply(550, "5.4.5 Daily user sending quota exceeded."), Temporary},
		{"535 bad credentials", reply(535, "5.7.8 Username and Password not accepted"), Config},
		{"535 without enhanced code", reply(535, "authentication failed"), Config},
		{"policy 5.7.1 is permanent", reply(554, "5.7.1 Relay access denied"), Permanent},
		{"Gmail web login required", reply(534, "5.7.14 Please log in via your web browser"), Config},
		{"auth required", reply(530, "5.7.0 Authentication required"), Config},
		{"throttled, not a login problem", reply(421, "4.7.0 Try again later, closing connection."), Temporary},
		{"policy refusal of one message", reply(550, "5.7.0 Message rejected as spam"), Permanent},
		{"M365 basic auth disabled", reply(535, "5.7.139 Authentication unsuccessful"), Config},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, Temporary},
		{"timeout", context.DeadlineExceeded, Temporary},
		{"connection lost mid-DATA", fmt.Errorf("smtp DATA: %w", io.ErrUnexpectedEOF), Temporary},
		// What no retry fixes until smtp.* or the server is: config errors.
		{"certificate not trusted", &tls.CertificateVerificationError{Err: errors.New("unknown authority")}, Config},
		{"host does not resolve", dialErr(&net.DNSError{Err: "no such host", Name: "smtp.example.invalid", IsNotFound: true}), Config},
		{"DNS timeout", dialErr(&net.DNSError{Err: "i/o timeout", Name: "smtp.example.com", IsTimeout: true}), Temporary},
		{"STARTTLS not offered", errors.New(`smtp connect h:587: STARTTLS mode set to: "TLSMandatory", but target host does not support STARTTLS`), Config},
		{"454 to STARTTLS", &startTLSError{err: &textproto.Error{Code: 454, Msg: "4.7.0 TLS not available due to local problem"}}, Config},
		{"502 to STARTTLS is not permanent", &startTLSError{err: &textproto.Error{Code: 502, Msg: "5.5.1 not implemented"}}, Config},
		{"454 elsewhere is temporary", reply(454, "4.3.0 try again later"), Temporary},
		{"auto finds no mechanism", fmt.Errorf("smtp connect: %w", mail.ErrNoSupportedAuthDiscovered), Config},
		{"smtp.auth not offered", fmt.Errorf("smtp connect: %w", mail.ErrCramMD5AuthNotSupported), Config},
		{"no AUTH offered (go-mail)", errors.New("smtp connect h:25: server does not support SMTP AUTH"), Config},
		{"no AUTH offered (clearLogin)", fmt.Errorf("smtp connect: %w", errNoAuthOffered), Config},
		{"5xx before any message", &connectError{host: "h", port: 25, err: &textproto.Error{Code: 554, Msg: "5.7.1 blocked"}}, Config},
		{"421 before any message", &connectError{host: "h", port: 25, err: &textproto.Error{Code: 421, Msg: "4.3.2 busy"}}, Temporary},
		{"504 to AUTH", &connectError{host: "h", port: 25, err: fmt.Errorf("SMTP AUTH failed: %w", &textproto.Error{Code: 504, Msg: "5.5.4 unrecognized"})}, Config},
		{"template error", PermanentErr(errors.New("render html: bad")), Permanent},
		{"outbox disk full", errors.New("outbox: write: no space left on device"), Temporary},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err); got != tt.want {
				t.Errorf("Classify(%v) = %s, want %s", tt.err, got, tt.want)
			}
		})
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
			hint := Hint(tt.err)
			if tt.want == "" {
				if hint != "" {
					t.Errorf("Hint(%v) = %q, want none", tt.err, hint)
				}
				return
			}
			if !strings.Contains(hint, tt.want) || !strings.Contains(hint, "smtp.") {
				t.Errorf("Hint(%v) = %q, want it to name the key (%q)", tt.err, hint, tt.want)
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
