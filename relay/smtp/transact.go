package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"slices"
	"strings"
	"sync"

	"github.com/wneessen/go-mail/smtp"

	"github.com/hookmail/hookmail/relay"
)

// transact sends one message: MAIL, RCPT for each recipient, DATA. A
// recipient refused for good (5xx) is logged and skipped while any other is
// accepted; the recipients refused for now (4xx) come back in a
// *relay.PartialError once the others have the message.
//
// When the server offers PIPELINING (RFC 2920), MAIL, the RCPTs and DATA
// go out in one write and their replies are read together, as Postfix's
// own client does: two round trips a message instead of three plus one per
// recipient. send-test goes step by step, to print each reply as it comes.
func (s *Sender) transact(sc *smtp.Client, m *relay.Message) error {
	if err := sc.UpdateDeadline(s.cfg.Timeout); err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	raw, err := m.Encode()
	if err != nil {
		return err
	}
	from, err := relay.ParseAddress(m.From)
	if err != nil {
		return relay.PermanentErr(fmt.Errorf("from %q: %w", m.From, err))
	}
	rcpts := envelope(m)
	var env envelopeReplies
	if ok, _ := sc.Extension("PIPELINING"); ok && s.onReply == nil && len(rcpts) <= maxPipelined {
		env = s.pipeline(sc, from.Address, rcpts)
	} else {
		env = s.stepwise(sc, from.Address, rcpts)
	}
	if err := env.mail; err != nil {
		// A 421 also closes a connection that sat idle too long; one
		// that asks to slow down is no such thing.
		if code, _ := SMTPReply(err); code == 0 || (code == 421 && !s.replies.paces(err)) {
			return fmt.Errorf("smtp MAIL FROM: %w: %w", errStale, err)
		}
		return &senderError{err: err}
	}
	var accepted int
	var refused []error
	var refusedTo, later []string
	var deferred error
	for i, rcpt := range rcpts {
		err := env.rcpt[i]
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
	if env.data != nil {
		return fmt.Errorf("smtp DATA: %w", env.data)
	}
	if _, err := env.body.Write(raw); err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	receipt, err := env.end()
	s.reply(err)
	if err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	m.Receipt = "250"
	if receipt != "" {
		m.Receipt += " " + receipt
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

// maxPipelined is the most recipients sent in one pipelined write: RFC
// 2920 3.1 warns that a batch larger than the TCP windows can deadlock
// client and server; more go step by step.
const maxPipelined = 100

// envelopeReplies is what the server answered to MAIL, to each RCPT and to
// DATA; body takes the message once DATA was answered 354, and end sends
// the final dot and reads the server's reply to the message.
type envelopeReplies struct {
	mail error
	rcpt []error
	data error
	body io.Writer
	end  func() (receipt string, err error)
}

// stepwise sends each command after the reply to the one before, and DATA
// only when a recipient was accepted.
func (s *Sender) stepwise(sc *smtp.Client, from string, rcpts []string) envelopeReplies {
	// go-mail's smtp.Client sends the path as given; RFC 5321 wants it in
	// angle brackets, and strict servers (Mailpit) refuse it without.
	env := envelopeReplies{mail: sc.Mail("<" + from + ">"), rcpt: make([]error, len(rcpts))}
	s.reply(env.mail)
	if env.mail != nil {
		return env
	}
	accepted := false
	for i, rcpt := range rcpts {
		env.rcpt[i] = sc.Rcpt("<" + rcpt + ">")
		s.reply(env.rcpt[i])
		accepted = accepted || env.rcpt[i] == nil
	}
	if !accepted {
		return env
	}
	w, err := sc.Data()
	if err != nil {
		s.reply(err)
		env.data = err
		return env
	}
	env.body = w
	env.end = func() (string, error) {
		if err := w.Close(); err != nil {
			return "", err
		}
		if r, ok := w.(interface{ ServerResponse() string }); ok {
			return r.ServerResponse(), nil
		}
		return "", nil
	}
	return env
}

// pipeline writes MAIL, every RCPT and DATA at once and then reads their
// replies in order (RFC 2920). A server that refused every recipient
// refuses the DATA too; if it took it anyway, transact returns the
// recipients' errors and send closes the connection, so no message goes.
func (s *Sender) pipeline(sc *smtp.Client, from string, rcpts []string) envelopeReplies {
	env := envelopeReplies{rcpt: make([]error, len(rcpts))}
	t := sc.Text
	if err := validLines(from, rcpts); err != nil {
		env.mail = err
		return env
	}
	// The parameters go-mail's Mail adds.
	params := ""
	if ok, _ := sc.Extension("8BITMIME"); ok {
		params += " BODY=8BITMIME"
	}
	if ok, _ := sc.Extension("SMTPUTF8"); ok {
		params += " SMTPUTF8"
	}
	fmt.Fprintf(t.W, "MAIL FROM:<%s>%s\r\n", from, params)
	for _, rcpt := range rcpts {
		fmt.Fprintf(t.W, "RCPT TO:<%s>\r\n", rcpt)
	}
	t.W.WriteString("DATA\r\n")
	if err := t.W.Flush(); err != nil {
		env.mail = err
		return env
	}
	// lost ends the exchange when a read fails (the connection, not a
	// reply): every command not yet answered failed with it.
	lost := func(from int, err error) envelopeReplies {
		for i := from; i < len(rcpts); i++ {
			env.rcpt[i] = err
		}
		env.data = err
		return env
	}
	_, _, env.mail = t.ReadResponse(250)
	s.reply(env.mail)
	if env.mail != nil && !isReply(env.mail) {
		return lost(0, env.mail)
	}
	// After a refused MAIL the server refuses the rest too (503): those
	// replies are read but not counted, as the step-by-step exchange
	// never draws them.
	count := func(err error) {
		if env.mail == nil {
			s.reply(err)
		}
	}
	for i := range rcpts {
		_, _, env.rcpt[i] = t.ReadResponse(25)
		count(env.rcpt[i])
		if env.rcpt[i] != nil && !isReply(env.rcpt[i]) {
			return lost(i, env.rcpt[i])
		}
	}
	if _, _, env.data = t.ReadResponse(354); env.data != nil {
		count(env.data)
		return env
	}
	w := &dotStuffer{w: t.W}
	env.body = w
	env.end = func() (string, error) {
		if err := w.close(); err != nil {
			return "", err
		}
		_, msg, err := t.ReadResponse(250)
		return msg, err
	}
	return env
}

// dotStuffer writes a message as DATA's content (RFC 5321 4.5.2): every
// line ends in CRLF (a bare LF gets its CR), a line that begins with "."
// gets another, and close ends the content with "." on a line of its own.
// textproto's DotWriter does the same byte by byte, a tenth of a
// delivery's CPU; this copies whole lines, into a buffer that close sends
// in one write (one system call for most emails, where the DotWriter
// made one per 4 KB).
type dotStuffer struct {
	w   *bufio.Writer
	buf *[]byte // from stuffed, back to it at close
}

// stuffed keeps the buffers of finished messages for the next ones.
var stuffed = sync.Pool{New: func() any { return new([]byte) }}

func (d *dotStuffer) Write(p []byte) (int, error) {
	n := len(p)
	if d.buf == nil {
		d.buf = stuffed.Get().(*[]byte)
		*d.buf = (*d.buf)[:0]
	}
	b := *d.buf
	for len(p) > 0 {
		atLineStart := len(b) == 0 || b[len(b)-1] == '\n'
		if atLineStart && p[0] == '.' {
			b = append(b, '.')
		}
		nl := bytes.IndexByte(p, '\n')
		if nl < 0 {
			b = append(b, p...)
			break
		}
		b = append(b, p[:nl]...)
		if len(b) == 0 || b[len(b)-1] != '\r' {
			b = append(b, '\r')
		}
		b = append(b, '\n')
		p = p[nl+1:]
	}
	*d.buf = b
	return n, nil
}

func (d *dotStuffer) close() error {
	var b []byte
	if d.buf != nil {
		b = *d.buf
		defer func() {
			if cap(b) <= 1<<20 { // a large email's buffer is not kept
				*d.buf = b[:0]
				stuffed.Put(d.buf)
			}
			d.buf = nil
		}()
	}
	switch {
	case len(b) == 0 || b[len(b)-1] == '\n':
	case b[len(b)-1] == '\r':
		b = append(b, '\n')
	default:
		b = append(b, '\r', '\n')
	}
	b = append(b, ".\r\n"...)
	if _, err := d.w.Write(b); err != nil {
		return err
	}
	return d.w.Flush()
}

// validLines refuses an address that would break the command line it is
// sent on, as go-mail's commands do.
func validLines(from string, rcpts []string) error {
	breaks := func(l string) bool { return strings.ContainsAny(l, "\r\n") }
	if breaks(from) || slices.ContainsFunc(rcpts, breaks) {
		return errors.New("smtp: A line must not contain CR or LF")
	}
	return nil
}

// isReply reports whether err is the server's reply, not a failed read.
func isReply(err error) bool {
	var tp *textproto.Error
	return errors.As(err, &tp)
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
			addr, err := relay.ParseAddress(a)
			if err != nil || seen[strings.ToLower(addr.Address)] {
				continue
			}
			seen[strings.ToLower(addr.Address)] = true
			out = append(out, addr.Address)
		}
	}
	return out
}
