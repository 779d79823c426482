package smtp

import (
	"errors"
	"fmt"
	"net/mail"
	"net/textproto"
	"strings"

	"github.com/wneessen/go-mail/smtp"

	"github.com/hookmail/hookmail/relay"
)

// transact sends one message: MAIL, RCPT for each recipient, DATA. A
// recipient refused for good (5xx) is logged and skipped while any other is
// accepted; the recipients refused for now (4xx) come back in a
// *relay.PartialError once the others have the message.
func (s *Sender) transact(sc *smtp.Client, m *relay.Message) error {
	if err := sc.UpdateDeadline(s.cfg.Timeout); err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	raw, err := m.Encode()
	if err != nil {
		return err
	}
	from, err := mail.ParseAddress(m.From)
	if err != nil {
		return relay.PermanentErr(fmt.Errorf("from %q: %w", m.From, err))
	}
	// go-mail's smtp.Client sends the path as given; RFC 5321 wants it in
	// angle brackets, and strict servers (Mailpit) refuse it without.
	err = sc.Mail("<" + from.Address + ">")
	s.reply(err)
	if err != nil {
		// A 421 also closes a connection that sat idle too long; one
		// that asks to slow down is no such thing.
		if code, _ := SMTPReply(err); code == 0 || (code == 421 && !s.replies.paces(err)) {
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
		if s.replies.classify(err) == relay.Permanent {
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
		return &relay.PartialError{Later: later, Err: deferred}
	}
	return nil
}

// reply counts the server's answer to a command, and passes an error reply
// to onReply (an error without a reply, a failed connection, is not one).
func (s *Sender) reply(err error) {
	s.metrics.reply(err)
	var tp *textproto.Error
	if s.onReply != nil && errors.As(err, &tp) {
		s.onReply(fmt.Sprintf("%d %s", tp.Code, tp.Msg))
	}
}

// envelope lists every recipient address, Bcc included, each once; only
// m.Envelope's when that is set (the recipients a retry still owes).
func envelope(m *relay.Message) []string {
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
