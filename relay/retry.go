package relay

import (
	"errors"
	"math/rand/v2"
	"net/textproto"
	"regexp"
	"strings"
	"time"

	"github.com/wneessen/go-mail"
)

// ErrorClass says what a failed delivery attempt means for the event.
type ErrorClass int

const (
	// Temporary failures are retried with backoff until retry.lifetime.
	Temporary ErrorClass = iota
	// Permanent failures go to the dead letters at once, never retried.
	Permanent
	// Config failures (authentication, relay refused) need an operator: they
	// are retried like temporary ones, and logged and counted apart.
	Config
)

// String is the class's reason label in hookmail_emails_failed_total.
func (c ErrorClass) String() string {
	switch c {
	case Permanent:
		return "permanent"
	case Config:
		return "config"
	}
	return "temporary"
}

// permanentError marks an error no retry can fix: a template that does not
// render, an address that does not parse.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// PermanentErr marks err as permanent for Classify.
func PermanentErr(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// Classify is the one place that decides whether a failed attempt is worth
// retrying. Anything not known to be permanent is temporary: retrying a
// permanent error costs a few attempts, dropping a temporary one loses mail.
// SMTP replies go by their code, with the overrides below first; network,
// TLS and timeout errors carry no code and stay temporary.
func Classify(err error) ErrorClass {
	var pe *permanentError
	if errors.As(err, &pe) {
		return Permanent
	}
	code, enhanced := SMTPReply(err)
	if class, ok := enhancedOverrides[enhanced]; ok {
		return class
	}
	switch {
	case authCodes[code] || authEnhanced[enhanced]:
		return Config
	case code >= 500 && code < 600:
		return Permanent
	}
	return Temporary
}

// enhancedOverrides are the known exceptions to "5xx is permanent".
var enhancedOverrides = map[string]ErrorClass{
	"5.4.5": Temporary, // Gmail's daily sending limit: clears within 24 h
}

// Authentication failures are configuration errors: retried (someone may fix
// the password) but alerted on. Other 4.7.x/5.7.x replies are not: 4.7.1 is
// often greylisting, 5.7.1 often a spam or relay policy on that message.
var (
	authCodes    = map[int]bool{530: true, 534: true, 535: true, 538: true}
	authEnhanced = map[string]bool{
		"4.7.0": true, "4.7.12": true, "5.7.0": true, "5.7.8": true,
		"5.7.9": true, "5.7.11": true, "5.7.14": true, "5.7.139": true,
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

// Backoff is the wait before retry number attempt (0 for the first retry):
// initial doubled each time, capped at max, with "equal jitter" (half fixed,
// half random) so a burst of failures does not retry in lockstep.
func Backoff(initial, max time.Duration, attempt int) time.Duration {
	d := initial
	for i := 0; i < attempt && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	half := d / 2
	return half + rand.N(d-half+1)
}
