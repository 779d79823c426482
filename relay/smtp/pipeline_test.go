package smtp

import (
	"bufio"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

// pipelineServer is a bare SMTP server that offers PIPELINING and records,
// for each message, whether RCPT and DATA had arrived with MAIL (in the
// same write) before it answered MAIL. It refuses the recipients named in
// refuse with 550, and with "MAIL" there, MAIL itself (and the RCPTs
// after it with 503).
func pipelineServer(t *testing.T, refuse ...string) (port int, batched chan bool, got chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	batched, got = make(chan bool, 10), make(chan string, 10)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r, w := bufio.NewReader(c), bufio.NewWriter(c)
		say := func(lines ...string) {
			for _, l := range lines {
				w.WriteString(l + "\r\n")
			}
			w.Flush()
		}
		say("220 test ESMTP")
		var data strings.Builder
		inData, rcpts, mailRefused := false, 0, false
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if inData {
				if line == ".\r\n" {
					inData = false
					got <- data.String()
					data.Reset()
					say("250 2.0.0 queued as T1")
					continue
				}
				data.WriteString(line)
				continue
			}
			cmd := strings.ToUpper(strings.TrimSpace(line))
			switch {
			case strings.HasPrefix(cmd, "EHLO"):
				say("250-test", "250-PIPELINING", "250 8BITMIME")
			case strings.HasPrefix(cmd, "MAIL FROM:"):
				buffered, _ := r.Peek(r.Buffered())
				batched <- strings.Contains(string(buffered), "RCPT TO:") && strings.Contains(string(buffered), "DATA\r\n")
				rcpts, mailRefused = 0, slices.Contains(refuse, "MAIL")
				if mailRefused {
					say("550 5.7.1 sender refused")
				} else {
					say("250 2.1.0 ok")
				}
			case strings.HasPrefix(cmd, "RCPT TO:") && mailRefused:
				say("503 5.5.1 MAIL first")
			case strings.HasPrefix(cmd, "RCPT TO:"):
				refused := false
				for _, a := range refuse {
					refused = refused || strings.Contains(cmd, strings.ToUpper(a))
				}
				if refused {
					say("550 5.1.1 no such user")
				} else {
					rcpts++
					say("250 2.1.5 ok")
				}
			case cmd == "DATA":
				if rcpts == 0 {
					say("554 5.5.1 no valid recipients")
				} else {
					inData = true
					say("354 go ahead")
				}
			case cmd == "QUIT":
				say("221 bye")
				return
			default:
				say("250 ok")
			}
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, batched, got
}

// TestSMTPPipelinesTheEnvelope: to a server that offers PIPELINING, MAIL,
// every RCPT and DATA go out in one write, as Postfix's client sends
// them; a refused recipient still does not stop the others.
func TestSMTPPipelinesTheEnvelope(t *testing.T) {
	port, batched, got := pipelineServer(t, "nobody@example.com")
	cfg := smtpConfig(t, port, "", config.TLSNone)
	cfg.Username, cfg.Password = "", ""
	s, logs := newTestSMTPSender(t, cfg)
	m := testMessage("ops@example.com", "nobody@example.com")
	if err := s.Send(t.Context(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if !<-batched {
		t.Error("MAIL was answered before RCPT and DATA arrived: the envelope was not pipelined")
	}
	if body := <-got; !strings.Contains(body, "Subject: SMS from +1") {
		t.Errorf("the server got no message: %q", body)
	}
	if m.Receipt != "250 2.0.0 queued as T1" {
		t.Errorf("receipt %q, want the server's reply to the message", m.Receipt)
	}
	if !strings.Contains(logs.String(), "nobody@example.com") {
		t.Errorf("the refused recipient is not logged: %s", logs)
	}
}

// TestSMTPPipelinedAllRefused: when the server refuses every recipient
// and so the pipelined DATA, the error is the recipients' and no message
// is sent.
func TestSMTPPipelinedAllRefused(t *testing.T) {
	port, _, got := pipelineServer(t, "nobody@example.com", "audit@example.com")
	cfg := smtpConfig(t, port, "", config.TLSNone)
	cfg.Username, cfg.Password = "", ""
	s, _ := newTestSMTPSender(t, cfg)
	err := s.Send(t.Context(), testMessage("nobody@example.com"))
	if err == nil || !strings.Contains(err.Error(), "RCPT TO <nobody@example.com>") || !strings.Contains(err.Error(), "550") {
		t.Fatalf("Send = %v, want the recipient's 550", err)
	}
	select {
	case body := <-got:
		t.Errorf("a message was sent: %q", body)
	default:
	}
}

// TestSMTPPipelinedConnectionLost: a server that closes the connection
// after answering MAIL leaves the recipients and DATA unanswered: Send
// fails for now (a retry), never taking an unanswered RCPT as accepted.
func TestSMTPPipelinedConnectionLost(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		c.Write([]byte("220 test ESMTP\r\n"))
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			switch cmd := strings.ToUpper(line); {
			case strings.HasPrefix(cmd, "EHLO"):
				c.Write([]byte("250-test\r\n250 PIPELINING\r\n"))
			case strings.HasPrefix(cmd, "MAIL"):
				c.Write([]byte("250 2.1.0 ok\r\n"))
				return // gone before the RCPTs' replies
			default:
				c.Write([]byte("250 ok\r\n"))
			}
		}
	}()
	cfg := smtpConfig(t, ln.Addr().(*net.TCPAddr).Port, "", config.TLSNone)
	cfg.Username, cfg.Password = "", ""
	s, _ := newTestSMTPSender(t, cfg)
	err = s.Send(t.Context(), testMessage("ops@example.com")) // and the Bcc: two recipients
	if err == nil {
		t.Fatal("Send succeeded on a connection closed before any RCPT was answered")
	}
	if c := relay.Classify(err); c != relay.Temporary {
		t.Errorf("Send = %v (%s), want a temporary failure", err, c)
	}
}

// TestSMTPPipelinedRefusedMailCountsOneReply: after a refused MAIL, the
// server's 503s to the pipelined RCPTs and DATA are not counted as
// replies: the step-by-step exchange never draws them.
func TestSMTPPipelinedRefusedMailCountsOneReply(t *testing.T) {
	port, _, _ := pipelineServer(t, "MAIL")
	cfg := smtpConfig(t, port, "", config.TLSNone)
	cfg.Username, cfg.Password = "", ""
	s, _ := newTestSMTPSender(t, cfg)
	err := s.Send(t.Context(), testMessage("ops@example.com"))
	if err == nil || !strings.Contains(err.Error(), "550") {
		t.Fatalf("Send = %v, want MAIL's 550", err)
	}
	for code, want := range map[string]float64{"550": 1, "503": 0, "554": 0} {
		if got := testutil.ToFloat64(s.metrics.replies.WithLabelValues(code)); got != want {
			t.Errorf("replies counted with code %s: %v, want %v", code, got, want)
		}
	}
}

// TestSMTPManyRecipientsGoStepByStep: past maxPipelined recipients the
// envelope is not pipelined (RFC 2920 3.1: a batch larger than the TCP
// windows can deadlock), and every recipient still gets the email.
func TestSMTPManyRecipientsGoStepByStep(t *testing.T) {
	port, batched, got := pipelineServer(t)
	cfg := smtpConfig(t, port, "", config.TLSNone)
	cfg.Username, cfg.Password = "", ""
	s, _ := newTestSMTPSender(t, cfg)
	var to []string
	for i := range maxPipelined + 1 {
		to = append(to, fmt.Sprintf("r%d@example.com", i))
	}
	if err := s.Send(t.Context(), testMessage(to...)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if <-batched {
		t.Error("an envelope of more than maxPipelined recipients was pipelined")
	}
	<-got
}
