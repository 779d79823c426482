package relay

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestOutcomesLastHour: counts older than an hour drop out minute by
// minute, a minute's slot is reused an hour later, and causes stay bounded.
func TestOutcomesLastHour(t *testing.T) {
	o := newOutcomes()
	t0 := time.Date(2026, 3, 1, 12, 0, 30, 0, time.UTC)
	o.sent(t0)
	o.sent(t0.Add(10 * time.Minute))
	o.failed(t0.Add(10*time.Minute), Temporary, "451 busy")
	o.failed(t0.Add(20*time.Minute), Temporary, "451 busy")
	o.dead(t0.Add(20*time.Minute), "permanent error: 550")
	for _, tc := range []struct {
		at                    time.Duration
		sent, temporary, dead int
		causes                int
	}{
		{30 * time.Minute, 2, 2, 1, 1},
		{59*time.Minute + 29*time.Second, 2, 2, 1, 1}, // t0's minute is 59 minutes old
		{60 * time.Minute, 1, 2, 1, 1},                // and now an hour
		{75 * time.Minute, 0, 1, 1, 1},                // so is the 10th minute's
		{81 * time.Minute, 0, 0, 0, 0},                // everything, and the cause last seen at 20
	} {
		s := o.Summary(t0.Add(tc.at))
		if s.Sent != tc.sent || s.Temporary != tc.temporary || s.Dead != tc.dead || len(s.Causes) != tc.causes {
			t.Errorf("at +%s: %+v, want %d sent, %d temporary, %d dead, %d causes", tc.at, s, tc.sent, tc.temporary, tc.dead, tc.causes)
		}
	}
	o.sent(t0.Add(60 * time.Minute)) // in t0's slot, an hour on
	if s := o.Summary(t0.Add(75 * time.Minute)); s.Sent != 1 {
		t.Errorf("a reused slot counts %d sent, want 1", s.Sent)
	}

	for i := range maxCauses + 5 {
		o.failed(t0.Add(2*time.Hour+time.Duration(i)*time.Second), Permanent, fmt.Sprintf("550 user %d", i))
	}
	o.failed(t0.Add(3*time.Hour), Permanent, strings.Repeat("x", 2*maxCauseLen))
	s := o.Summary(t0.Add(3 * time.Hour))
	if len(s.Causes) != maxCauses {
		t.Fatalf("%d causes kept, want %d", len(s.Causes), maxCauses)
	}
	if c := s.Causes[0]; len(c.Error) > maxCauseLen+len("…") || c.Class != "permanent" {
		t.Errorf("the latest cause: %q (%d bytes), want it cut to %d", c.Class, len(c.Error), maxCauseLen)
	}
	if last := s.Causes[len(s.Causes)-1].Error; last != "550 user 6" {
		t.Errorf("the oldest cause kept is %q, want 550 user 6 (the oldest evicted first)", last)
	}
}
