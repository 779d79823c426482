package smtp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

// Sender delivers through one mail server. It keeps the connections it
// opened in a pool, so each worker reuses one connection for message after
// message, and drops a connection after any error rather than trust it.
//
// It drives MAIL, RCPT and DATA itself instead of go-mail's
// SendWithSMTPClient, which aborts the whole message when one recipient is
// refused: here the others still get it.
type Sender struct {
	client  *gomail.Client
	cfg     config.SMTP
	log     *slog.Logger
	idle    chan pooledConn
	metrics smtpMetrics
	replies *replyTable
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

var _ relay.Sender = (*Sender)(nil)

// New builds the sender from smtp.*: TLS mode without downgrade
// (starttls fails when the server does not offer it), certificates always
// verified against the system pool plus smtp.ca_file, AUTH when a username
// is set (never in clear but to loopback), and smtp.timeout on dial and on
// every message.
func New(cfg config.SMTP, log *slog.Logger, reg prometheus.Registerer) (*Sender, error) {
	return newSender(cfg, log, reg)
}

// newSender is New with extra go-mail options (send-test's
// conversation log).
func newSender(cfg config.SMTP, log *slog.Logger, reg prometheus.Registerer, extra ...gomail.Option) (*Sender, error) {
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
	replies, err := newReplyTable(cfg)
	if err != nil {
		return nil, err
	}
	s := &Sender{client: c, cfg: cfg, log: log, idle: make(chan pooledConn, cfg.Workers), metrics: newSMTPMetrics(reg), replies: replies}
	if cfg.Username != "" && cfg.TLS == config.TLSNone && cfg.Auth == "auto" {
		s.clearLogin = &clearLogin{host: cfg.Host, user: cfg.Username, pass: password}
	}
	return s, nil
}

// Send delivers m on a pooled connection, dialling one when none is idle.
// Its errors are *Error: classified, with a hint for a config error;
// throttling and quota replies are counted by their code.
func (s *Sender) Send(ctx context.Context, m *relay.Message) error {
	start := time.Now()
	defer func() { s.metrics.duration.Observe(time.Since(start).Seconds()) }()
	err := s.replies.classified(s.send(ctx, m))
	if c := relay.Classify(err); err != nil && (c == relay.Throttled || c == relay.Quota) {
		s.metrics.throttled(c, err)
	}
	return err
}

func (s *Sender) send(ctx context.Context, m *relay.Message) error {
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

func (s *Sender) close(sc *smtp.Client) {
	_ = sc.Close()
	s.metrics.connections.Dec()
}

// conn takes an idle connection, checked with NOOP when it sat unused a
// while, else dials a new one.
func (s *Sender) conn(ctx context.Context) (sc *smtp.Client, reused bool, err error) {
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
func (s *Sender) dial(ctx context.Context) (*smtp.Client, error) {
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

// senderError is the server's refusal of MAIL FROM. Its address is
// smtp.from, the same for every email, so a refusal for good is about
// hookmail's setup, never the message.
type senderError struct{ err error }

func (e *senderError) Error() string { return "smtp MAIL FROM: " + e.err.Error() }
func (e *senderError) Unwrap() error { return e.err }

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

// Close quits every idle connection.
func (s *Sender) Close() {
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
