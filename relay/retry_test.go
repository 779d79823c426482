package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"testing"
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
		{"M365 basic auth disabled", reply(535, "5.7.139 Authentication unsuccessful"), Config},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, Temporary},
		{"timeout", context.DeadlineExceeded, Temporary},
		{"connection lost mid-DATA", fmt.Errorf("smtp DATA: %w", io.ErrUnexpectedEOF), Temporary},
		{"certificate not trusted", &tls.CertificateVerificationError{Err: errors.New("unknown authority")}, Temporary},
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

func TestSMTPReply(t *testing.T) {
	code, enhanced := SMTPReply(fmt.Errorf("wrapped: %w", &textproto.Error{Code: 550, Msg: "5.1.1 <x@example.com>: user unknown"}))
	if code != 550 || enhanced != "5.1.1" {
		t.Errorf("SMTPReply = %d %q, want 550 5.1.1", code, enhanced)
	}
	if code, enhanced := SMTPReply(errors.New("dial tcp: refused")); code != 0 || enhanced != "" {
		t.Errorf("SMTPReply of a network error = %d %q, want 0 \"\"", code, enhanced)
	}
}
