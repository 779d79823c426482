package relay

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
)

// danglingSubject finds what a subject shows of a field that is absent:
// "SMS from :", "SMS from ", "USSD : …", an empty "()".
var danglingSubject = regexp.MustCompile(`\b(from|to)\s*(:|$)|\s:|:\s*$|,\s*$|\(\s*\)|\s{2}`)

// danglingText finds the same in a text part or an HTML title: a label
// line with no value ("Device:"), "gateway id ,", "from" or "to" with
// nothing after it, "()".
var danglingText = regexp.MustCompile(`(?m)^[A-Za-z ]+:[ \t]*$|\b(id|from|to|account|SIM)\s*[,:)]|\b(from|to)[ \t]*$|\(\s*\)`)

// TestRenderOmitsAbsentFields renders every type with only the fields a
// webhook must have (the type, sometimes a message) and finds no trace of
// the fields left out: no empty label lines, no dangling "from" or ", ".
func TestRenderOmitsAbsentFields(t *testing.T) {
	r, err := NewRenderer("", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	off := false
	routes := map[string]*config.Route{
		"threaded":   {Name: "r", To: []string{"a@example.com"}},
		"unthreaded": {Name: "r", To: []string{"a@example.com"}, Thread: &off},
	}
	type event struct {
		name string
		ev   *Event
	}
	var events []event
	for _, typ := range []string{TypeSMS, TypeWhatsApp, TypeUSSD, TypeNotification, "telegram"} {
		events = append(events,
			event{typ + " with no fields", &Event{ID: "x", Type: typ, Data: map[string]string{}, Received: time.Unix(0, 0)}},
			event{typ + " with only a text", &Event{ID: "x", Type: typ, Data: map[string]string{"message": "hi", "content": "hi", "response": "hi"}, Received: time.Unix(0, 0)}},
		)
	}
	check := func(t *testing.T, msg *Message) {
		t.Helper()
		if danglingSubject.MatchString(msg.Subject) {
			t.Errorf("subject %q shows an absent field", msg.Subject)
		}
		if m := danglingText.FindString(msg.Text); m != "" {
			t.Errorf("text part shows an absent field (%q):\n%s", m, msg.Text)
		}
		title, _, _ := strings.Cut(msg.HTML, "</title>")
		_, title, _ = strings.Cut(title, "<title>")
		if m := danglingText.FindString(title); m != "" || strings.TrimSpace(title) == "" {
			t.Errorf("HTML title %q shows an absent field", title)
		}
	}
	for _, e := range events {
		for rname, route := range routes {
			t.Run(e.name+" "+rname, func(t *testing.T) {
				msg, err := r.Render(e.ev, route, "h@example.com")
				if err != nil {
					t.Fatal(err)
				}
				check(t, msg)
			})
		}
		t.Run(e.name+" in a digest", func(t *testing.T) {
			msg, err := r.RenderDigest([]DigestEntry{{Event: *e.ev}, {Event: *e.ev}}, routes["threaded"], "h@example.com")
			if err != nil {
				t.Fatal(err)
			}
			check(t, msg)
			for line := range strings.Lines(msg.Text) {
				if strings.TrimSpace(line) == "" && strings.HasPrefix(line, " ") {
					t.Errorf("digest text has a line of spaces where an event's text would be:\n%s", msg.Text)
				}
			}
		})
	}
}
