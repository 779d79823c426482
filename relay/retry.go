package relay

import (
	"errors"
	"math/rand/v2"
	"time"
)

// ErrorClass says what a failed delivery attempt means for the event.
type ErrorClass int

const (
	// Temporary failures are retried with backoff until retry.lifetime.
	Temporary ErrorClass = iota
	// Permanent failures go to the dead letters at once, never retried.
	Permanent
	// Config failures need an operator (see Hint): they are retried until
	// fixed, whatever retry.lifetime says, and logged and counted apart.
	Config
	// Throttled is a reply that asks hookmail to slow down: the pace drops
	// and the email waits for its turn. The attempt does not count: it is
	// no failure of the email's, and never sends it to the dead letters.
	Throttled
	// Quota is a reply that says the sending quota is used up: every email
	// waits until smtp.quota_reset. The attempt does not count either.
	Quota
)

// String is the class's reason label in hookmail_emails_failed_total.
func (c ErrorClass) String() string {
	switch c {
	case Permanent:
		return "permanent"
	case Config:
		return "config"
	case Throttled:
		return "throttled"
	case Quota:
		return "quota"
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

// classed is an error whose Sender knows what it means: the SMTP sender
// classifies the server's replies itself (relay/smtp), as only it knows
// them.
type classed interface {
	error
	ErrorClass() ErrorClass
}

// hinted is an error that says which setting would fix it.
type hinted interface {
	error
	Hint() string
}

// Classify decides whether a failed attempt is worth retrying: an error
// marked permanent is, one a Sender classified has its class, and anything
// else is temporary: retrying a permanent error costs a few attempts,
// dropping a temporary one loses mail.
func Classify(err error) ErrorClass {
	var pe *permanentError
	if errors.As(err, &pe) {
		return Permanent
	}
	var c classed
	if errors.As(err, &c) {
		return c.ErrorClass()
	}
	return Temporary
}

// Hint names the setting to fix for a config error, "" for others.
func Hint(err error) string {
	var h hinted
	if errors.As(err, &h) {
		return h.Hint()
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
