package smtp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"regexp"
	"slices"
	"strings"

	"github.com/wneessen/go-mail"

	"github.com/hookmail/hookmail/relay"
)

// Error is an error of the SMTP sender with what it means for the event:
// relay.Classify and relay.Hint read it. The sender wraps every error it
// returns in one, so its replies are judged here, where they are known.
type Error struct {
	Err   error
	class relay.ErrorClass
	hint  string
}

func (e *Error) Error() string                { return e.Err.Error() }
func (e *Error) Unwrap() error                { return e.Err }
func (e *Error) ErrorClass() relay.ErrorClass { return e.class }
func (e *Error) Hint() string                 { return e.hint }

// classify decides what a failed attempt means, from the server's reply,
// once the reply tables (replyTable.classify) found no throttling or quota
// reply in it. Anything not known to be permanent is temporary: retrying a
// permanent error costs a few attempts, dropping a temporary one loses mail.
// Failures that hint knows a fix for are config errors. SMTP replies go by
// their code; network and timeout errors carry no code and stay temporary.
func classify(err error) relay.ErrorClass {
	if relay.Classify(err) == relay.Permanent {
		return relay.Permanent
	}
	code, _ := SMTPReply(err)
	switch {
	case hint(err) != "":
		return relay.Config
	case code >= 500 && code < 600:
		return relay.Permanent
	}
	return relay.Temporary
}

// hint names the setting to fix when err is a failure no retry fixes until
// someone changes smtp.* or the server, and is "" for any other error: a
// Config error is an error Hint has a fix for. hookmail send-test and the
// workers' log give the same hint.
//
// go-mail v0.8.1 returns some of these causes as plain fmt.Errorf text
// only; those are matched on their text.
func hint(err error) string {
	if err == nil {
		return ""
	}
	var (
		startTLS *startTLSError
		verify   *tls.CertificateVerificationError
		dns      *net.DNSError
		connect  *connectError
		sender   *senderError
	)
	code, enhanced := SMTPReply(err)
	switch {
	case errors.As(err, &startTLS):
		// Before the auth codes: a "454 4.7.0" here is about TLS, not the login.
		return "the server offers STARTTLS but cannot start TLS now: its TLS setup (certificate, key) needs fixing, not hookmail's login; " +
			"or point smtp.host and smtp.port at a server whose STARTTLS works"
	case errors.As(err, &verify):
		return "the server's certificate is not trusted: set smtp.ca_file to the CA that signed it, or smtp.host to the name on the certificate"
	case errors.As(err, &dns) && dns.IsNotFound:
		return fmt.Sprintf("smtp.host %q does not resolve: correct smtp.host", dns.Name)
	case strings.Contains(err.Error(), "but target host does not support STARTTLS"): // go-mail, TLSMandatory
		return "the server does not offer STARTTLS: set smtp.tls: tls if it listens with implicit TLS (port 465), or smtp.tls: none only for a server on loopback"
	case slices.ContainsFunc(noCommonAuth, func(e error) bool { return errors.Is(err, e) }):
		return "the server offers no AUTH mechanism that smtp.auth allows: set smtp.auth to one it lists after AUTH (hookmail send-test shows the list)"
	case errors.Is(err, errNoAuthOffered) || strings.Contains(err.Error(), "server does not support SMTP AUTH"): // go-mail's auth()
		return "the server offers no AUTH: remove smtp.username if it needs no login; a server that offers AUTH only over TLS needs smtp.tls: starttls or tls"
	case authCodes[code] || authEnhanced[enhanced]:
		return "the server refused the login or wants one: check smtp.username and smtp.password or smtp.password_file (Gmail needs an app password)"
	case errors.As(err, &connect) && code >= 500:
		// A greeting, EHLO or AUTH refused for good is about hookmail's
		// setup, never the message: 5xx here must not bury events.
		return "the server refused hookmail's session before any email (its greeting, EHLO or AUTH reply): check smtp.host and smtp.port, and that the server takes mail from this host"
	case errors.As(err, &sender) && code >= 500:
		// MAIL FROM is smtp.from for every email: refused for good, it
		// would bury every event.
		return "the server refused the sender, smtp.from, for good (MAIL FROM): set smtp.from to an address smtp.username may send as (Microsoft 365: a mailbox it has Send As rights on; Gmail: its own address or a verified alias)"
	}
	return ""
}

// noCommonAuth are go-mail's errors for a server that offers AUTH, but not
// a mechanism smtp.auth allows: auto found none, or the one set is missing.
var noCommonAuth = []error{
	mail.ErrNoSupportedAuthDiscovered, mail.ErrPlainAuthNotSupported, mail.ErrLoginAuthNotSupported,
	mail.ErrCramMD5AuthNotSupported, mail.ErrSCRAMSHA1AuthNotSupported, mail.ErrSCRAMSHA256AuthNotSupported,
	mail.ErrXOauth2AuthNotSupported,
}

// Authentication failures are configuration errors: retried (someone may fix
// the password) but alerted on. Other 4.7.x/5.7.x replies are not: 4.7.0 is
// also "try again later" (Gmail's and Microsoft's throttling), 4.7.1 often
// greylisting, 5.7.0 and 5.7.1 often a spam or relay policy on that message;
// "530 5.7.0 Authentication required" is known by its code.
var (
	authCodes    = map[int]bool{530: true, 534: true, 535: true, 538: true}
	authEnhanced = map[string]bool{
		"4.7.12": true, "5.7.8": true, "5.7.9": true, "5.7.11": true, "5.7.14": true, "5.7.139": true,
	}
)

// SMTPReply finds the server's reply code and enhanced status code ("5.1.1")
// in err, as go-mail and net/smtp return them; 0 and "" when the error did
// not come from the server.
func SMTPReply(err error) (code int, enhanced string) {
	var tp *textproto.Error
	if errors.As(err, &tp) {
		return tp.Code, enhancedCode(tp.Msg)
	}
	var se *mail.SendError
	if errors.As(err, &se) {
		return se.ErrorCode(), se.EnhancedStatusCode()
	}
	return 0, ""
}

var enhancedRe = regexp.MustCompile(`^([245]\.\d{1,3}\.\d{1,3})\b`)

// enhancedCode reads the RFC 3463 code a reply text starts with.
func enhancedCode(msg string) string {
	if m := enhancedRe.FindStringSubmatch(strings.TrimSpace(msg)); m != nil {
		return m[1]
	}
	return ""
}
