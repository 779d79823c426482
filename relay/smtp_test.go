package relay

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay/relaytest"
)

// testCert makes a self-signed certificate and returns it with the file
// a client trusts it through (smtp.ca_file).
func testCert(t *testing.T) (tls.Certificate, string) {
	c := relaytest.NewCert(t)
	return c.TLS, c.CertFile
}

// smtpServer is an in-process go-smtp server that requires TLS and AUTH
// PLAIN, records what it accepts, and answers errors on demand.
type smtpServer struct {
	mu          sync.Mutex
	rcptErr     map[string]*smtp.SMTPError
	dataErr     *smtp.SMTPError
	dropData    bool
	connections map[string]bool // by client address; STARTTLS starts a new session on the same one
	received    []receivedMail
}

type receivedMail struct {
	from string
	to   []string
	data []byte
}

type smtpSession struct {
	srv    *smtpServer
	conn   *smtp.Conn
	authed bool
	from   string
	to     []string
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *smtpSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "hookmail" || pass != "s3cret-smtp-pass" {
			return smtp.ErrAuthFailed
		}
		s.authed = true
		return nil
	}), nil
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if _, isTLS := s.conn.TLSConnectionState(); !isTLS || !s.authed {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	if e := s.srv.rcptErr[to]; e != nil {
		return e
	}
	s.to = append(s.to, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	s.srv.mu.Lock()
	drop, dataErr := s.srv.dropData, s.srv.dataErr
	s.srv.mu.Unlock()
	if drop {
		_, _ = io.ReadFull(r, make([]byte, 64))
		s.conn.Conn().Close()
		return io.ErrUnexpectedEOF
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if dataErr != nil {
		return dataErr
	}
	s.srv.mu.Lock()
	s.srv.received = append(s.srv.received, receivedMail{from: s.from, to: s.to, data: b})
	s.srv.mu.Unlock()
	return nil
}

func (s *smtpSession) Reset()        { s.from, s.to = "", nil }
func (s *smtpSession) Logout() error { return nil }

// startSMTP serves on 127.0.0.1:0: STARTTLS when starttls, implicit TLS
// when implicit, and no TLS at all when neither.
func startSMTP(t *testing.T, cert tls.Certificate, starttls, implicit bool) (*smtpServer, int) {
	t.Helper()
	state := &smtpServer{rcptErr: map[string]*smtp.SMTPError{}, connections: map[string]bool{}}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		state.mu.Lock()
		state.connections[c.Conn().RemoteAddr().String()] = true
		state.mu.Unlock()
		return &smtpSession{srv: state, conn: c}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if starttls || implicit {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	if implicit {
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return state, ln.Addr().(*net.TCPAddr).Port
}

func (s *smtpServer) mails() []receivedMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]receivedMail(nil), s.received...)
}

func smtpConfig(port int, caFile, mode string) config.SMTP {
	cfg := config.Default().SMTP
	cfg.Host, cfg.Port, cfg.TLS, cfg.CAFile = "127.0.0.1", port, mode, caFile
	cfg.Username, cfg.Password = "hookmail", "s3cret-smtp-pass"
	cfg.Timeout = 5 * time.Second
	return cfg
}

func testMessage(to ...string) *Message {
	return &Message{
		EventID: "ev1", Route: "r", Type: "sms",
		From: "hookmail <hookmail@relay.example>", To: to, Bcc: []string{"audit@example.com"},
		Subject: "SMS from +1", Text: "hello", HTML: "<p>hello</p>",
		Date: time.Unix(1645684231, 0), MessageID: "hookmail.ev1.r@relay.example",
	}
}

func newTestSMTPSender(t *testing.T, cfg config.SMTP) (*SMTPSender, *bytes.Buffer) {
	t.Helper()
	logs := &bytes.Buffer{}
	s, err := NewSMTPSender(cfg, slog.New(slog.NewTextHandler(&lockedWriter{w: logs}, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, logs
}

func TestSMTPDeliversOverSTARTTLSWithAuthAndReusesTheConnection(t *testing.T) {
	cert, caFile := testCert(t)
	srv, port := startSMTP(t, cert, true, false)
	s, logs := newTestSMTPSender(t, smtpConfig(port, caFile, config.TLSStartTLS))
	for range 3 {
		m := testMessage("a@example.com", "b@example.com")
		if err := s.Send(t.Context(), m); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(m.Receipt, "250 ") || len(m.Receipt) < 6 {
			t.Errorf("receipt %q, want the server's 250 reply", m.Receipt)
		}
	}
	mails := srv.mails()
	srv.mu.Lock()
	conns := len(srv.connections)
	srv.mu.Unlock()
	if len(mails) != 3 || conns != 1 {
		t.Fatalf("%d mails on %d connections, want 3 on 1", len(mails), conns)
	}
	m := mails[0]
	if m.from != "hookmail@relay.example" || strings.Join(m.to, ",") != "a@example.com,b@example.com,audit@example.com" {
		t.Errorf("envelope from %s to %v", m.from, m.to)
	}
	for _, want := range []string{"Message-ID: <hookmail.ev1.r@relay.example>", "Subject: SMS from +1", "multipart/alternative"} {
		if !bytes.Contains(m.data, []byte(want)) {
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
	if bytes.Contains(m.data, []byte("audit@example.com")) {
		t.Error("the Bcc address reached the headers")
	}
	if strings.Contains(logs.String(), "s3cret-smtp-pass") {
		t.Error("the SMTP password reached the logs")
	}
}

func TestSMTPImplicitTLS(t *testing.T) {
	cert, caFile := testCert(t)
	srv, port := startSMTP(t, cert, false, true)
	s, _ := newTestSMTPSender(t, smtpConfig(port, caFile, config.TLSImplicit))
	if err := s.Send(t.Context(), testMessage("a@example.com")); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.mails()); n != 1 {
		t.Fatalf("%d mails, want 1", n)
	}
}

func TestSMTPNeverDowngrades(t *testing.T) {
	cert, caFile := testCert(t)
	t.Run("no STARTTLS offered", func(t *testing.T) {
		srv, port := startSMTP(t, cert, false, false)
		s, _ := newTestSMTPSender(t, smtpConfig(port, caFile, config.TLSStartTLS))
		err := s.Send(t.Context(), testMessage("a@example.com"))
		if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
			t.Fatalf("err = %v, want a STARTTLS failure", err)
		}
		if n := len(srv.mails()); n != 0 {
			t.Fatalf("%d mails sent in clear", n)
		}
		if Classify(err) != Config || !strings.Contains(Hint(err), "smtp.tls") {
			t.Errorf("class %s, hint %q; want config, naming smtp.tls", Classify(err), Hint(err))
		}
	})
	t.Run("certificate not trusted", func(t *testing.T) {
		_, port := startSMTP(t, cert, true, false)
		s, _ := newTestSMTPSender(t, smtpConfig(port, "", config.TLSStartTLS))
		err := s.Send(t.Context(), testMessage("a@example.com"))
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("err = %v, want a certificate error", err)
		}
		if Classify(err) != Config || !strings.Contains(Hint(err), "smtp.ca_file") {
			t.Errorf("class %s, hint %q; want config, naming smtp.ca_file", Classify(err), Hint(err))
		}
	})
}

func TestSMTPReplies(t *testing.T) {
	cert, caFile := testCert(t)
	tests := []struct {
		name      string
		setup     func(*smtpServer)
		wantClass ErrorClass
		wantMails int
	}{
		{"451 at RCPT is temporary", func(s *smtpServer) {
			s.rcptErr["a@example.com"] = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
			s.rcptErr["audit@example.com"] = s.rcptErr["a@example.com"]
		}, Temporary, 0},
		{"550 for every recipient is permanent", func(s *smtpServer) {
			s.rcptErr["a@example.com"] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
			s.rcptErr["audit@example.com"] = s.rcptErr["a@example.com"]
		}, Permanent, 0},
		{"552 at DATA is permanent", func(s *smtpServer) {
			s.dataErr = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "too big"}
		}, Permanent, 0},
		{"dropped connection mid-DATA is temporary", func(s *smtpServer) { s.dropData = true }, Temporary, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, port := startSMTP(t, cert, true, false)
			srv.mu.Lock()
			tt.setup(srv)
			srv.mu.Unlock()
			s, _ := newTestSMTPSender(t, smtpConfig(port, caFile, config.TLSStartTLS))
			err := s.Send(t.Context(), testMessage("a@example.com"))
			if err == nil {
				t.Fatal("Send succeeded")
			}
			if got := Classify(err); got != tt.wantClass {
				t.Errorf("Classify(%v) = %s, want %s", err, got, tt.wantClass)
			}
			// The sender recovers: with the server healed, the next send works.
			srv.mu.Lock()
			srv.rcptErr, srv.dataErr, srv.dropData = map[string]*smtp.SMTPError{}, nil, false
			srv.mu.Unlock()
			if err := s.Send(t.Context(), testMessage("a@example.com")); err != nil {
				t.Fatalf("send after recovery: %v", err)
			}
		})
	}
}

func TestSMTPOneRefusedRecipientDoesNotBlockTheOthers(t *testing.T) {
	cert, caFile := testCert(t)
	srv, port := startSMTP(t, cert, true, false)
	srv.rcptErr["b@example.com"] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	s, logs := newTestSMTPSender(t, smtpConfig(port, caFile, config.TLSStartTLS))
	if err := s.Send(t.Context(), testMessage("a@example.com", "b@example.com", "c@example.com")); err != nil {
		t.Fatal(err)
	}
	mails := srv.mails()
	if len(mails) != 1 || strings.Join(mails[0].to, ",") != "a@example.com,c@example.com,audit@example.com" {
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
		if err == nil || Classify(err) != Permanent || !strings.HasPrefix(err.Error(), "smtp RCPT TO <b@example.com>: 550") {
			t.Fatalf("err = %v, want a permanent error naming b", err)
		}
		if !strings.Contains(logs.String(), `msg="mail server refused the only recipient for good"`) {
			t.Errorf("no log line for the only recipient:\n%s", logs)
		}
	})
}

func TestSMTPMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := NewSMTPSender(smtpConfig(25, "", config.TLSNone), slog.New(slog.DiscardHandler), reg); err != nil {
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
	cfg := smtpConfig(port, caFile, config.TLSStartTLS)
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
	if n := len(srv.mails()); n != 1 {
		t.Errorf("%d test mails delivered, want 1", n)
	}

	t.Run("fails clearly without STARTTLS", func(t *testing.T) {
		_, plainPort := startSMTP(t, cert, false, false)
		var out bytes.Buffer
		err := SendTest(t.Context(), smtpConfig(plainPort, caFile, config.TLSStartTLS), []string{"you@example.com"}, &out)
		if err == nil || !strings.Contains(err.Error(), "connect, TLS or AUTH failed") || !strings.Contains(err.Error(), "does not offer STARTTLS") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("wrong password is a config error", func(t *testing.T) {
		cfg := smtpConfig(port, caFile, config.TLSStartTLS)
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
	srv.rcptErr["bob@example.com"] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	var out bytes.Buffer
	if err := SendTest(t.Context(), smtpConfig(port, caFile, config.TLSStartTLS), []string{"bob@example.com", "you@example.com"}, &out); err != nil {
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
	if n := len(srv.mails()); n != 1 || strings.Join(srv.mails()[0].to, ",") != "you@example.com" {
		t.Errorf("delivered %+v, want one mail to you@", srv.mails())
	}
}

// TestRelayOverSMTPRetriesAndDeadLetters runs the workers against the SMTP
// test server: a 451 is retried until the server takes the email; a 550 goes
// to the dead letters after one attempt, with the server's reply.
func TestRelayOverSMTPRetriesAndDeadLetters(t *testing.T) {
	cert, caFile := testCert(t)
	srv, port := startSMTP(t, cert, true, false)
	temp := &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
	srv.rcptErr["sms@example.com"] = temp
	srv.rcptErr["cc@example.com"] = temp
	srv.rcptErr["all@example.com"] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}

	cfg := testConfig(t)
	cfg.SMTP = smtpConfig(port, caFile, config.TLSStartTLS)
	cfg.SMTP.Workers = 2
	cfg.Retry.Initial, cfg.Retry.Max = 20*time.Millisecond, 50*time.Millisecond
	env := newTestEnv(t, cfg)
	sender, _ := newTestSMTPSender(t, cfg.SMTP)
	env.relay.sender = sender
	h := env.relay.Handler()
	for _, file := range []string{"sms.form", "ussd.form"} { // sms → sms route (451), ussd → catch-all (550)
		if rec := post(t, h, formType, string(readTestdata(t, file))); rec.Code != 200 {
			t.Fatalf("%s: %d", file, rec.Code)
		}
	}
	stop := runRelay(t, env.relay)
	defer stop()
	waitFor(t, "the ussd email to die and the sms to be retried", func() bool {
		st, _ := env.spool.Stats(t.Context())
		return st.Dead == 1 && testutil.ToFloat64(env.relay.metrics.failed.WithLabelValues("sms", "temporary")) >= 2
	})
	srv.mu.Lock()
	delete(srv.rcptErr, "sms@example.com")
	delete(srv.rcptErr, "cc@example.com")
	srv.mu.Unlock()
	waitFor(t, "the sms to be delivered", func() bool {
		st, _ := env.spool.Stats(t.Context())
		return st.Depth == 0
	})
	if mails := srv.mails(); len(mails) != 1 || !bytes.Contains(mails[0].data, []byte("Subject: SMS from +639760713666")) {
		t.Fatalf("delivered %d mails, want the sms once", len(mails))
	}
	dead := deadLetters(t, env.spool)
	if len(dead) != 1 || dead[0].Event.Type != "ussd" || dead[0].Attempts != 1 || !strings.Contains(dead[0].DeadReason, "smtp RCPT TO <all@example.com>: 550") {
		t.Fatalf("dead letters = %+v, want the ussd after 1 attempt with the 550 reply naming the address", dead)
	}
	if got := testutil.ToFloat64(env.relay.metrics.failed.WithLabelValues("ussd", "permanent")); got != 1 {
		t.Errorf("permanent failures = %v, want 1", got)
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
	cfg := smtpConfig(port, caFile, config.TLSStartTLS)
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
	if n := len(srv.mails()); n != 1 {
		t.Errorf("%d mails delivered, want 1", n)
	}
}

// TestSMTPTemporarilyRefusedRecipientHoldsTheMessage: when one recipient
// gets a 4xx, nobody gets the email now, so the retry reaches everyone once.
func TestSMTPTemporarilyRefusedRecipientGetsItOnTheRetry(t *testing.T) {
	cert, caFile := testCert(t)
	srv, port := startSMTP(t, cert, true, false)
	srv.rcptErr["b@example.com"] = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"}
	s, _ := newTestSMTPSender(t, smtpConfig(port, caFile, config.TLSStartTLS))
	err := s.Send(t.Context(), testMessage("a@example.com", "b@example.com"))
	var partial *PartialError
	if !errors.As(err, &partial) || Classify(err) != Temporary || !slices.Equal(partial.Later, []string{"b@example.com"}) {
		t.Fatalf("err = %v, want a temporary *PartialError owing b", err)
	}
	if mails := srv.mails(); len(mails) != 1 || strings.Join(mails[0].to, ",") != "a@example.com,audit@example.com" {
		t.Fatalf("first attempt delivered %+v, want one mail to a and the bcc", mails)
	}
	srv.mu.Lock()
	delete(srv.rcptErr, "b@example.com")
	srv.mu.Unlock()
	retry := testMessage("a@example.com", "b@example.com")
	retry.Envelope = partial.Later
	if err := s.Send(t.Context(), retry); err != nil {
		t.Fatal(err)
	}
	mails := srv.mails()
	if len(mails) != 2 || strings.Join(mails[1].to, ",") != "b@example.com" || !bytes.Contains(mails[1].data, []byte("To: <a@example.com>, <b@example.com>")) {
		t.Fatalf("retry delivered %+v, want b only, with the same headers", mails[1:])
	}
}

// TestSMTPRedialsAPooledConnectionTheServerClosed: the server drops its
// idle connections (here: goes away and comes back); the next email finds
// the pooled connection dead at MAIL, and is sent on a new one in the same
// attempt instead of waiting for retry.initial.
func TestSMTPRedialsAPooledConnectionTheServerClosed(t *testing.T) {
	sink := relaytest.NewSink(t)
	s, _ := newTestSMTPSender(t, sinkConfig(sink))
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
func sinkConfig(sink *relaytest.Sink) config.SMTP {
	_, portStr, _ := strings.Cut(sink.Addr, ":")
	port, _ := strconv.Atoi(portStr)
	cfg := smtpConfig(port, "", config.TLSNone)
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
			sink := relaytest.NewSink(t)
			sink.RequireAuth("hookmail", "s3cret-smtp-pass")
			cfg := sinkConfig(sink)
			cfg.Username, cfg.Password, cfg.Auth = "hookmail", "s3cret-smtp-pass", auth
			s, _ := newTestSMTPSender(t, cfg)
			if err := s.Send(t.Context(), testMessage("a@example.com")); err != nil {
				t.Fatalf("Send: %v (class %s)", err, Classify(err))
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
			cfg := smtpConfig(25, "", config.TLSNone)
			cfg.Host, cfg.Auth = "relay.internal", auth
			if _, err := NewSMTPSender(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry()); err == nil || !strings.Contains(err.Error(), "smtp.tls") {
				t.Errorf("NewSMTPSender: err = %v, want a refusal naming smtp.tls", err)
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
		sink     []relaytest.SinkOption
		refuse   *smtp.SMTPError // EHLO's reply
		auth     string
		want     string // in the hint and in send-test's error
		notWant  string
		wantCode int
	}{
		// A server that cannot load its certificate answers STARTTLS 454
		// 4.7.0; that is its TLS setup, not hookmail's password.
		{name: "454 to STARTTLS", sink: []relaytest.SinkOption{relaytest.RefusingStartTLS("454 4.7.0 TLS not available due to local problem")},
			want: "cannot start TLS", notWant: "smtp.password", wantCode: 454},
		{name: "no AUTH offered, auth auto", auth: "auto", want: "the server offers no AUTH"},
		// A blocked client: no message was involved, so nothing is given up.
		{name: "session refused", refuse: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "your address is on a blocklist"},
			want: "smtp.host and smtp.port", wantCode: 554},
		{name: "no AUTH offered, auth plain", auth: "plain", want: "the server offers no AUTH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := relaytest.NewSink(t, tt.sink...)
			sink.RefuseSessions(tt.refuse)
			cfg := sinkConfig(sink)
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
			if code, _ := SMTPReply(err); Classify(err) != Config || code != tt.wantCode {
				t.Errorf("Send: %v: class %s, code %d; want config, %d", err, Classify(err), code, tt.wantCode)
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
