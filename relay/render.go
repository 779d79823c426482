package relay

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"strings"
	"sync/atomic"
	texttemplate "text/template"
	"time"

	"github.com/hookmail/hookmail/config"
)

// GenericTemplate renders every type without templates of its own.
const GenericTemplate = "generic"

// layoutFile wraps every HTML part; each type's HTML file defines the
// blocks "title", "body" and "facts" that it calls.
const layoutFile = "layout.html.tmpl"

// maxSubjectRunes keeps subjects readable in every mail client's list view.
const maxSubjectRunes = 150

// Renderer turns an event into an email with the type's templates: a
// subject and a plain-text part through text/template, an HTML part through
// html/template, which escapes every field.
type Renderer struct {
	loc  *time.Location
	sets map[string]*templateSet
	// subjects are the routes' own subject templates, by route name.
	subjects map[string]*texttemplate.Template
	// timeout bounds each render, DefaultRenderTimeout but in tests; see
	// execute for what happens to a template still running then.
	timeout time.Duration
}

type templateSet struct {
	subject *texttemplate.Template
	text    *texttemplate.Template
	html    *htmltemplate.Template
	// sizes are what the subject, text and HTML last wrote, for the next
	// execution's buffer: a pointer, shared by the copy a route's own
	// subject makes of the set (see renderSet).
	sizes *[3]atomic.Int64
}

// View is what a template sees. Fields are the sender's, by name.
type View struct {
	ID    string
	Type  string
	Label string // the type as people write it: "SMS", "WhatsApp"
	Route string
	// Time is when the event happened, in the configured zone.
	Time time.Time
	// Data holds every data field by name; Fields lists them in wire order.
	Data   map[string]string
	Fields []Field
	// Thread is true when the route threads its emails: the subject then
	// names the conversation only, so every email of it has the same one.
	Thread bool
	// Source names the webhook source, Format its wire format.
	Source, Format string
	// The canonical content, the same whichever gateway sent the event
	// (see Content): who sent it, to which number or device, the text,
	// the sender's message id and a delivery report's status.
	From, To, Text, MessageID, Status string
	// Attachments are the message's files: attached to the email when
	// their bytes are at hand, else linked.
	Attachments []AttachmentView
}

// AttachmentView is one file of a message as templates see it.
type AttachmentView struct {
	Name, ContentType string
	Size              int64
	// URL is where the file is when it is not attached.
	URL string
	// Attached is true when the email carries the file; Note says why not
	// when it does not and has no URL to link either.
	Attached bool
	Note     string
}

// Field is one named data field.
type Field struct{ Name, Value string }

// Get returns a data field, or "" when the sender left it out.
func (v *View) Get(name string) string { return v.Data[name] }

var labels = map[string]string{
	TypeSMS:          "SMS",
	TypeWhatsApp:     "WhatsApp",
	TypeUSSD:         "USSD",
	TypeNotification: "Notification",
	TypeMMS:          "MMS",
	TypeStatus:       "Delivery report",
}

// Render builds the email for ev on route. Every error is permanent: the
// same event renders the same way on every attempt.
//
// The email attaches the event's files that came with their bytes (or
// were fetched), up to MaxAttachmentBytes together; the text and HTML name
// each file, and say why when one is left out.
//
// An email is never over MaxEmailBytes. Files give way first: when the
// text and HTML leave no room for one, it is left out (see fit). When the
// templates alone would make a bigger email, write past their output limit
// or run past the render timeout, Render falls back to the plain rendering
// (see plain): every field once, in a text part, after a note saying why,
// with the files that fit beside it; the Message's Plain field says so
// too. Within the decoder's limits on a webhook body that always fits
// (TestPlainFallbackFitsTheWorstEvent).
func (r *Renderer) Render(ev *Event, route *config.Route, from string) (*Message, error) {
	files := ev.files()
	msg, err := r.render(ev, route, from, planAttachments(files, MaxEmailBytes))
	var bound *boundError
	switch {
	case errors.As(err, &bound):
		msg, err = r.plain(msg, ev, route, files, bound.Error())
	case err == nil:
		msg, err = r.fit(msg, ev, route, from, files)
	}
	if err != nil {
		return nil, PermanentErr(err)
	}
	return msg, nil
}

// fit returns msg when its email is within MaxEmailBytes. When it is not
// and it attaches files, the email is made again with the files that fit
// in the room its text and HTML leave, the others named as left out; when
// that is still too large, or nothing was attached, it is the plain
// fallback.
func (r *Renderer) fit(msg *Message, ev *Event, route *config.Route, from string, files []Attachment) (*Message, error) {
	raw, err := msg.Encode()
	if err != nil || len(raw) <= MaxEmailBytes {
		return msg, err
	}
	tooLarge := func(n int) string {
		return fmt.Sprintf("the email would be %d bytes, more than the %d an email may hold", n, MaxEmailBytes)
	}
	if len(msg.Attachments) == 0 {
		return r.plain(msg, ev, route, files, tooLarge(len(raw)))
	}
	bare := *msg
	bare.raw, bare.Attachments = nil, nil
	rawBare, err := bare.Encode()
	if err != nil {
		return nil, err
	}
	room := MaxEmailBytes - len(rawBare) - noteGrowth*len(files)
	if room < 0 {
		return r.plain(msg, ev, route, files, tooLarge(len(rawBare)))
	}
	again, err := r.render(ev, route, from, planAttachments(files, room))
	var bound *boundError
	switch {
	case errors.As(err, &bound):
		return r.plain(again, ev, route, files, bound.Error())
	case err != nil:
		return nil, err
	}
	if raw, err = again.Encode(); err != nil || len(raw) <= MaxEmailBytes {
		return again, err
	}
	return r.plain(again, ev, route, files, tooLarge(len(raw)))
}

// render is Render without the fallback, with the templates' own errors,
// for the trial: the email attaches the files plan says to. On an error of
// the templates the message holds what they wrote before it.
func (r *Renderer) render(ev *Event, route *config.Route, from string, plan []Attachment) (*Message, error) {
	set, ok := r.sets[cmp.Or(ev.Format, FormatZender)+"/"+ev.Type]
	if !ok {
		set, ok = r.sets[ev.Type]
	}
	if !ok {
		set = r.sets[GenericTemplate]
	}
	if route.Template != "" {
		if set, ok = r.sets[route.Template]; !ok {
			return nil, fmt.Errorf("route %q: no template set %q", route.Name, route.Template)
		}
	}
	return r.renderSet(set, ev, route, from, plan)
}

// renderSet is render with the templates of set.
func (r *Renderer) renderSet(set *templateSet, ev *Event, route *config.Route, from string, plan []Attachment) (*Message, error) {
	if t, ok := r.subjects[route.Name]; ok && route.Subject != "" {
		withSubject := *set
		withSubject.subject = t
		set = &withSubject
	}
	threadID := ""
	if route.Threaded() {
		threadID = ThreadID(ev, from)
	}
	out, err := r.run(set, r.view(ev, route, threadID != "", plan))
	return &Message{
		EventID:   ev.ID,
		Route:     route.Name,
		From:      from,
		To:        route.To,
		Cc:        route.Cc,
		Bcc:       route.Bcc,
		Subject:   subjectLine(out.subject),
		Text:      out.text,
		HTML:      out.html,
		Date:      ev.Time(),
		MessageID: MessageID(ev.ID, route.Name, from),
		ThreadID:  threadID,
		ReplyTo:   route.ReplyTo,

		Attachments: attached(plan),
	}, err
}

// view is what an event's templates see; files are its files as the
// email carries or links them (see planAttachments).
func (r *Renderer) view(ev *Event, route *config.Route, thread bool, files []Attachment) *View {
	c := ev.Canonical()
	view := &View{
		ID:        ev.ID,
		Type:      ev.Type,
		Label:     labels[ev.Type],
		Route:     route.Name,
		Time:      ev.Time().In(r.loc),
		Data:      ev.Data,
		Thread:    thread,
		Source:    ev.Source,
		Format:    cmp.Or(ev.Format, FormatZender),
		From:      c.From,
		To:        c.To,
		Text:      c.Text,
		MessageID: c.MessageID,
		Status:    c.Status,
	}
	for _, a := range files {
		size := a.Size
		if size == 0 {
			size = int64(len(a.Data))
		}
		view.Attachments = append(view.Attachments, AttachmentView{Name: a.Name, ContentType: a.ContentType, Size: size, URL: a.URL, Attached: len(a.Data) > 0 && a.Note == "", Note: a.Note})
	}
	if view.Label == "" {
		view.Label = ev.Type
	}
	for _, name := range ev.FieldNames() {
		view.Fields = append(view.Fields, Field{Name: name, Value: ev.Data[name]})
	}
	return view
}

// conversation names the conversation an event belongs to, on its
// canonical content so it is the same whichever gateway the event came
// through: SMS and MMS with one party (a delivery report joins the
// conversation with its message's recipient), a WhatsApp chat (account and
// contact), the same USSD code, the same app for notifications. Empty when
// the event names none. A threaded subject (View.Thread) may show only
// these fields: one that changes within a conversation would split its
// thread in mail clients that match subjects.
func conversation(ev *Event) string {
	d := ev.Data
	switch ev.Type {
	case TypeWhatsApp:
		if d["phone"] == "" {
			return ""
		}
		return ev.Type + "\x00" + d["wid"] + "\x00" + d["phone"]
	case TypeUSSD:
		if d["code"] == "" {
			return ""
		}
		return ev.Type + "\x00" + d["sim"] + "\x00" + d["code"]
	case TypeNotification:
		if d["package"] == "" {
			return ""
		}
		return ev.Type + "\x00" + d["package"]
	}
	c := ev.Canonical()
	party := c.From
	switch ev.Type {
	case TypeStatus:
		party = c.To
	case TypeSMS, TypeMMS:
	default:
		if party == "" {
			return ""
		}
		return ev.Type + "\x00" + party
	}
	if party = PartyKey(party); party == "" {
		return ""
	}
	return TypeSMS + "\x00" + party
}

// PartyKey is a phone number as conversations compare it: without the
// spaces, dashes, dots and brackets people and gateways write between its
// digits, so "+63 976-071-3666" and "+639760713666" are one party.
func PartyKey(phone string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '.', '(', ')', '\u00a0':
			return -1
		}
		return r
	}, strings.TrimSpace(phone))
}

// ThreadID is the Message-ID every email of ev's conversation refers to
// (References, In-Reply-To), so mail clients thread them; "" when ev names
// no conversation. It is a hash, so no phone number shows in it.
func ThreadID(ev *Event, from string) string {
	conv := conversation(ev)
	if conv == "" {
		return ""
	}
	// "gateway" rather than the event's source: a conversation is the
	// same whichever gateway it came through (and thread ids stay those
	// of the hookmail that had one gateway only).
	sum := sha256.Sum256([]byte("gateway\x00" + conv))
	return MessageID("thread."+hex.EncodeToString(sum[:12]), "conversation", from)
}

// MessageID is the same for the same event and route every time, so a
// mail client or an operator can tell a re-delivery from a new event.
func MessageID(eventID, route, from string) string {
	domain := "hookmail.invalid"
	if addr, err := ParseAddress(from); err == nil {
		if at := strings.LastIndexByte(addr.Address, '@'); at >= 0 {
			domain = addr.Address[at+1:]
		}
	}
	return "hookmail." + SafeID(eventID) + "." + SafeID(route) + "@" + domain
}
