package smtptest

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"maps"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Sink is an SMTP server on 127.0.0.1, hookmail's one test server for
// SMTP: it records the messages it accepts (counted by Message-ID) and
// answers what a test asks of it. It is plain by default, as a local relay
// is; WithTLS offers STARTTLS and WithImplicitTLS speaks TLS from the first
// byte, and with either no mail is taken before TLS. RequireAuth demands AUTH
// PLAIN before MAIL. It can refuse every session, message, recipient or
// data with a reply of choice, drop the connection mid-DATA, go away
// entirely, and come back on the same port: the outages and
// misconfigurations a relay must ride out.
type Sink struct {
	t    testing.TB
	Addr string // 127.0.0.1:port, the same across Stop and Start
	Port int

	mu         sync.Mutex
	srv        *smtp.Server
	cut        *cutListener // srv's listener, cut at Stop
	refuse     *smtp.SMTPError
	answer     func(n int) *smtp.SMTPError // the reply to the n-th MAIL FROM, when set
	greet      *smtp.SMTPError             // the reply to EHLO and HELO when set
	rcptErr    map[string]*smtp.SMTPError
	dataErr    *smtp.SMTPError
	dropData   bool
	user, pass string // AUTH PLAIN credentials; none when user is ""
	startTLS   string // the reply to STARTTLS, offered when set (fixed at start)
	cert       *tls.Certificate
	implicit   bool
	counts     map[string]int
	subjects   map[string]string
	received   []Message
	conns      map[string]bool
	tries      int
}

// Message is a message the sink accepted: the envelope, the data, and
// when its data ended.
type Message struct {
	From string
	To   []string
	Data []byte
	At   time.Time
}

// SinkOption sets up a Sink before it starts.
type SinkOption func(*Sink)

// RefusingStartTLS makes the sink offer STARTTLS and answer it with reply,
// e.g. "454 4.7.0 TLS not available due to local problem", as a server
// whose certificate or key cannot be loaded does.
func RefusingStartTLS(reply string) SinkOption {
	return func(s *Sink) { s.startTLS = reply }
}

// WithTLS makes the sink offer STARTTLS with cert, and take no mail before
// TLS.
func WithTLS(cert tls.Certificate) SinkOption {
	return func(s *Sink) { s.cert = &cert }
}

// WithImplicitTLS makes the sink speak TLS with cert from the first byte,
// as on port 465.
func WithImplicitTLS(cert tls.Certificate) SinkOption {
	return func(s *Sink) { s.cert, s.implicit = &cert, true }
}

// NewSink starts a Sink on a free port; it stops when the test ends.
func NewSink(t testing.TB, opts ...SinkOption) *Sink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Sink{t: t, Addr: ln.Addr().String(), Port: ln.Addr().(*net.TCPAddr).Port,
		counts: map[string]int{}, subjects: map[string]string{}, rcptErr: map[string]*smtp.SMTPError{}, conns: map[string]bool{}}
	for _, opt := range opts {
		opt(s)
	}
	s.serve(ln)
	t.Cleanup(s.Stop)
	return s
}

func (s *Sink) serve(tcp net.Listener) {
	cut := &cutListener{Listener: tcp, conns: map[net.Conn]struct{}{}}
	var ln net.Listener = cut
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.greet != nil {
			return nil, s.greet
		}
		s.conns[c.Conn().RemoteAddr().String()] = true
		return &sinkSession{s: s, conn: c}, nil
	}))
	srv.Domain = "sink.test"
	srv.ReadTimeout, srv.WriteTimeout = 30*time.Second, 30*time.Second
	srv.MaxMessageBytes = 10 << 20
	srv.AllowInsecureAuth = s.cert == nil     // with TLS, AUTH only after it
	srv.ErrorLog = log.New(io.Discard, "", 0) // connections cut by a kill are expected here
	switch {
	case s.cert != nil:
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*s.cert}}
		if s.implicit {
			ln = tls.NewListener(ln, srv.TLSConfig)
		}
	case s.startTLS != "":
		// go-smtp offers STARTTLS only with a TLS config; it never gets to
		// use it, since startTLSListener answers the command.
		srv.TLSConfig = &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return nil, errors.New("sink: no TLS")
		}}
		ln = &startTLSListener{Listener: ln, reply: s.startTLS}
	}
	s.mu.Lock()
	s.srv, s.cut = srv, cut
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// cutListener closes, when cut, its listener, every connection it gave
// out and any it accepts afterwards. go-smtp's Close closes only the
// connections it has registered, so one accepted as it ran would live on
// and be served, and a Close before Serve began leaves the listener open.
type cutListener struct {
	net.Listener
	mu    sync.Mutex
	isCut bool
	conns map[net.Conn]struct{}
}

func (l *cutListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.isCut {
		c.Close()
		return nil, net.ErrClosed
	}
	l.conns[c] = struct{}{}
	return c, nil
}

func (l *cutListener) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.isCut = true
	_ = l.Listener.Close()
	for c := range l.conns {
		c.Close()
	}
	clear(l.conns)
}

// Refuse makes every MAIL FROM get reply (e.g. 451); nil accepts again.
func (s *Sink) Refuse(reply *smtp.SMTPError) {
	s.mu.Lock()
	s.refuse = reply
	s.mu.Unlock()
}

// AnswerMail makes the n-th MAIL FROM (counting from 1, refused ones
// included) get answer(n), e.g. a 421 to every third; a nil answer takes
// the message, and so does a nil answer func.
func (s *Sink) AnswerMail(answer func(n int) *smtp.SMTPError) {
	s.mu.Lock()
	s.answer = answer
	s.mu.Unlock()
}

// RefuseRecipient makes RCPT TO:<addr> get reply (e.g. 550 or 452); nil
// accepts addr again.
func (s *Sink) RefuseRecipient(addr string, reply *smtp.SMTPError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if reply == nil {
		delete(s.rcptErr, addr)
		return
	}
	s.rcptErr[addr] = reply
}

// RefuseData makes the end of DATA get reply (e.g. 552); nil accepts again.
func (s *Sink) RefuseData(reply *smtp.SMTPError) {
	s.mu.Lock()
	s.dataErr = reply
	s.mu.Unlock()
}

// DropData makes the sink cut the connection in the middle of DATA.
func (s *Sink) DropData(drop bool) {
	s.mu.Lock()
	s.dropData = drop
	s.mu.Unlock()
}

// RefuseSessions makes EHLO and HELO get reply (e.g. 554 for a client
// the server blocks), so no session starts; nil accepts again.
func (s *Sink) RefuseSessions(reply *smtp.SMTPError) {
	s.mu.Lock()
	s.greet = reply
	s.mu.Unlock()
}

// RequireAuth makes the sink offer AUTH PLAIN (without TLS too, as a
// local relay does), take only user and pass, and refuse MAIL before AUTH
// (530).
func (s *Sink) RequireAuth(user, pass string) {
	s.mu.Lock()
	s.user, s.pass = user, pass
	s.mu.Unlock()
}

// Stop closes the listener and every connection: the server is gone.
func (s *Sink) Stop() {
	s.mu.Lock()
	srv, cut := s.srv, s.cut
	s.srv, s.cut = nil, nil
	s.mu.Unlock()
	if cut != nil {
		cut.cut()
	}
	if srv != nil {
		_ = srv.Close()
	}
}

// Start listens again on the same address after Stop.
func (s *Sink) Start() {
	s.t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the old socket may linger a moment
		if ln, err = net.Listen("tcp", s.Addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("sink: listen again on %s: %v", s.Addr, err)
	}
	s.serve(ln)
}

// Counts returns how many times each Message-ID was accepted.
func (s *Sink) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.counts)
}

// Subjects returns the (raw) Subject header of each Message-ID accepted.
func (s *Sink) Subjects() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.subjects)
}

// Messages returns the messages accepted so far, in order.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.received...)
}

// Connections counts the client connections the sink has had.
func (s *Sink) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Tries counts the MAIL FROM commands seen, accepted or refused.
func (s *Sink) Tries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tries
}

type sinkSession struct {
	s      *Sink
	conn   *smtp.Conn
	authed bool
	msg    Message
}

// AuthMechanisms offers PLAIN while RequireAuth is in force, else no AUTH.
func (ss *sinkSession) AuthMechanisms() []string {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	if ss.s.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *sinkSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		ss.s.mu.Lock()
		defer ss.s.mu.Unlock()
		if user != ss.s.user || pass != ss.s.pass {
			return smtp.ErrAuthFailed
		}
		ss.authed = true
		return nil
	}), nil
}

func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	ss.s.tries++
	if _, isTLS := ss.conn.TLSConnectionState(); ss.s.cert != nil && !isTLS {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Must issue a STARTTLS command first"}
	}
	if ss.s.user != "" && !ss.authed {
		return smtp.ErrAuthRequired
	}
	if ss.s.refuse != nil {
		return ss.s.refuse
	}
	if ss.s.answer != nil {
		if reply := ss.s.answer(ss.s.tries); reply != nil {
			return reply
		}
	}
	ss.msg = Message{From: from}
	return nil
}

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	if e := ss.s.rcptErr[to]; e != nil {
		return e
	}
	ss.msg.To = append(ss.msg.To, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	ss.s.mu.Lock()
	drop, dataErr := ss.s.dropData, ss.s.dataErr
	ss.s.mu.Unlock()
	if drop {
		_, _ = io.ReadFull(r, make([]byte, 64))
		ss.conn.Conn().Close()
		return io.ErrUnexpectedEOF
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if dataErr != nil {
		return dataErr
	}
	msg, err := mail.ReadMessage(bytes.NewReader(b))
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "not a message: " + err.Error()}
	}
	id := msg.Header.Get("Message-ID")
	ss.msg.Data, ss.msg.At = b, time.Now()
	ss.s.mu.Lock()
	ss.s.counts[id]++
	ss.s.subjects[id] = msg.Header.Get("Subject")
	ss.s.received = append(ss.s.received, ss.msg)
	ss.s.mu.Unlock()
	return nil
}

func (ss *sinkSession) Reset()        { ss.msg = Message{} }
func (ss *sinkSession) Logout() error { return nil }

// startTLSListener hands out connections on which the sink's reply answers
// STARTTLS before go-smtp sees the command (go-smtp can only accept it).
type startTLSListener struct {
	net.Listener
	reply string
}

func (l *startTLSListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &startTLSConn{Conn: c, reply: l.reply}, nil
}

type startTLSConn struct {
	net.Conn
	reply string
}

// Read passes the client's commands on, but for STARTTLS, which a client
// sends alone and then waits for the reply to.
func (c *startTLSConn) Read(p []byte) (int, error) {
	for {
		n, err := c.Conn.Read(p)
		if n > 0 && strings.EqualFold(string(p[:n]), "STARTTLS\r\n") {
			if _, err := io.WriteString(c.Conn, c.reply+"\r\n"); err != nil {
				return 0, err
			}
			continue
		}
		return n, err
	}
}
