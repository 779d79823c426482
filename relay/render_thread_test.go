package relay

import (
	"bytes"
	"maps"
	"net/mail"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
)

// TestThreadedSubjectsNameOnlyTheConversation: two events of one
// conversation (the same thread key, see conversation) that differ in every
// other field get the same subject and the same References, so every mail
// client keeps them in one thread; Gmail splits a thread whose subject
// changes. Notifications thread by app, so their subject names the app,
// not the notification's title.
func TestThreadedSubjectsNameOnlyTheConversation(t *testing.T) {
	r, err := NewRenderer("", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	route := &config.Route{Name: "r", To: []string{"a@example.com"}}
	tests := []struct {
		typ         string
		key         map[string]string // the fields conversation() threads by
		wantSubject string
	}{
		{TypeSMS, map[string]string{"phone": "+639760713666"}, "SMS from +639760713666"},
		{TypeWhatsApp, map[string]string{"wid": "+639760666713", "phone": "+639760713666"}, "WhatsApp from +639760713666"},
		{TypeUSSD, map[string]string{"sim": "1", "code": "*143#"}, "USSD *143#"},
		{TypeNotification, map[string]string{"package": "com.whatsapp"}, "Notifications from com.whatsapp"},
		{"telegram", map[string]string{"phone": "+639760713666"}, "telegram event from +639760713666"},
	}
	others := []map[string]string{
		{"id": "1", "title": "Ana", "content": "Hi, it's Ana", "message": "first", "response": "Balance 10", "device": "d1", "attachment": "https://example.com/a.jpg", "timestamp": "1645684231"},
		{"id": "2", "title": "Ben", "content": "Ben here", "message": "second", "response": "Balance 20", "device": "d2", "sim": "2", "timestamp": "1645684999"},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			var subjects, refs []string
			for i, other := range others {
				data := maps.Clone(other)
				maps.Copy(data, tt.key)
				ev := &Event{ID: string(rune('a' + i)), Source: SourceGateway, Type: tt.typ, Data: data, Received: time.Unix(0, 0)}
				msg, err := r.Render(ev, route, "h@example.com")
				if err != nil {
					t.Fatal(err)
				}
				raw, err := msg.Encode()
				if err != nil {
					t.Fatal(err)
				}
				parsed, err := mail.ReadMessage(bytes.NewReader(raw))
				if err != nil {
					t.Fatal(err)
				}
				subjects = append(subjects, msg.Subject)
				refs = append(refs, parsed.Header.Get("References"))
			}
			if subjects[0] != tt.wantSubject || subjects[1] != subjects[0] {
				t.Errorf("subjects %q, want %q for both", subjects, tt.wantSubject)
			}
			if refs[0] == "" || refs[1] != refs[0] {
				t.Errorf("References %q, want one thread", refs)
			}
		})
	}

	// Not threaded, a notification's subject says what it is about.
	off := false
	ev := &Event{ID: "c", Type: TypeNotification, Data: map[string]string{"package": "com.whatsapp", "title": "Ana", "content": "Hi, it's Ana"}, Received: time.Unix(0, 0)}
	msg, err := r.Render(ev, &config.Route{Name: "r", To: []string{"a@example.com"}, Thread: &off}, "h@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if want := "Ana: Hi, it's Ana"; msg.Subject != want {
		t.Errorf("unthreaded subject %q, want %q", msg.Subject, want)
	}
}
