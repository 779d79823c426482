package relay

import (
	"os"
	"slices"
	"testing"

	"github.com/hookmail/hookmail/config"
)

// SmallBusiness is the README's routing example; exported for the
// external tests of the workers.
func SmallBusiness() []config.Route {
	return []config.Route{
		{Name: "drop-otp", Match: map[string]string{"type": "sms", "message": `(?i)\bOTP\b|verification code`}, Drop: true},
		{Name: "sales-sim1", Match: map[string]string{"type": "sms", "sim": "1"}, To: []string{"sales@example.com"}},
		{Name: "support-sim2", Match: map[string]string{"type": "sms", "sim": "2"}, To: []string{"support@example.com"}, Continue: true},
		{Name: "audit-sim2", Match: map[string]string{"sim": "/^2$/"}, To: []string{"audit@example.com"}},
		{Name: "owner-whatsapp", Match: map[string]string{"type": "whatsapp", "wid": "+639760713666"}, To: []string{"owner@example.com"}},
		{Name: "facebook", Match: map[string]string{"type": "notifications", "package": `^com\.facebook\.`}, To: []string{"me@example.com"}},
		{Name: "default", To: []string{"ops@example.com"}},
	}
}

func TestRouterRules(t *testing.T) {
	r := NewRouter(SmallBusiness())
	for _, tc := range []struct {
		name string
		ev   Event
		want []string
	}{
		{"sim 1 to sales", Event{Type: "sms", Data: map[string]string{"sim": "1", "message": "hello"}}, []string{"sales-sim1"}},
		{"sim 10 is not sim 1", Event{Type: "sms", Data: map[string]string{"sim": "10"}}, []string{"default"}},
		{"sim 2 continues to audit", Event{Type: "sms", Data: map[string]string{"sim": "2"}}, []string{"support-sim2", "audit-sim2"}},
		{"OTP dropped, case-insensitively", Event{Type: "sms", Data: map[string]string{"sim": "1", "message": "Your otp is 1234"}}, []string{"drop-otp"}},
		{"OTP inside a word is not", Event{Type: "sms", Data: map[string]string{"sim": "1", "message": "hotpot tonight"}}, []string{"sales-sim1"}},
		{"verification code dropped", Event{Type: "sms", Data: map[string]string{"message": "Your verification code: 9"}}, []string{"drop-otp"}},
		{"whatsapp of the owner's number", Event{Type: "whatsapp", Data: map[string]string{"wid": "+639760713666"}}, []string{"owner-whatsapp"}},
		{"whatsapp of another number", Event{Type: "whatsapp", Data: map[string]string{"wid": "+1555"}}, []string{"default"}},
		{"facebook by package regex", Event{Type: "notification", Data: map[string]string{"package": "com.facebook.katana"}}, []string{"facebook"}},
		{"a look-alike package", Event{Type: "notification", Data: map[string]string{"package": "comXfacebook.katana"}}, []string{"default"}},
		{"a field the event lacks", Event{Type: "ussd", Data: map[string]string{}}, []string{"default"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, rt := range r.Routes(&tc.ev) {
				got = append(got, rt.Name)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("routes %v, want %v", got, tc.want)
			}
		})
	}
	if rt := r.Match(&Event{Type: "sms", Data: map[string]string{"message": "OTP 1"}}); rt != nil {
		t.Errorf("Match of a dropped event = %s, want none", rt.Name)
	}
	noDefault := NewRouter(SmallBusiness()[:6])
	if rts := noDefault.Routes(&Event{Type: "ussd"}); len(rts) != 0 {
		t.Errorf("without a default: %v, want none", rts)
	}
}

// TestRouteMatchesADottedFieldFromTheConfigFile: a match key naming a
// nested field of a JSON webhook as the formats flatten it
// (payload.simNumber), written in the config file in either YAML style, is
// kept whole, not split into nested keys at the dot, and routes the event.
func TestRouteMatchesADottedFieldFromTheConfigFile(t *testing.T) {
	for style, yaml := range map[string]string{
		"flow":  "routes:\n  - name: sim2\n    match: { type: sms, \"payload.simNumber\": \"2\" }\n    to: [a@example.com]\n  - name: other\n    to: [b@example.com]\n",
		"block": "routes:\n  - name: sim2\n    match:\n      type: sms\n      payload.simNumber: \"2\"\n    to: [a@example.com]\n  - name: other\n    to: [b@example.com]\n",
	} {
		t.Run(style, func(t *testing.T) {
			path := t.TempDir() + "/hookmail.yaml"
			if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(path, func(string) string { return "" })
			if err != nil {
				t.Fatal(err)
			}
			r := NewRouter(cfg.Routes)
			sim := func(n string) *Event {
				return &Event{Type: "sms", Format: config.FormatSMSGate, Data: map[string]string{"payload.simNumber": n, "payload.message": "hi"}}
			}
			if got := r.Match(sim("2")); got == nil || got.Name != "sim2" {
				t.Errorf("an SMS on SIM 2 went to %v, want route sim2", got)
			}
			if got := r.Match(sim("1")); got == nil || got.Name != "other" {
				t.Errorf("an SMS on SIM 1 went to %v, want route other", got)
			}
		})
	}
}
