package relay_test

import (
	"bytes"
	"maps"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/webhook"
)

// TestThreadedSubjectsNameOnlyTheConversation: two events of one
// conversation (the same thread key, see conversation) that differ in every
// other field get the same subject and the same References, so every mail
// client keeps them in one thread; Gmail splits a thread whose subject
// changes. Notifications thread by app, so their subject names the app,
// not the notification's title.
func TestThreadedSubjectsNameOnlyTheConversation(t *testing.T) {
	r, err := relay.NewRenderer("", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	route := &config.Route{Name: "r", To: []string{"a@example.com"}}
	tests := []struct {
		typ         string
		key         map[string]string // the fields conversation() threads by
		wantSubject string
	}{
		{relay.TypeSMS, map[string]string{"phone": "+639760713666"}, "SMS from +639760713666"},
		{relay.TypeWhatsApp, map[string]string{"wid": "+639760666713", "phone": "+639760713666"}, "WhatsApp from +639760713666"},
		{relay.TypeUSSD, map[string]string{"sim": "1", "code": "*143#"}, "USSD *143#"},
		{relay.TypeNotification, map[string]string{"package": "com.whatsapp"}, "Notifications from com.whatsapp"},
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
				ev := &relay.Event{ID: string(rune('a' + i)), Source: webhook.SourceGateway, Type: tt.typ, Data: data, Received: time.Unix(0, 0)}
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
	ev := &relay.Event{ID: "c", Type: relay.TypeNotification, Data: map[string]string{"package": "com.whatsapp", "title": "Ana", "content": "Hi, it's Ana"}, Received: time.Unix(0, 0)}
	msg, err := r.Render(ev, &config.Route{Name: "r", To: []string{"a@example.com"}, Thread: &off}, "h@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if want := "Ana: Hi, it's Ana"; msg.Subject != want {
		t.Errorf("unthreaded subject %q, want %q", msg.Subject, want)
	}
}

// TestThreadingOneConversation: three SMS from one number share one thread
// id and subject; another number is another thread; thread: false has none.
func TestThreadingOneConversation(t *testing.T) {
	r, err := relay.NewRenderer("", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	route := &config.Route{Name: "r", To: []string{"a@example.com"}}
	sms := func(id, phone, msg string) *relay.Event {
		return &relay.Event{ID: id, Source: webhook.SourceGateway, Type: "sms", Data: map[string]string{"phone": phone, "message": msg}, Received: time.Now()}
	}
	var threads, subjects []string
	for i, msg := range []string{"hi", "are you there?", "call me"} {
		m, err := r.Render(sms(string(rune('a'+i)), "+639760713666", msg), route, "hookmail <h@example.com>")
		if err != nil {
			t.Fatal(err)
		}
		threads, subjects = append(threads, m.ThreadID), append(subjects, m.Subject)
		var eml bytes.Buffer
		if err := m.WriteEML(&eml); err != nil {
			t.Fatal(err)
		}
		parsed, err := mail.ReadMessage(&eml)
		if err != nil {
			t.Fatal(err)
		}
		want := "<" + m.ThreadID + ">"
		if parsed.Header.Get("References") != want || parsed.Header.Get("In-Reply-To") != want {
			t.Errorf("email %d: References %q In-Reply-To %q, want %q", i, parsed.Header.Get("References"), parsed.Header.Get("In-Reply-To"), want)
		}
		if parsed.Header.Get("Message-Id") == want {
			t.Error("the thread id is an email's own Message-ID")
		}
	}
	if threads[0] == "" || threads[0] != threads[1] || threads[1] != threads[2] {
		t.Errorf("thread ids %q, want one shared", threads)
	}
	if subjects[0] != "SMS from +639760713666" || subjects[0] != subjects[2] {
		t.Errorf("subjects %q, want one stable subject", subjects)
	}
	if strings.Contains(threads[0], "639760713666") {
		t.Errorf("thread id %s shows the phone number", threads[0])
	}
	other, _ := r.Render(sms("d", "+15550001", "hi"), route, "h@example.com")
	if other.ThreadID == threads[0] {
		t.Error("another number shares the thread")
	}
	off := false
	flat, _ := r.Render(sms("e", "+639760713666", "hi"), &config.Route{Name: "r", To: []string{"a@example.com"}, Thread: &off}, "h@example.com")
	if flat.ThreadID != "" || flat.Subject != "SMS from +639760713666: hi" {
		t.Errorf("thread: false gives thread %q subject %q", flat.ThreadID, flat.Subject)
	}
}
