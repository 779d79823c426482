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
)

func (c ErrorClass) String() string {
	if c == Permanent {
		return "permanent"
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
func Classify(err error) ErrorClass {
	var pe *permanentError
	if errors.As(err, &pe) {
		return Permanent
	}
	return Temporary
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
