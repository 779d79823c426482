package relay

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"net/textproto"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"

	"github.com/hookmail/hookmail/config"
)

// SMTPSender delivers through one mail server. It keeps the connections it
// opened in a pool, so each worker reuses one connection for message after
// message, and drops a connection after any error rather than trust it.
//
// It drives MAIL, RCPT and DATA itself instead of go-mail's
// SendWithSMTPClient, which aborts the whole message when one recipient is
// refused: here the others still get it.
type SMTPSender struct {
	client  *gomail.Client
	cfg     config.SMTP
	log     *slog.Logger
	idle    chan pooledConn
	metrics smtpMetrics
	// clearLogin, when set, logs in on each new connection in go-mail's
	// stead (smtp.auth auto without TLS, to loopback).
	clearLogin *clearLogin
	// onReply, when set, gets the replies go-mail's debug log leaves out:
	// the error replies to MAIL, RCPT and DATA, and the final reply to the
	// data. send-test prints them.
	onReply func(reply string)
}

// pooledConn is an open connection and when it last finished a message.
type pooledConn struct {
	sc       *smtp.Client
	lastUsed time.Time
}

// idleCheckAfter is how long a pooled connection may sit unused before it
// is checked with NOOP: servers close idle connections (Postfix after 300 s),
// but a busy connection needs no extra round trip per message.
const idleCheckAfter = 5 * time.Second

type smtpMetrics struct {
	duration    prometheus.Histogram
	connections prometheus.Gauge
	replies     *prometheus.CounterVec
}

func newSMTPMetrics(reg prometheus.Registerer) smtpMetrics {
	f := promauto.With(reg)
	return smtpMetrics{
		duration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "hookmail_smtp_send_duration_seconds",
			Help:    "Time to send one email over SMTP, connecting included, whatever the outcome.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		connections: f.NewGauge(prometheus.GaugeOpts{
			Name: "hookmail_smtp_connections",
			Help: "SMTP connections open now.",
		}),
		replies: f.NewCounterVec(prometheus.CounterOpts{
			Name: "hookmail_smtp_replies_total",
			Help: "SMTP replies to MAIL, RCPT and DATA by reply code (250, 451, 550, ...).",
		}, []string{"code"}),
	}
}

// reply counts the server's answer to one command: 250 when err is nil.
func (m smtpMetrics) reply(err error) {
	code := 250
	if err != nil {
		if code, _ = SMTPReply(err); code == 0 {
			return // no reply: the connection failed
		}
	}
	m.replies.WithLabelValues(strconv.Itoa(code)).Inc()
}

var _ Sender = (*SMTPSender)(nil)

// NewSMTPSender builds the sender from smtp.*: TLS mode without downgrade
// (starttls fails when the server does not offer it), certificates always
// verified against the system pool plus smtp.ca_file, AUTH when a username
// is set (never in clear but to loopback), and smtp.timeout on dial and on
// every message.
func NewSMTPSender(cfg config.SMTP, log *slog.Logger, reg prometheus.Registerer) (*SMTPSender, error) {
	return newSMTPSender(cfg, log, reg)
}

// newSMTPSender is NewSMTPSender with extra go-mail options (send-test's
// conversation log).
func newSMTPSender(cfg config.SMTP, log *slog.Logger, reg prometheus.Registerer, extra ...gomail.Option) (*SMTPSender, error) {
	// Validate refuses this config too; the sender checks again so that no
	// path, whatever the mechanism (XOAUTH2 sends its token as it is), puts
	// credentials on a network in clear.
	if cfg.CredentialsInClear() {
		return nil, fmt.Errorf("smtp.tls: none would send smtp.username's credentials in clear to %q, which is not a loopback address: use starttls or tls, or relay through a server on loopback", cfg.Host)
	}
	password, err := smtpPassword(cfg)
	if err != nil {
		return nil, err
	}
	opts, err := clientOptions(cfg, password)
	if err != nil {
		return nil, err
	}
	c, err := gomail.NewClient(cfg.Host, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("smtp: %w", err)
	}
	c.ErrorHandlerRegistry.RegisterHandler(cfg.Host, "STARTTLS", startTLSReplies{})
	s := &SMTPSender{client: c, cfg: cfg, log: log, idle: make(chan pooledConn, cfg.Workers), metrics: newSMTPMetrics(reg)}
	if cfg.Username != "" && cfg.TLS == config.TLSNone && cfg.Auth == "auto" {
		s.clearLogin = &clearLogin{host: cfg.Host, user: cfg.Username, pass: password}
	}
	return s, nil
}

// authTypes maps smtp.auth to go-mail's mechanisms.
var authTypes = map[string]gomail.SMTPAuthType{
	"auto":          gomail.SMTPAuthAutoDiscover,
	"plain":         gomail.SMTPAuthPlain,
	"login":         gomail.SMTPAuthLogin,
	"cram-md5":      gomail.SMTPAuthCramMD5,
	"scram-sha-1":   gomail.SMTPAuthSCRAMSHA1,
	"scram-sha-256": gomail.SMTPAuthSCRAMSHA256,
	"xoauth2":       gomail.SMTPAuthXOAUTH2,
}

// smtpPassword is smtp.password, or smtp.password_file's content.
func smtpPassword(cfg config.SMTP) (string, error) {
	if cfg.PasswordFile == "" {
		return cfg.Password.Reveal(), nil
	}
	b, err := os.ReadFile(cfg.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("smtp.password_file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

func clientOptions(cfg config.SMTP, password string) ([]gomail.Option, error) {
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("smtp.ca_file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("smtp.ca_file: %s holds no PEM certificate", cfg.CAFile)
		}
	}
	opts := []gomail.Option{
		gomail.WithPort(cfg.Port),
		gomail.WithTimeout(cfg.Timeout),
		gomail.WithTLSConfig(&tls.Config{ServerName: cfg.Host, RootCAs: roots, MinVersion: tls.VersionTLS12}),
	}
	switch cfg.TLS {
	case config.TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case config.TLSImplicit:
		opts = append(opts, gomail.WithSSL(), gomail.WithTLSPolicy(gomail.NoTLS))
	case config.TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if cfg.Username == "" {
		return opts, nil
	}
	auth := authTypes[cfg.Auth]
	if cfg.TLS == config.TLSNone {
		// The host is loopback (newSMTPSender checked): nothing crosses a
		// network, so PLAIN and LOGIN are fine in clear. go-mail sends them
		// without TLS only as their -NOENC variants, and its autodiscovery
		// never picks them without TLS, so auto is clearLogin's to do.
		switch cfg.Auth {
		case "plain":
			auth = gomail.SMTPAuthPlainNoEnc
		case "login":
			auth = gomail.SMTPAuthLoginNoEnc
		case "auto":
			return opts, nil
		}
	}
	return append(opts, gomail.WithSMTPAuth(auth), gomail.WithUsername(cfg.Username), gomail.WithPassword(password)), nil
}

// startTLSError is the server's error reply to STARTTLS, e.g. "454 4.7.0
// TLS not available due to local problem": the server's TLS setup is at
// fault, whatever the enhanced code suggests.
type startTLSError struct{ err error }

func (e *startTLSError) Error() string { return "STARTTLS: " + e.err.Error() }
func (e *startTLSError) Unwrap() error { return e.err }

// startTLSReplies marks go-mail's error for a reply to STARTTLS, which it
// returns as a bare *textproto.Error, like a reply to any other command.
type startTLSReplies struct{}

func (startTLSReplies) HandleError(_, _ string, _ *textproto.Conn, err error) error {
	var reply *textproto.Error
	if errors.As(err, &reply) {
		return &startTLSError{err: err}
	}
	return err
}

// clearLogin is smtp.auth auto on a connection without TLS to a loopback
// server: the first mechanism the server offers, in go-mail's order of
// preference, PLAIN and LOGIN included.
type clearLogin struct{ host, user, pass string }

// errNoAuthOffered: the server offers no AUTH while smtp.username is set.
var errNoAuthOffered = errors.New("server does not support SMTP AUTH")

func (l *clearLogin) login(sc *smtp.Client) error {
	ok, offered := sc.Extension("AUTH")
	if !ok {
		return errNoAuthOffered
	}
	mechs := strings.Fields(offered)
	for _, mech := range []string{"SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN", "LOGIN"} {
		if !slices.Contains(mechs, mech) {
			continue
		}
		var a smtp.Auth
		switch mech {
		case "SCRAM-SHA-256":
			a = smtp.ScramSHA256Auth(l.user, l.pass)
		case "SCRAM-SHA-1":
			a = smtp.ScramSHA1Auth(l.user, l.pass)
		case "CRAM-MD5":
			a = smtp.CRAMMD5Auth(l.user, l.pass)
		case "PLAIN":
			a = smtp.PlainAuth("", l.user, l.pass, l.host, true)
		case "LOGIN":
			a = smtp.LoginAuth(l.user, l.pass, l.host, true)
		}
		if err := sc.Auth(a); err != nil {
			return fmt.Errorf("SMTP AUTH failed: %w", err)
		}
		return nil
	}
	return fmt.Errorf("%w (the server offers AUTH %s)", gomail.ErrNoSupportedAuthDiscovered, offered)
}

// Send delivers m on a pooled connection, dialling one when none is idle.
func (s *SMTPSender) Send(ctx context.Context, m *Message) error {
	start := time.Now()
	defer func() { s.metrics.duration.Observe(time.Since(start).Seconds()) }()
	sc, reused, err := s.conn(ctx)
	if err != nil {
		return err
	}
	err = s.transact(sc, m)
	if reused && errors.Is(err, errStale) {
		// The server closed the pooled connection while it sat idle
		// (nothing of this message was accepted): once more on a new one.
		s.close(sc)
		if sc, err = s.dial(ctx); err != nil {
			return err
		}
		err = s.transact(sc, m)
	}
	// A completed DATA ends the transaction (RFC 5321 4.1.1.4): no RSET.
	if err == nil {
		select {
		case s.idle <- pooledConn{sc: sc, lastUsed: time.Now()}:
			return nil
		default:
		}
	}
	s.close(sc)
	return err
}

// errStale marks a MAIL command that found the connection closed (no reply,
// or 421): nothing of the message reached the server.
var errStale = errors.New("connection closed by the server")

func (s *SMTPSender) close(sc *smtp.Client) {
	_ = sc.Close()
	s.metrics.connections.Dec()
}

// conn takes an idle connection, checked with NOOP when it sat unused a
// while, else dials a new one.
func (s *SMTPSender) conn(ctx context.Context) (sc *smtp.Client, reused bool, err error) {
	for {
		select {
		case pc := <-s.idle:
			if time.Since(pc.lastUsed) < idleCheckAfter || (pc.sc.UpdateDeadline(s.cfg.Timeout) == nil && pc.sc.Noop() == nil) {
				return pc.sc, true, nil
			}
			s.close(pc.sc)
			continue
		default:
		}
		sc, err := s.dial(ctx)
		return sc, false, err
	}
}

// dial opens a new connection: TCP, TLS as configured, EHLO, AUTH.
func (s *SMTPSender) dial(ctx context.Context) (*smtp.Client, error) {
	sc, err := s.client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return nil, &connectError{host: s.cfg.Host, port: s.cfg.Port, err: err}
	}
	s.metrics.connections.Inc()
	if s.clearLogin != nil {
		if err := s.clearLogin.login(sc); err != nil {
			s.close(sc)
			return nil, &connectError{host: s.cfg.Host, port: s.cfg.Port, err: err}
		}
	}
	return sc, nil
}

// connectError is a failure to open a session: connect, TLS, EHLO, AUTH.
// No message was involved yet, so even a 5xx reply gives none up (Hint).
type connectError struct {
	host string
	port int
	err  error
}

func (e *connectError) Error() string {
	return fmt.Sprintf("smtp connect %s:%d: %v", e.host, e.port, e.err)
}

func (e *connectError) Unwrap() error { return e.err }

// transact sends one message: MAIL, RCPT for each recipient, DATA. A
// recipient refused for good (5xx) is logged and skipped while any other is
// accepted; the recipients refused for now (4xx) come back in a
// *PartialError once the others have the message.
func (s *SMTPSender) transact(sc *smtp.Client, m *Message) error {
	if err := sc.UpdateDeadline(s.cfg.Timeout); err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	raw, err := m.Encode()
	if err != nil {
		return err
	}
	from, err := mail.ParseAddress(m.From)
	if err != nil {
		return PermanentErr(fmt.Errorf("from %q: %w", m.From, err))
	}
	// go-mail's smtp.Client sends the path as given; RFC 5321 wants it in
	// angle brackets, and strict servers (Mailpit) refuse it without.
	err = sc.Mail("<" + from.Address + ">")
	s.reply(err)
	if err != nil {
		if code, _ := SMTPReply(err); code == 0 || code == 421 {
			return fmt.Errorf("smtp MAIL FROM: %w: %w", errStale, err)
		}
		return fmt.Errorf("smtp MAIL FROM: %w", err)
	}
	rcpts := envelope(m)
	var accepted int
	var refused []error
	var refusedTo, later []string
	var deferred error
	for _, rcpt := range rcpts {
		err := sc.Rcpt("<" + rcpt + ">")
		s.reply(err)
		if err == nil {
			accepted++
			continue
		}
		// The address is in the error, so a dead letter's reason names it.
		err = fmt.Errorf("smtp RCPT TO <%s>: %w", rcpt, err)
		if Classify(err) == Permanent {
			refused = append(refused, err)
			refusedTo = append(refusedTo, rcpt)
		} else {
			deferred = errors.Join(deferred, err)
			later = append(later, rcpt)
		}
	}
	for i, err := range refused {
		msg := "mail server refused a recipient for good; delivering to the others it accepted"
		switch {
		case len(rcpts) == 1:
			msg = "mail server refused the only recipient for good"
		case accepted == 0:
			msg = "mail server refused a recipient for good, and accepted none of the others"
		}
		s.log.Warn(msg, "id", m.EventID, "route", m.Route, "recipient", refusedTo[i], "others_accepted", accepted, "err", err)
	}
	switch {
	case accepted == 0 && deferred != nil:
		return deferred
	case accepted == 0:
		return errors.Join(refused...)
	}
	w, err := sc.Data()
	if err != nil {
		s.reply(err)
		return fmt.Errorf("smtp DATA: %w", err)
	}
	if _, err := w.Write(raw); err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	err = w.Close()
	s.reply(err)
	if err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	m.Receipt = "250"
	if r, ok := w.(interface{ ServerResponse() string }); ok {
		m.Receipt += " " + r.ServerResponse()
	}
	if s.onReply != nil {
		s.onReply(m.Receipt)
	}
	if len(later) > 0 {
		// The others have it now; these get the same message on the retry.
		return &PartialError{Later: later, Err: deferred}
	}
	return nil
}

// reply counts the server's answer to a command, and passes an error reply
// to onReply (an error without a reply, a failed connection, is not one).
func (s *SMTPSender) reply(err error) {
	s.metrics.reply(err)
	var tp *textproto.Error
	if s.onReply != nil && errors.As(err, &tp) {
		s.onReply(fmt.Sprintf("%d %s", tp.Code, tp.Msg))
	}
}

// PartialError is a message the server took for some recipients and
// refused for now (4xx) for the others, listed in Later: the retry sends it
// to those only.
type PartialError struct {
	Later []string
	Err   error
}

func (e *PartialError) Error() string {
	return fmt.Sprintf("sent, but %d recipient(s) refused for now: %v", len(e.Later), e.Err)
}

func (e *PartialError) Unwrap() error { return e.Err }

// envelope lists every recipient address, Bcc included, each once; only
// m.Envelope's when that is set (the recipients a retry still owes).
func envelope(m *Message) []string {
	if len(m.Envelope) > 0 {
		return m.Envelope
	}
	seen := map[string]bool{}
	var out []string
	for _, list := range [][]string{m.To, m.Cc, m.Bcc} {
		for _, a := range list {
			addr, err := mail.ParseAddress(a)
			if err != nil || seen[strings.ToLower(addr.Address)] {
				continue
			}
			seen[strings.ToLower(addr.Address)] = true
			out = append(out, addr.Address)
		}
	}
	return out
}

// Close quits every idle connection.
func (s *SMTPSender) Close() {
	for {
		select {
		case pc := <-s.idle:
			_ = pc.sc.Quit()
			s.close(pc.sc)
		default:
			return
		}
	}
}
