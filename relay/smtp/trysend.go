package smtp

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	gomail "github.com/wneessen/go-mail"
	maillog "github.com/wneessen/go-mail/log"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

// stepLog prints go-mail's SMTP conversation, one line per command and
// reply. go-mail redacts AUTH data from it.
type stepLog struct{ w io.Writer }

func (l stepLog) print(e maillog.Log) {
	dir := "S:"
	if e.Direction == maillog.DirClientToServer {
		dir = "C:"
	}
	l.lines(dir, fmt.Sprintf(e.Format, e.Messages...))
}

// reply prints a server reply go-mail's log leaves out (see onReply).
func (l stepLog) reply(text string) { l.lines("S:", text) }

func (l stepLog) lines(dir, text string) {
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		fmt.Fprintf(l.w, "    %s %s\n", dir, strings.TrimSpace(line))
	}
}

func (l stepLog) Debugf(e maillog.Log) { l.print(e) }
func (l stepLog) Infof(e maillog.Log)  { l.print(e) }
func (l stepLog) Warnf(e maillog.Log)  { l.print(e) }
func (l stepLog) Errorf(e maillog.Log) { l.print(e) }

// SendTest sends one test email to the addresses in to through the
// configured server, printing each step (connect, TLS and the server
// certificate, AUTH, MAIL, RCPT, DATA) with the server's replies, so a user
// sees where a setup fails. A recipient refused for good does not stop the
// others, as in delivery. The error names the failing step and its class.
func SendTest(ctx context.Context, cfg config.SMTP, to []string, w io.Writer) error {
	sender, err := newSender(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry(),
		gomail.WithDebugLog(), gomail.WithLogger(stepLog{w}))
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "connect %s:%d (tls: %s, timeout %s)\n", cfg.Host, cfg.Port, cfg.TLS, cfg.Timeout)
	sc, err := sender.dial(ctx)
	if err != nil {
		return sender.stepFailed("connect, TLS or AUTH", err)
	}
	if state, err := sc.GetTLSConnectionState(); err == nil && len(state.PeerCertificates) > 0 {
		cert := state.PeerCertificates[0]
		fmt.Fprintf(w, "TLS %s, certificate subject %q, issuer %q, valid until %s (verified)\n",
			tls.VersionName(state.Version), cert.Subject.String(), cert.Issuer.String(), cert.NotAfter.Format(time.DateOnly))
	} else {
		fmt.Fprintln(w, "no TLS: the connection is in clear text (smtp.tls: none)")
	}
	if cfg.Username != "" {
		fmt.Fprintf(w, "authenticated as %s\n", cfg.Username)
	}
	sender.onReply = stepLog{w}.reply
	msg := &relay.Message{
		EventID: "send-test", Route: "send-test",
		From: cfg.From, To: to,
		Subject: "hookmail test email",
		Text:    "This is a test email from hookmail send-test. If you can read it, SMTP delivery works.\n",
		HTML:    "<p>This is a test email from <b>hookmail send-test</b>. If you can read it, SMTP delivery works.</p>",
		Date:    time.Now(), MessageID: relay.MessageID(fmt.Sprintf("send-test-%d", time.Now().UnixNano()), "send-test", cfg.From),
	}
	fmt.Fprintf(w, "send a test email from %s to %s\n", cfg.From, strings.Join(to, ", "))
	err = sender.transact(sc, msg)
	_ = sc.Quit()
	_ = sc.Close()
	if err != nil {
		return sender.stepFailed("MAIL, RCPT or DATA", err)
	}
	fmt.Fprintln(w, "the server accepted the test email")
	return nil
}

func (s *Sender) stepFailed(step string, err error) error {
	code, enhanced := SMTPReply(err)
	class := s.replies.classify(err)
	reply := "no SMTP reply (network, TLS or timeout)"
	if class == relay.Config {
		reply = "no SMTP reply"
	}
	if code != 0 {
		reply = fmt.Sprintf("server replied %d %s", code, enhanced)
	}
	fix := ""
	if h := hint(err); h != "" && class == relay.Config {
		fix = "; " + h
	}
	return fmt.Errorf("%s failed (%s, %s): %w%s", step, reply, class, err, fix)
}
