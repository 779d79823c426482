package relay

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hookmail/hookmail/config"
)

// DigestTemplate names the template set digests render with.
const DigestTemplate = "digest"

// DigestView is what the digest templates see.
type DigestView struct {
	// ID names this digest: the first event's id.
	ID    string
	Route string
	Count int
	// Counts are the events by type, in order of first appearance.
	Counts []TypeTally
	// Source is set when every event has the same Who (one app, one
	// number), for the subject.
	Source string
	// First and Last are the first and last event's times.
	First, Last time.Time
	Events      []*View
	// Storm is set for a storm's digest: the events of one conversation
	// (Source) past the route's storm.threshold in one window. Emailed is
	// that threshold, the window's events emailed one by one (0 when the
	// config no longer has the route's storm), and What names the events:
	// "SMS", "notifications", "events" when of several types.
	Storm   bool
	Emailed int
	What    string
}

// TypeTally counts one type's events in a digest.
type TypeTally struct {
	Label string
	N     int
}

// Who names who or what an event came from: a phone number, an app, a
// USSD code.
func (v *View) Who() string {
	if v.Format != FormatZender {
		return v.From
	}
	for _, k := range []string{"phone", "title", "package", "code"} {
		if s := v.Data[k]; s != "" {
			return s
		}
	}
	return ""
}

// RenderDigest builds one email listing entries in order, for route. Its
// Message-ID is derived from the events it lists, so resending the same
// digest after a crash is recognisable and a different one never shares it.
// Every error is permanent. A digest whose HTML part would take it over
// MaxEmailBytes goes as its text part alone (see plainDigest).
func (r *Renderer) RenderDigest(entries []DigestEntry, route *config.Route, from string) (*Message, error) {
	return finishDigest(r.renderDigest(entries, route, from, false))
}

// RenderStormDigest is RenderDigest for the digest of a storm: the events
// of one conversation that route folded in one window. The default
// templates word it as the rest of the conversation ("and 195 more SMS
// from +63 976 071 3666"), and the email joins the conversation's thread
// when the route threads its emails.
func (r *Renderer) RenderStormDigest(entries []DigestEntry, route *config.Route, from string) (*Message, error) {
	return finishDigest(r.renderDigest(entries, route, from, true))
}

// finishDigest is the fallback of RenderDigest and RenderStormDigest.
func finishDigest(msg *Message, err error) (*Message, error) {
	var bound *boundError
	switch {
	case errors.As(err, &bound) && msg.Text != "":
		msg, err = plainDigest(msg, bound.Error())
	case err == nil:
		var raw []byte
		if raw, err = msg.Encode(); err == nil && len(raw) > MaxEmailBytes {
			msg, err = plainDigest(msg, fmt.Sprintf("with its HTML part the email would be %d bytes, more than the %d an email may hold", len(raw), MaxEmailBytes))
		}
	}
	if err != nil {
		return nil, PermanentErr(err)
	}
	return msg, nil
}

// renderDigest is RenderDigest without the fallback, with the templates'
// own errors, for the trial. On an error of the templates the message
// holds the parts they finished before it.
func (r *Renderer) renderDigest(entries []DigestEntry, route *config.Route, from string, storm bool) (*Message, error) {
	if len(entries) == 0 {
		return nil, fmt.Errorf("digest of route %q: no events", route.Name)
	}
	dv := &DigestView{ID: entries[0].Event.ID, Route: route.Name, Count: len(entries), Storm: storm}
	sources := map[string]bool{}
	for i := range entries {
		ev := &entries[i].Event
		v := r.view(ev, route, false, linkedOnly(ev.files(), "a digest attaches no files"))
		dv.Events = append(dv.Events, v)
		sources[v.Who()] = true
		if j := slices.IndexFunc(dv.Counts, func(c TypeTally) bool { return c.Label == v.Label }); j >= 0 {
			dv.Counts[j].N++
		} else {
			dv.Counts = append(dv.Counts, TypeTally{Label: v.Label, N: 1})
		}
	}
	dv.First, dv.Last = dv.Events[0].Time, dv.Events[len(dv.Events)-1].Time
	threadID := ""
	if len(sources) == 1 || storm {
		// A storm's events are one conversation's, though the gateway may
		// write its number in more than one way.
		dv.Source = dv.Events[0].Who()
	}
	if storm {
		if route.Storm != nil {
			dv.Emailed = route.Storm.Threshold
		}
		dv.What = stormNoun(entries, dv.Count)
		if route.Threaded() {
			threadID = ThreadID(&entries[0].Event, from)
		}
	}
	out, err := r.run(r.sets[DigestTemplate], dv)
	if err != nil {
		err = fmt.Errorf("digest: %w", err)
	}
	return &Message{
		EventID:   dv.ID,
		Route:     route.Name,
		From:      from,
		To:        route.To,
		Cc:        route.Cc,
		Bcc:       route.Bcc,
		ReplyTo:   route.ReplyTo,
		Subject:   subjectLine(out.subject),
		Text:      out.text,
		HTML:      out.html,
		Date:      entries[len(entries)-1].Event.Time(),
		MessageID: MessageID("digest."+digestID(entries), route.Name, from),
		ThreadID:  threadID,
	}, err
}

// stormNouns name one event and several of each type in a storm digest's
// wording.
var stormNouns = map[string][2]string{
	TypeSMS:          {"SMS", "SMS"},
	TypeMMS:          {"MMS", "MMS"},
	TypeWhatsApp:     {"WhatsApp message", "WhatsApp messages"},
	TypeUSSD:         {"USSD reply", "USSD replies"},
	TypeNotification: {"notification", "notifications"},
	TypeStatus:       {"delivery report", "delivery reports"},
}

// stormNoun names n of entries' events: by their type when they have one,
// else "events".
func stormNoun(entries []DigestEntry, n int) string {
	nouns, ok := stormNouns[entries[0].Event.Type]
	for _, e := range entries[1:] {
		ok = ok && e.Event.Type == entries[0].Event.Type
	}
	if !ok {
		nouns = [2]string{"event", "events"}
	}
	if n == 1 {
		return nouns[0]
	}
	return nouns[1]
}

// digestID names a digest by the events it lists.
func digestID(entries []DigestEntry) string {
	h := sha256.New()
	for _, e := range entries {
		h.Write([]byte(e.Event.ID + "\x00"))
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}
