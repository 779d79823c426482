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
	msg, err := r.renderDigest(entries, route, from)
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
func (r *Renderer) renderDigest(entries []DigestEntry, route *config.Route, from string) (*Message, error) {
	if len(entries) == 0 {
		return nil, fmt.Errorf("digest of route %q: no events", route.Name)
	}
	dv := &DigestView{ID: entries[0].Event.ID, Route: route.Name, Count: len(entries)}
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
	if len(sources) == 1 {
		dv.Source = dv.Events[0].Who()
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
	}, err
}

// digestID names a digest by the events it lists.
func digestID(entries []DigestEntry) string {
	h := sha256.New()
	for _, e := range entries {
		h.Write([]byte(e.Event.ID + "\x00"))
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}
