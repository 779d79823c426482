package relay

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	for attempt, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second} {
		for range 50 {
			got := Backoff(time.Second, 10*time.Second, attempt)
			if got < want/2 || got > want {
				t.Fatalf("Backoff(attempt %d) = %v, want within [%v, %v]", attempt, got, want/2, want)
			}
		}
	}
}

// ClassedError is an error its Sender classified, as relay/smtp's Error
// is (relay/smtp's own tests check which reply gets which class and hint);
// exported for the external tests of the workers.
type ClassedError struct {
	Err   error
	Class ErrorClass
	Fix   string // what Hint returns
}

func (e *ClassedError) Error() string          { return e.Err.Error() }
func (e *ClassedError) Unwrap() error          { return e.Err }
func (e *ClassedError) ErrorClass() ErrorClass { return e.Class }
func (e *ClassedError) Hint() string           { return e.Fix }

// TestClassifyKnowsOnlyMarkedErrors: the core knows no mail server: an
// error is permanent when marked so, has the class its Sender gave it, and
// is temporary otherwise, wrapped or not.
func TestClassifyKnowsOnlyMarkedErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		wantClass ErrorClass
		wantHint  string
	}{
		{"plain", errors.New("550 5.1.1 no such user"), Temporary, ""},
		{"marked permanent", PermanentErr(errors.New("bad address")), Permanent, ""},
		{"marked permanent, wrapped", fmt.Errorf("route a: %w", PermanentErr(errors.New("bad address"))), Permanent, ""},
		{"classed by its sender", &ClassedError{Err: errors.New("535 5.7.8 login refused"), Class: Config, Fix: "fix smtp.password"}, Config, "fix smtp.password"},
		{"classed, wrapped", fmt.Errorf("route a: %w", &ClassedError{Err: errors.New("550 5.1.1 no such user"), Class: Permanent}), Permanent, ""},
		{"partly sent", &PartialError{Later: []string{"b@example.com"}, Err: &ClassedError{Err: errors.New("452 4.2.2 mailbox full"), Class: Temporary}}, Temporary, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(tc.err); got != tc.wantClass {
				t.Errorf("Classify = %v, want %v", got, tc.wantClass)
			}
			if got := Hint(tc.err); got != tc.wantHint {
				t.Errorf("Hint = %q, want %q", got, tc.wantHint)
			}
		})
	}
	if PermanentErr(nil) != nil {
		t.Error("PermanentErr(nil) is not nil")
	}
}
