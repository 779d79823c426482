package relay

import (
	"strings"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
)

func TestNormalizeType(t *testing.T) {
	for in, want := range map[string]string{"notifications": "notification", "notification": "notification", " SMS ": "sms", "Telegram": "telegram", "": ""} {
		if got := NormalizeType(in); got != want {
			t.Errorf("NormalizeType(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFieldNamesWireOrderThenAlphabetical(t *testing.T) {
	ev := &Event{Type: "sms", Data: map[string]string{"zeta": "", "message": "", "id": "", "alpha": "", "phone": ""}}
	got := strings.Join(ev.FieldNames(), ",")
	if want := "id,phone,message,alpha,zeta"; got != want {
		t.Errorf("FieldNames = %s, want %s", got, want)
	}
}

// TestEventTimeIgnoresTimestampsPastYear9999: past it the Date header would
// not parse, so the event shows when hookmail received it.
func TestEventTimeIgnoresTimestampsPastYear9999(t *testing.T) {
	received := time.Unix(1645684300, 0)
	for ts, want := range map[string]time.Time{
		"1645684231":          time.Unix(1645684231, 0),
		"253402214399":        time.Unix(253402214399, 0),
		"253402214400":        received,
		"9223372036854775807": received,
		"-1":                  received,
		"0":                   received,
	} {
		ev := &Event{Data: map[string]string{"timestamp": ts}, Received: received}
		if got := ev.Time(); !got.Equal(want) {
			t.Errorf("timestamp %s: Time = %v, want %v", ts, got, want)
		}
	}
	r, err := NewRenderer("", time.FixedZone("+14", 14*3600))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := r.Render(&Event{ID: "x", Type: "sms", Data: map[string]string{"timestamp": "253402214399"}}, &config.Route{Name: "r", To: []string{"a@example.com"}}, "h@example.com")
	if err != nil {
		t.Fatal(err)
	}
	CheckEmail(t, msg, EmailWant{From: "h@example.com", To: []string{"a@example.com"}, EventID: "x", MessageID: "hookmail.x.r@example.com", Date: time.Unix(253402214399, 0)})
}
