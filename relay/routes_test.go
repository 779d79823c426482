package relay

import (
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
