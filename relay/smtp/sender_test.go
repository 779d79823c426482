package smtp

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/mail"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/config/configtest"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/smtp/smtptest"
)

// testCert makes a self-signed certificate and returns it with the file
// a client trusts it through (smtp.ca_file).
func testCert(t *testing.T) (tls.Certificate, string) {
	c := smtptest.NewCert(t)
	return c.TLS, c.CertFile
}

// startSMTP starts the test server, requiring AUTH PLAIN: STARTTLS when
// starttls, implicit TLS when implicit, and no TLS at all when neither.
func startSMTP(t *testing.T, cert tls.Certificate, starttls, implicit bool) (*smtptest.Sink, int) {
	t.Helper()
	var opts []smtptest.SinkOption
	switch {
	case implicit:
		opts = append(opts, smtptest.WithImplicitTLS(cert))
	case starttls:
		opts = append(opts, smtptest.WithTLS(cert))
	}
	srv := smtptest.NewSink(t, opts...)
	srv.RequireAuth("hookmail", "s3cret-smtp-pass")
	return srv, srv.Port
}

func smtpConfig(t testing.TB, port int, caFile, mode string) config.SMTP {
	cfg := configtest.Default(t).SMTP
	cfg.Host, cfg.Port, cfg.TLS, cfg.CAFile = "127.0.0.1", port, mode, caFile
	cfg.Username, cfg.Password = "hookmail", "s3cret-smtp-pass"
	cfg.Timeout = 5 * time.Second
	return cfg
}

func testMessage(to ...string) *relay.Message {
	return &relay.Message{
		EventID: "ev1", Route: "r",
		From: "hookmail <hookmail@relay.example>", To: to, Bcc: []string{"audit@example.com"},
		Subject: "SMS from +1", Text: "hello", HTML: "<p>hello</p>",
		Date: time.Unix(1645684231, 0), MessageID: "hookmail.ev1.r@relay.example",
	}
}

func newTestSMTPSender(t *testing.T, cfg config.SMTP) (*Sender, *bytes.Buffer) {
	t.Helper()
	logs := &bytes.Buffer{}
	s, err := New(cfg, slog.New(slog.NewTextHandler(logs, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, logs
}

func TestSMTPDeliversOverSTARTTLSWithAuthAndReusesTheConnection(t *testing.T) {
	cert, caFile := testCert(t)
	srv, port := startSMTP(t, cert, true, false)
	s, logs := newTestSMTPSender(t, smtpConfig(t, port, caFile, config.TLSStartTLS))
	for range 3 {
		m := testMessage("a@example.com", "b@example.com")
		if err := s.Send(t.Context(), m); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(m.Receipt, "250 ") || len(m.Receipt) < 6 {
			t.Errorf("receipt %q, want the server's 250 reply", m.Receipt)
		}
	}
	mails := srv.Messages()
	conns := srv.Connections()
	if len(mails) != 3 || conns != 1 {
		t.Fatalf("%d mails on %d connections, want 3 on 1", len(mails), conns)
	}
	m := mails[0]
	if m.From != "hookmail@relay.example" || strings.Join(m.To, ",") != "a@example.com,b@example.com,audit@example.com" {
		t.Errorf("envelope from %s to %v", m.From, m.To)
	}
	for _, want := range []string{"Message-ID: <hookmail.ev1.r@relay.example>", "Subject: SMS from +1", "multipart/alternative"} {
		if !bytes.Contains(m.Data, []byte(want)) {
			t.Errorf("message lacks %q", want)
		}
	}
	// MAIL + 3 RCPT + DATA, three times; one connection open.
	if got := testutil.ToFloat64(s.metrics.replies.WithLabelValues("250")); got != 15 {
		t.Errorf("250 replies counted = %v, want 15", got)
	}
	if got := testutil.ToFloat64(s.metrics.connections); got != 1 {
		t.Errorf("open connections = %v, want 1", got)
	}
	if bytes.Contains(m.Data, []byte("audit@example.com")) {
		t.Error("the Bcc address reached the headers")
	}
	if strings.Contains(logs.String(), "s3cret-smtp-pass") {
		t.Error("the SMTP password reached the logs")
	}
}

func TestSMTPImplicitTLS(t *testing.T) {
	cert, caFile := testCert(t)
	srv, port := startSMTP(t, cert, false, true)
	s, _ := newTestSMTPSender(t, smtpConfig(t, port, caFile, config.TLSImplicit))
	if err := s.Send(t.Context(), testMessage("a@example.com")); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Fatalf("%d mails, want 1", n)
	}
}

func TestSMTPNeverDowngrades(t *testing.T) {
	cert, caFile := testCert(t)
	t.Run("no STARTTLS offered", func(t *testing.T) {
		srv, port := startSMTP(t, cert, false, false)
		s, _ := newTestSMTPSender(t, smtpConfig(t, port, caFile, config.TLSStartTLS))
		err := s.Send(t.Context(), testMessage("a@example.com"))
		if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
			t.Fatalf("err = %v, want a STARTTLS failure", err)
		}
		if n := len(srv.Messages()); n != 0 {
			t.Fatalf("%d mails sent in clear", n)
		}
		if classify(err) != relay.Config || !strings.Contains(hint(err), "smtp.tls") {
			t.Errorf("class %s, hint %q; want config, naming smtp.tls", classify(err), hint(err))
		}
	})
	t.Run("certificate not trusted", func(t *testing.T) {
		_, port := startSMTP(t, cert, true, false)
		s, _ := newTestSMTPSender(t, smtpConfig(t, port, "", config.TLSStartTLS))
		err := s.Send(t.Context(), testMessage("a@example.com"))
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("err = %v, want a certificate error", err)
		}
		if classify(err) != relay.Config || !strings.Contains(hint(err), "smtp.ca_file") {
			t.Errorf("class %s, hint %q; want config, naming smtp.ca_file", classify(err), hint(err))
		}
	})
}

func TestSMTPReplies(t *testing.T) {
	cert, caFile := testCert(t)
	tests := []struct {
		name      string
		setup     func(*smtptest.Sink)
		wantClass relay.ErrorClass
		wantMails int
	}{
		{"451 at RCPT is temporary", func(s *smtptest.Sink) {
			e := &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
			s.RefuseRecipient("a@example.com", e)
			s.RefuseRecipient("audit@example.com", e)
		}, relay.Temporary, 0},
		{"550 for every recipient is permanent", func(s *smtptest.Sink) {
			e := &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
			s.RefuseRecipient("a@example.com", e)
			s.RefuseRecipient("audit@example.com", e)
		}, relay.Permanent, 0},
		{"552 at DATA is permanent", func(s *smtptest.Sink) {
			s.RefuseData(&smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "too big"})
		}, relay.Permanent, 0},
		{"dropped connection mid-DATA is temporary", func(s *smtptest.Sink) { s.DropData(true) }, relay.Temporary, 0},
		{"550 to MAIL FROM is the setup's, not the message's", func(s *smtptest.Sink) {
			s.Refuse(&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Sender address rejected: not owned by user"})
		}, relay.Config, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, port := startSMTP(t, cert, true, false)
			tt.setup(srv)
			s, _ := newTestSMTPSender(t, smtpConfig(t, port, caFile, config.TLSStartTLS))
			err := s.Send(t.Context(), testMessage("a@example.com"))
			if err == nil {
				t.Fatal("Send succeeded")
			}
			if got := classify(err); got != tt.wantClass {
				t.Errorf("classify(%v) = %s, want %s", err, got, tt.wantClass)
			}
			// The sender recovers: with the server healed, the next send works.
			for _, addr := range []string{"a@example.com", "audit@example.com"} {
				srv.RefuseRecipient(addr, nil)
			}
			srv.RefuseData(nil)
			srv.DropData(false)
			srv.Refuse(nil)
			if err := s.Send(t.Context(), testMessage("a@example.com")); err != nil {
				t.Fatalf("send after recovery: %v", err)
			}
		})
	}
}

func TestSMTPOneRefusedRecipientDoesNotBlockTheOthers(t *testing.T) {
	cert, caFile := testCert(t)
	srv, port := startSMTP(t, cert, true, false)
	srv.RefuseRecipient("b@example.com", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"})
	s, logs := newTestSMTPSender(t, smtpConfig(t, port, caFile, config.TLSStartTLS))
	if err := s.Send(t.Context(), testMessage("a@example.com", "b@example.com", "c@example.com")); err != nil {
		t.Fatal(err)
	}
	mails := srv.Messages()
	if len(mails) != 1 || strings.Join(mails[0].To, ",") != "a@example.com,c@example.com,audit@example.com" {
		t.Fatalf("delivered %+v, want one mail to a, c and the bcc", mails)
	}
	if got := testutil.ToFloat64(s.metrics.replies.WithLabelValues("550")); got != 1 {
		t.Errorf("550 replies counted = %v, want 1", got)
	}
	// The line names the address and how many others have the email.
	for _, want := range []string{`msg="mail server refused a recipient for good; delivering to the others it accepted"`,
		"recipient=b@example.com", "others_accepted=3", "smtp RCPT TO <b@example.com>: 550"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the refused recipient's log line lacks %s:\n%s", want, logs)
		}
	}

	t.Run("the only recipient", func(t *testing.T) {
		m := testMessage("b@example.com")
		m.Bcc = nil
		err := s.Send(t.Context(), m)
		if err == nil || classify(err) != relay.Permanent || !strings.HasPrefix(err.Error(), "smtp RCPT TO <b@example.com>: 550") {
			t.Fatalf("err = %v, want a permanent error naming b", err)
		}
		if !strings.Contains(logs.String(), `msg="mail server refused the only recipient for good"`) {
			t.Errorf("no log line for the only recipient:\n%s", logs)
		}
	})
}

func TestSMTPMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(smtpConfig(t, 25, "", config.TLSNone), slog.New(slog.DiscardHandler), reg); err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric lint: %s: %s", p.Metric, p.Text)
	}
}

func TestSendTestPrintsEachStep(t *testing.T) {
	cert, caFile := testCert(t)
	srv, port := startSMTP(t, cert, true, false)
	var out bytes.Buffer
	cfg := smtpConfig(t, port, caFile, config.TLSStartTLS)
	if err := SendTest(t.Context(), cfg, []string{"you@example.com"}, &out); err != nil {
		t.Fatalf("SendTest: %v\n%s", err, out.String())
	}
	for _, want := range []string{"connect 127.0.0.1:", "C: STARTTLS", `certificate subject "CN=hookmail test SMTP"`, "authenticated as hookmail",
		"C: MAIL FROM:<hookmail@localhost>", "C: RCPT TO:<you@example.com>", "C: DATA", "the server accepted the test email"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "s3cret-smtp-pass") {
		t.Error("send-test printed the SMTP password")
	}
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("%d test mails delivered, want 1", n)
	}

	t.Run("fails clearly without STARTTLS", func(t *testing.T) {
		_, plainPort := startSMTP(t, cert, false, false)
		var out bytes.Buffer
		err := SendTest(t.Context(), smtpConfig(t, plainPort, caFile, config.TLSStartTLS), []string{"you@example.com"}, &out)
		if err == nil || !strings.Contains(err.Error(), "connect, TLS or AUTH failed") || !strings.Contains(err.Error(), "does not offer STARTTLS") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("wrong password is a config error", func(t *testing.T) {
		cfg := smtpConfig(t, port, caFile, config.TLSStartTLS)
		cfg.Password = "wrong"
		err := SendTest(t.Context(), cfg, []string{"you@example.com"}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "config") || !strings.Contains(err.Error(), "smtp.password") {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestSendTestPrintsTheRepliesGoMailLeavesOut: go-mail's log has no error
// replies and no reply to the data; send-test prints both in their place.
func TestSendTestPrintsTheRepliesGoMailLeavesOut(t *testing.T) {
	cert, caFile := testCert(t)
	srv, port := startSMTP(t, cert, true, false)
	srv.RefuseRecipient("bob@example.com", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"})
	var out bytes.Buffer
	if err := SendTest(t.Context(), smtpConfig(t, port, caFile, config.TLSStartTLS), []string{"bob@example.com", "you@example.com"}, &out); err != nil {
		t.Fatalf("SendTest: %v\n%s", err, out.String())
	}
	// In order: the refusal right after its RCPT, then the other RCPT, the
	// data's final 250 after DATA, then the verdict.
	text := out.String()
	at := 0
	for _, want := range []string{
		"    C: RCPT TO:<bob@example.com>\n    S: 550 5.1.1 no such user\n",
		"    C: RCPT TO:<you@example.com>\n    S: 250 ",
		"    C: DATA\n    S: 354 ",
		"    S: 250 2.0.0 ",
		"the server accepted the test email",
	} {
		i := strings.Index(text[at:], want)
		if i < 0 {
			t.Fatalf("output lacks %q after offset %d:\n%s", want, at, text)
		}
		at += i + len(want)
	}
	if n := len(srv.Messages()); n != 1 || strings.Join(srv.Messages()[0].To, ",") != "you@example.com" {
		t.Errorf("delivered %+v, want one mail to you@", srv.Messages())
	}
}

func TestSMTPAuthMechanism(t *testing.T) {
	for _, name := range config.AuthMechanisms {
		if _, ok := authTypes[name]; !ok {
			t.Errorf("smtp.auth %q has no go-mail mechanism", name)
		}
	}
	cert, caFile := testCert(t)
	srv, port := startSMTP(t, cert, true, false)
	cfg := smtpConfig(t, port, caFile, config.TLSStartTLS)
	cfg.Auth = "plain"
	s, _ := newTestSMTPSender(t, cfg)
	if err := s.Send(t.Context(), testMessage("a@example.com")); err != nil {
		t.Fatalf("AUTH PLAIN: %v", err)
	}
	cfg.Auth = "cram-md5" // not offered by the server: fails, never falls back
	s2, _ := newTestSMTPSender(t, cfg)
	if err := s2.Send(t.Context(), testMessage("a@example.com")); err == nil {
		t.Fatal("a mechanism the server does not offer was accepted")
	}
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("%d mails delivered, want 1", n)
	}
}

// TestSMTPTemporarilyRefusedRecipientHoldsTheMessage: when one recipient
// gets a 4xx, nobody gets the email now, so the retry reaches everyone once.
func TestSMTPTemporarilyRefusedRecipientGetsItOnTheRetry(t *testing.T) {
	cert, caFile := testCert(t)
	srv, port := startSMTP(t, cert, true, false)
	srv.RefuseRecipient("b@example.com", &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"})
	s, _ := newTestSMTPSender(t, smtpConfig(t, port, caFile, config.TLSStartTLS))
	err := s.Send(t.Context(), testMessage("a@example.com", "b@example.com"))
	var partial *relay.PartialError
	if !errors.As(err, &partial) || classify(err) != relay.Temporary || !slices.Equal(partial.Later, []string{"b@example.com"}) {
		t.Fatalf("err = %v, want a temporary *relay.PartialError owing b", err)
	}
	if mails := srv.Messages(); len(mails) != 1 || strings.Join(mails[0].To, ",") != "a@example.com,audit@example.com" {
		t.Fatalf("first attempt delivered %+v, want one mail to a and the bcc", mails)
	}
	srv.RefuseRecipient("b@example.com", nil)
	retry := testMessage("a@example.com", "b@example.com")
	retry.Envelope = partial.Later
	if err := s.Send(t.Context(), retry); err != nil {
		t.Fatal(err)
	}
	mails := srv.Messages()
	if len(mails) != 2 || strings.Join(mails[1].To, ",") != "b@example.com" || !bytes.Contains(mails[1].Data, []byte("To: <a@example.com>, <b@example.com>")) {
		t.Fatalf("retry delivered %+v, want b only, with the same headers", mails[1:])
	}
}

// TestSMTPRedialsAPooledConnectionTheServerClosed: the server drops its
// idle connections (here: goes away and comes back); the next email finds
// the pooled connection dead at MAIL, and is sent on a new one in the same
// attempt instead of waiting for retry.initial.
func TestSMTPRedialsAPooledConnectionTheServerClosed(t *testing.T) {
	sink := smtptest.NewSink(t)
	s, _ := newTestSMTPSender(t, sinkConfig(t, sink))
	first := testMessage("a@example.com")
	if err := s.Send(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	sink.Stop()
	sink.Start()
	second := testMessage("a@example.com")
	second.MessageID = "hookmail.ev2.r@relay.example"
	if err := s.Send(t.Context(), second); err != nil {
		t.Fatalf("after the server closed the pooled connection: %v", err)
	}
	if got := sink.Counts()["<hookmail.ev2.r@relay.example>"]; got != 1 {
		t.Errorf("second email arrived %d times, want 1 (counts %v)", got, sink.Counts())
	}
	if got := testutil.ToFloat64(s.metrics.connections); got != 1 {
		t.Errorf("%v connections open, want 1 (the dead one closed)", got)
	}
}

// sinkConfig sends to sink: smtp.tls none, no login.
func sinkConfig(t testing.TB, sink *smtptest.Sink) config.SMTP {
	cfg := smtpConfig(t, sink.Port, "", config.TLSNone)
	cfg.Username, cfg.Password = "", ""
	return cfg
}

// TestSMTPLoginInClearToLoopback: a local Postfix or relay sidecar offers
// AUTH PLAIN without TLS. With smtp.tls: none and a username hookmail logs
// in, also with smtp.auth: auto, since nothing crosses a network; go-mail
// alone refuses PLAIN and LOGIN in clear and never discovers them.
func TestSMTPLoginInClearToLoopback(t *testing.T) {
	for _, auth := range []string{"auto", "plain"} {
		t.Run(auth, func(t *testing.T) {
			sink := smtptest.NewSink(t)
			sink.RequireAuth("hookmail", "s3cret-smtp-pass")
			cfg := sinkConfig(t, sink)
			cfg.Username, cfg.Password, cfg.Auth = "hookmail", "s3cret-smtp-pass", auth
			s, _ := newTestSMTPSender(t, cfg)
			if err := s.Send(t.Context(), testMessage("a@example.com")); err != nil {
				t.Fatalf("Send: %v (class %s)", err, classify(err))
			}
			if got := sink.Counts()["<hookmail.ev1.r@relay.example>"]; got != 1 {
				t.Errorf("delivered %d times, want 1", got)
			}
		})
	}
}

// TestSMTPNeverSendsCredentialsInClearOffLoopback: whatever the mechanism
// (XOAUTH2 sends its token as it is), a login without TLS to a host that
// is not loopback is refused before any connection, by the sender and by
// send-test alike, should Validate have been skipped.
func TestSMTPNeverSendsCredentialsInClearOffLoopback(t *testing.T) {
	for _, auth := range []string{"auto", "plain", "xoauth2", "cram-md5"} {
		t.Run(auth, func(t *testing.T) {
			cfg := smtpConfig(t, 25, "", config.TLSNone)
			cfg.Host, cfg.Auth = "relay.internal", auth
			if _, err := New(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry()); err == nil || !strings.Contains(err.Error(), "smtp.tls") {
				t.Errorf("New: err = %v, want a refusal naming smtp.tls", err)
			}
			var out bytes.Buffer
			if err := SendTest(t.Context(), cfg, []string{"you@example.com"}, &out); err == nil || !strings.Contains(err.Error(), "smtp.tls") {
				t.Errorf("SendTest: err = %v, want a refusal naming smtp.tls", err)
			}
			if strings.Contains(out.String(), "connect") {
				t.Errorf("send-test connected:\n%s", out.String())
			}
		})
	}
}

// TestSMTPConfigErrors: failures no retry fixes are config errors, in the
// sender and in send-test, with a hint naming what to fix.
func TestSMTPConfigErrors(t *testing.T) {
	tests := []struct {
		name     string
		sink     []smtptest.SinkOption
		refuse   *smtp.SMTPError // EHLO's reply
		auth     string
		want     string // in the hint and in send-test's error
		notWant  string
		wantCode int
	}{
		// A server that cannot load its certificate answers STARTTLS 454
		// 4.7.0; that is its TLS setup, not hookmail's password.
		{name: "454 to STARTTLS", sink: []smtptest.SinkOption{smtptest.RefusingStartTLS("454 4.7.0 TLS not available due to local problem")},
			want: "cannot start TLS", notWant: "smtp.password", wantCode: 454},
		{name: "no AUTH offered, auth auto", auth: "auto", want: "the server offers no AUTH"},
		// A blocked client: no message was involved, so nothing is given up.
		{name: "session refused", refuse: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "your address is on a blocklist"},
			want: "smtp.host and smtp.port", wantCode: 554},
		{name: "no AUTH offered, auth plain", auth: "plain", want: "the server offers no AUTH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := smtptest.NewSink(t, tt.sink...)
			sink.RefuseSessions(tt.refuse)
			cfg := sinkConfig(t, sink)
			if tt.auth != "" {
				cfg.Username, cfg.Password, cfg.Auth = "hookmail", "s3cret-smtp-pass", tt.auth
			}
			if len(tt.sink) > 0 {
				cfg.TLS = config.TLSStartTLS
			}
			s, _ := newTestSMTPSender(t, cfg)
			err := s.Send(t.Context(), testMessage("a@example.com"))
			if err == nil {
				t.Fatal("Send succeeded")
			}
			if code, _ := SMTPReply(err); classify(err) != relay.Config || code != tt.wantCode {
				t.Errorf("Send: %v: class %s, code %d; want config, %d", err, classify(err), code, tt.wantCode)
			}
			var out bytes.Buffer
			err = SendTest(t.Context(), cfg, []string{"you@example.com"}, &out)
			if err == nil || !strings.Contains(err.Error(), ", config): ") || !strings.Contains(err.Error(), tt.want) ||
				tt.notWant != "" && strings.Contains(err.Error(), tt.notWant) {
				t.Errorf("send-test: %v\nwant a config error with %q and without %q", err, tt.want, tt.notWant)
			}
			if sink.Tries() != 0 {
				t.Errorf("%d MAIL commands reached the server", sink.Tries())
			}
		})
	}
}

// TestSMTPCarriesAttachments: the files of a message reach the server as
// parts of a multipart/mixed email, after the text and HTML, and decode
// to the same bytes, names and types.
func TestSMTPCarriesAttachments(t *testing.T) {
	sink := smtptest.NewSink(t)
	s, _ := newTestSMTPSender(t, sinkConfig(t, sink))
	msg := testMessage("a@example.com")
	files := []relay.Attachment{
		{Name: "photo.jpg", ContentType: "image/jpeg", Data: bytes.Repeat([]byte{0xff, 0xd8, 0x00, '\r', '\n', '.'}, 20_000)},
		{Name: "note.txt", ContentType: "text/plain", Data: []byte(".\r\n.\r\nQUIT\r\n")},
	}
	msg.Attachments = files
	if err := s.Send(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	got := sink.Messages()
	if len(got) != 1 {
		t.Fatalf("%d messages", len(got))
	}
	m, err := mail.ReadMessage(bytes.NewReader(got[0].Data))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("Content-Type %q", m.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var parts []string
	var i int
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		parts = append(parts, ct)
		if ct == "multipart/alternative" {
			continue
		}
		b, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, p))
		if err != nil || i >= len(files) || p.FileName() != files[i].Name || ct != files[i].ContentType || !bytes.Equal(b, files[i].Data) {
			t.Errorf("part %d: %q %q, %d bytes (%v)", i, p.FileName(), ct, len(b), err)
		}
		i++
	}
	if strings.Join(parts, ",") != "multipart/alternative,image/jpeg,text/plain" {
		t.Errorf("parts %v", parts)
	}
}
