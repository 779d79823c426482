package relay

import (
	"strings"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
)

// spoofers are characters that change how the text around them displays
// without showing themselves; "\u202Egnp.exe" shows as "exe.png".
const spoofers = "\u202A\u202B\u202C\u202D\u202E\u2066\u2067\u2068\u2069\u200E\u200F\u061C\u200B\u2060\uFEFF\u180E"

// TestSpoofingCharactersAreStripped: bidi controls and zero-width
// characters are taken out where a reader judges who wrote and what it is
// about (the subject, the phone number, the facts), and kept, isolated, in
// the message itself, where right-to-left languages need them.
func TestSpoofingCharactersAreStripped(t *testing.T) {
	r, err := NewRenderer("", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	off := false
	route := &config.Route{Name: "r", To: []string{"a@example.com"}, Thread: &off}
	ev := &Event{ID: "x", Type: TypeSMS, Received: time.Unix(0, 0), Data: map[string]string{
		"phone":   "+1415\u202E555\u200B2671",
		"sim":     "\u20661\u2069",
		"device":  "\u202Ekcatta\u202C",
		"message": "Pay \u202Egnp.exe\u202C now \u200F\u05E9\u05DC\u05D5\u05DD\u200E 👩\u200D💻",
	}}
	msg, err := r.Render(ev, route, "h@example.com")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("subject", func(t *testing.T) {
		if strings.ContainsAny(msg.Subject, spoofers) {
			t.Errorf("subject %+q keeps a bidi or zero-width character", msg.Subject)
		}
		if want := "SMS from +14155552671: Pay gnp.exe now \u05E9\u05DC\u05D5\u05DD 👩\u200D💻"; msg.Subject != want {
			t.Errorf("subject %+q, want %+q", msg.Subject, want)
		}
	})
	t.Run("phone", func(t *testing.T) {
		for _, in := range []string{"+1415\u202E555\u200B2671", "\u202E+14155552671", "+14155552671\uFEFF", "\u2066+1\u2060415 555 2671\u2069"} {
			if got := formatPhone(in); got != "+1 415-555-2671" {
				t.Errorf("phone %+q = %+q, want +1 415-555-2671", in, got)
			}
		}
		if got := formatPhone("BANK\u202E"); got != "BANK" {
			t.Errorf("phone of a sender name %+q, want BANK", got)
		}
		if !strings.Contains(msg.Text, "SMS from +1 415-555-2671 on SIM 1\n") {
			t.Errorf("text part does not show the phone clean:\n%s", msg.Text)
		}
		if !strings.Contains(msg.HTML, "<title>SMS from &#43;1 415-555-2671</title>") { // html/template escapes + in a title
			t.Errorf("HTML title does not show the phone clean")
		}
	})
	t.Run("facts", func(t *testing.T) {
		got := facts("Device", "\u202Ekcatta\u202C", "SIM", "\u2066\u2069", "From", "+1")
		if len(got) != 2 || got[0].Value != "kcatta" || got[1].Value != "+1" {
			t.Errorf("facts = %+q, want Device kcatta and From +1 (a SIM of only controls is empty)", got)
		}
		if strings.Contains(msg.HTML, "\u202Ekcatta") {
			t.Error("the HTML facts keep the device's override")
		}
	})
	t.Run("message kept and isolated", func(t *testing.T) {
		if !strings.Contains(msg.Text, ev.Data["message"]) {
			t.Errorf("text part changed the message:\n%+q", msg.Text)
		}
		if !strings.Contains(msg.HTML, `<div dir="auto">Pay `+"\u202Egnp.exe\u202C") {
			t.Errorf("HTML part does not isolate the message in a dir=auto block:\n%s", msg.HTML)
		}
	})
}
