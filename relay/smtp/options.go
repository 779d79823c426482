package smtp

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/textproto"
	"os"
	"slices"
	"strings"

	gomail "github.com/wneessen/go-mail"

	"github.com/wneessen/go-mail/smtp"

	"github.com/hookmail/hookmail/config"
)

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
		// The host is loopback (newSender checked): nothing crosses a
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
