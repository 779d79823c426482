package relay

import (
	"testing"

	"github.com/hookmail/hookmail/config"
)

// TestFilterMatches: the text filter reads the canonical content of every
// format, and a route filter holds by the rules or by the item's progress.
func TestFilterMatches(t *testing.T) {
	twilio := &Item{State: StateWaiting, Event: Event{ID: "ev-1", Source: "twilio", Format: FormatTwilio, Type: TypeSMS,
		Content: Content{From: "+15550001111", To: "+15559990000", Text: "Meet at NOON"}}}
	zender := &Item{State: StateDelivering, Delivered: []string{"audit"}, Event: Event{ID: "ev-2", Source: "gateway", Type: TypeSMS,
		Data: map[string]string{"phone": "+639760713666", "message": "hello"}}}
	router := NewRouter([]config.Route{{Name: "us", Match: map[string]string{"source": "twilio"}}, {Name: "rest"}})
	for _, tc := range []struct {
		name string
		f    Filter
		it   *Item
		want bool
	}{
		{"no filter", Filter{}, twilio, true},
		{"text of another format's content", Filter{Text: "noon"}, twilio, true},
		{"text in the recipient", Filter{Text: "9990000"}, twilio, true},
		{"text of the zender data", Filter{Text: "63976"}, zender, true},
		{"text nowhere", Filter{Text: "lunch"}, twilio, false},
		{"source", Filter{Source: "gateway"}, twilio, false},
		{"route by the rules", Filter{Route: "us", Router: router}, twilio, true},
		{"route the rules do not give", Filter{Route: "rest", Router: router}, twilio, false},
		{"route delivered already", Filter{Route: "audit"}, zender, true},
		{"delivering only", Filter{State: StateDelivering}, twilio, false},
		{"delivering", Filter{State: StateDelivering}, zender, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.f.Matches(tc.it); got != tc.want {
				t.Errorf("Matches = %v, want %v", got, tc.want)
			}
			if tc.f != (Filter{}) && tc.f.KeepsAll() {
				t.Error("KeepsAll holds for a filter")
			}
		})
	}
}
