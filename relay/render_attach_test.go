package relay_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/mail"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/outbox"
)

// randomBytes are n bytes no encoding can shrink, from a fixed seed.
func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// mmsEvent is an MMS as a format with inline files (smsgate) stores it.
func mmsEvent(text string, files ...relay.Attachment) *relay.Event {
	return &relay.Event{
		ID: "01900000-0000-7000-8000-0000000000a1", Source: "android", Format: relay.FormatSMSGate, Type: relay.TypeMMS,
		Data:     map[string]string{"message": text},
		Content:  relay.Content{From: "+639760713666", To: "+639760666713", Text: text, MessageID: "m1", Attachments: files},
		Received: time.Unix(1645684300, 0),
	}
}

const attachFrom = "hookmail <h@example.com>"

// renderChecked renders ev on route and checks its email as CheckEmail
// does, within MaxEmailBytes.
func renderChecked(t *testing.T, ev *relay.Event, route *config.Route) (*relay.Message, *relay.Email) {
	t.Helper()
	r, err := relay.NewRenderer("", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := r.Render(ev, route, attachFrom)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := msg.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) > relay.MaxEmailBytes {
		t.Errorf("email of %d bytes, over MaxEmailBytes (%d)", len(raw), relay.MaxEmailBytes)
	}
	e := relay.CheckEmail(t, msg, relay.EmailWant{From: "h@example.com", To: route.To, EventID: ev.ID,
		MessageID: relay.MessageID(ev.ID, route.Name, attachFrom), Date: ev.Time()})
	return msg, e
}

// TestEmailAttachesInlineFiles: two files with their bytes come back out
// of the email, decoded, byte for byte, with their names and types (a
// default name with the type's extension for the one without); a file
// with only a URL is linked; the text and HTML name each; the email is
// multipart/mixed around the text and HTML, with its Message-ID and thread
// headers as without files. The outbox's .eml is the same email.
func TestEmailAttachesInlineFiles(t *testing.T) {
	photo, clip := randomBytes(300_000, 1), randomBytes(70_001, 2)
	ev := mmsEvent("Look!",
		relay.Attachment{Name: "photo.jpg", ContentType: "image/jpeg", Data: photo},
		relay.Attachment{ContentType: "image/png", Data: clip},
		relay.Attachment{URL: "https://media.example/f/3", ContentType: "video/mp4"},
	)
	route := &config.Route{Name: "r", To: []string{"a@example.com"}}
	msg, e := renderChecked(t, ev, route)
	want := []relay.EmailFile{{Name: "photo.jpg", ContentType: "image/jpeg", Data: photo}, {Name: "attachment-2.png", ContentType: "image/png", Data: clip}}
	if len(e.Files) != len(want) {
		t.Fatalf("%d files, want %d", len(e.Files), len(want))
	}
	for i, w := range want {
		got := e.Files[i]
		if got.Name != w.Name || got.ContentType != w.ContentType || !bytes.Equal(got.Data, w.Data) {
			t.Errorf("file %d: %q %q, %d bytes (equal: %v); want %q %q, %d bytes", i, got.Name, got.ContentType, len(got.Data), bytes.Equal(got.Data, w.Data), w.Name, w.ContentType, len(w.Data))
		}
	}
	for _, line := range []string{"Attached:     photo.jpg (image/jpeg, 300 KB)", "Attached:     attachment-2.png (image/png, 70 KB)", "Attachment:   https://media.example/f/3"} {
		if !strings.Contains(e.Text, line) {
			t.Errorf("text part lacks %q:\n%s", line, e.Text)
		}
	}
	for _, s := range []string{"Attached: photo.jpg (image/jpeg, 300 KB)", "Attached: attachment-2.png", `href="https://media.example/f/3"`} {
		if !strings.Contains(e.HTML, s) {
			t.Errorf("HTML part lacks %q", s)
		}
	}
	if got := e.Header.Get("References"); got == "" || got != e.Header.Get("In-Reply-To") {
		t.Errorf("References %q, In-Reply-To %q: want the conversation's", got, e.Header.Get("In-Reply-To"))
	}
	if ev.Content.Attachments[1].Name != "" {
		t.Error("rendering changed the event's files")
	}

	ob, err := outbox.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	eml, err := os.ReadFile(ob.FileName(msg))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := msg.Encode()
	if !bytes.Equal(eml, raw) {
		t.Error("the outbox's .eml differs from the encoded email")
	}
	if _, err := mail.ReadMessage(bytes.NewReader(eml)); err != nil {
		t.Error(err)
	}
}

// TestAttachmentNamesAndTypesAreMadeSafe: a sender's file name loses its
// directories, line breaks, quotes and spoofing characters; a media type
// that is not one, or is MIME structure, becomes application/octet-stream.
func TestAttachmentNamesAndTypesAreMadeSafe(t *testing.T) {
	tests := []struct {
		name, ct         string
		wantName, wantCT string
	}{
		{"../../etc/passwd", "text/plain", "passwd.txt", "text/plain"},
		{`C:\Users\a\"x".jpg`, "IMAGE/JPEG; name=evil", "_x_.jpg", "image/jpeg"},
		{"a\r\nBcc: x@evil.example.png", "image/png\r\nX-Injected: 1", "a Bcc_ x@evil.example.png", "application/octet-stream"},
		{"\u202Egnp.exe", "application/x-msdownload", "gnp.exe", "application/x-msdownload"},
		{"=?UTF-8?q?=0D=0ABcc:_x@evil.example?=", "image/gif", "__UTF-8_q__0D_0ABcc__x@evil.example__", "image/gif"},
		{"nested", "multipart/mixed; boundary=x", "nested", "application/octet-stream"},
		{"mail", "message/rfc822", "mail", "application/octet-stream"},
		{"noslash", "image", "noslash", "application/octet-stream"},
		{"..", "", "attachment-9", "application/octet-stream"},
		{strings.Repeat("ü", 300) + ".jpeg", "image/jpeg", strings.Repeat("ü", 95) + ".jpeg", "image/jpeg"},
		{"résumé.pdf", "application/pdf", "résumé.pdf", "application/pdf"},
	}
	for _, tt := range tests {
		t.Run(tt.wantName, func(t *testing.T) {
			files := make([]relay.Attachment, 9)
			for i := range files {
				files[i] = relay.Attachment{URL: "https://media.example/x"} // links before it, so it is the 9th file
			}
			files[8] = relay.Attachment{Name: tt.name, ContentType: tt.ct, Data: []byte("data")}
			_, e := renderChecked(t, mmsEvent("hi", files...), &config.Route{Name: "r", To: []string{"a@example.com"}})
			if len(e.Files) != 1 {
				t.Fatalf("%d files", len(e.Files))
			}
			if got := e.Files[0]; got.Name != tt.wantName || got.ContentType != tt.wantCT || string(got.Data) != "data" {
				t.Errorf("got %q %q %q, want %q %q", got.Name, got.ContentType, got.Data, tt.wantName, tt.wantCT)
			}
		})
	}
}

// TestAttachmentsOverTheCapAreLeftOutWithANote: files attach in order up
// to MaxAttachmentBytes together; one that would pass it, and one larger
// than it alone, is left out, and both the text and the HTML say so.
func TestAttachmentsOverTheCapAreLeftOutWithANote(t *testing.T) {
	ev := mmsEvent("three photos and a film",
		relay.Attachment{Name: "a.jpg", ContentType: "image/jpeg", Data: randomBytes(3_000_000, 1)},
		relay.Attachment{Name: "b.jpg", ContentType: "image/jpeg", Data: randomBytes(3_000_000, 2)},
		relay.Attachment{Name: "c.jpg", ContentType: "image/jpeg", Data: randomBytes(3_000_000, 3)},
		relay.Attachment{Name: "film.mp4", ContentType: "video/mp4", Data: randomBytes(relay.MaxAttachmentBytes+1, 4)},
		relay.Attachment{Name: "d.jpg", ContentType: "image/jpeg", Data: randomBytes(900_000, 5)},
	)
	msg, e := renderChecked(t, ev, &config.Route{Name: "r", To: []string{"a@example.com"}})
	if msg.Plain != "" {
		t.Fatalf("plain fallback: %s", msg.Plain)
	}
	var names []string
	for _, f := range e.Files {
		names = append(names, f.Name)
	}
	if strings.Join(names, ",") != "a.jpg,b.jpg,d.jpg" {
		t.Errorf("attached %v, want a.jpg, b.jpg and d.jpg (the one that still fits)", names)
	}
	for _, line := range []string{
		"Not attached: c.jpg (3.0 MB, more than the room left in this email)",
		"Not attached: film.mp4 (7.0 MB, more than the 7.0 MB an email may attach)",
	} {
		if !strings.Contains(e.Text, line) {
			t.Errorf("text part lacks %q:\n%s", line, e.Text)
		}
		if !strings.Contains(e.HTML, strings.Join(strings.Fields(line), " ")) {
			t.Errorf("HTML part lacks %q", line)
		}
	}
}

// TestLongTextLeavesLessRoomForFiles: the text and HTML come first; files
// fill the room they leave, and one that does not fit is named as left out
// rather than the email falling back to plain text.
func TestLongTextLeavesLessRoomForFiles(t *testing.T) {
	text := strings.Repeat("abc ", 400_000) // 1.6 MB, in the text and the HTML part
	ev := mmsEvent(text,
		relay.Attachment{Name: "small.jpg", ContentType: "image/jpeg", Data: randomBytes(2_000_000, 1)},
		relay.Attachment{Name: "large.jpg", ContentType: "image/jpeg", Data: randomBytes(4_900_000, 2)},
	)
	msg, e := renderChecked(t, ev, &config.Route{Name: "r", To: []string{"a@example.com"}})
	if msg.Plain != "" {
		t.Fatalf("plain fallback: %s", msg.Plain)
	}
	if len(e.Files) != 1 || e.Files[0].Name != "small.jpg" {
		t.Fatalf("files %d, want small.jpg alone", len(e.Files))
	}
	const note = "Not attached: large.jpg (4.9 MB, more than the room left in this email)"
	if !strings.Contains(e.Text, note) || !strings.Contains(e.HTML, note) {
		t.Errorf("the text or HTML lacks %q", note)
	}
}

// TestPlainFallbackAttachesWhatFits: an event whose HTML would be too
// large goes as the plain fallback, which still attaches the files that
// fit beside its text and names the others, within MaxEmailBytes.
func TestPlainFallbackAttachesWhatFits(t *testing.T) {
	quotes := strings.Repeat(`"`, 2_500_000) // &#34; in HTML: 12.5 MB
	ev := mmsEvent(quotes,
		relay.Attachment{Name: "a.jpg", ContentType: "image/jpeg", Data: randomBytes(3_000_000, 1)},
		relay.Attachment{Name: "b.jpg", ContentType: "image/jpeg", Data: randomBytes(3_000_000, 2)},
		relay.Attachment{URL: "https://media.example/c", Note: "the fetch failed: timed out"},
	)
	msg, e := renderChecked(t, ev, &config.Route{Name: "r", To: []string{"a@example.com"}})
	if msg.Plain == "" {
		t.Fatal("no plain fallback")
	}
	if len(e.Files) != 1 || e.Files[0].Name != "a.jpg" || !bytes.Equal(e.Files[0].Data, ev.Content.Attachments[0].Data) {
		t.Fatalf("files %d, want a.jpg alone", len(e.Files))
	}
	for _, line := range []string{
		"\nmessage: " + quotes + "\n",
		"\nAttached:     a.jpg (image/jpeg, 3.0 MB)\n",
		"\nNot attached: b.jpg (3.0 MB, more than the room left in this email)\n",
		"\nAttachment:   https://media.example/c (the fetch failed: timed out)\n",
	} {
		if !strings.Contains(e.Text, line) {
			t.Errorf("plain text lacks %.100q", line)
		}
	}
}

// TestFailedFetchIsLinkedWithItsNote: a remote file the worker could not
// fetch keeps its link, and the email says why it is not attached.
func TestFailedFetchIsLinkedWithItsNote(t *testing.T) {
	ev := mmsEvent("hi", relay.Attachment{URL: "https://media.example/a", Note: "larger than media.max_bytes (5.2 MB)"})
	_, e := renderChecked(t, ev, &config.Route{Name: "r", To: []string{"a@example.com"}})
	if len(e.Files) != 0 {
		t.Errorf("%d files", len(e.Files))
	}
	if !strings.Contains(e.Text, "Attachment:   https://media.example/a (larger than media.max_bytes (5.2 MB))") {
		t.Errorf("text:\n%s", e.Text)
	}
	if !strings.Contains(e.HTML, `href="https://media.example/a"`) || !strings.Contains(e.HTML, "(larger than media.max_bytes (5.2 MB))") {
		t.Errorf("HTML lacks the link or its note")
	}
}
