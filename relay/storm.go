package relay

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hookmail/hookmail/config"
)

// A storm route (routes[].storm) emails the first threshold events of a
// conversation in a window one by one and folds the window's other events
// of that conversation into one digest, sent when the window ends. The
// count is kept in the DigestStore (Storm), so it holds across restarts
// and, on a shared queue, across instances; the folded events are
// collected as a digest's are, under a digest name of the window's own
// (StormDigest), and go out through the digest sender.

// stormMark joins a storm digest's route name to its conversation and
// window in the digest's name.
const stormMark = "#storm#"

// StormDigestMax is the most events one storm digest email lists; a storm
// that folded more sends as many emails as it takes when its window ends.
const StormDigestMax = 1000

// StormConversation names ev's conversation for storm counting: a hash of
// its thread key (see ThreadID), so no phone number is stored with the
// count or shows in a digest's name; "" when ev names no conversation. Such
// events are never folded: with nothing to tell one sender from another, a
// storm would hide unrelated events in one digest.
func StormConversation(ev *Event) string {
	conv := conversation(ev)
	if conv == "" {
		return ""
	}
	sum := sha256.Sum256([]byte("storm\x00" + conv))
	return hex.EncodeToString(sum[:12])
}

// StormDigest names the digest of route's storm in conversation conv (a
// StormConversation) for the window that started at start: the route's
// name, "#storm#", conv, "@" and the start in Unix microseconds. Each
// window has a digest of its own, sent when that window ends.
func StormDigest(route, conv string, start time.Time) string {
	return route + stormMark + conv + "@" + strconv.FormatInt(start.UnixMicro(), 10)
}

// ParseStormDigest returns the route and window start of a StormDigest
// name, and false for a digest route's own name.
func ParseStormDigest(name string) (route string, start time.Time, ok bool) {
	i := strings.LastIndex(name, stormMark)
	if i < 0 {
		return "", time.Time{}, false
	}
	conv, micros, ok := strings.Cut(name[i+len(stormMark):], "@")
	if _, err := hex.DecodeString(conv); !ok || err != nil || len(conv) != 24 {
		return "", time.Time{}, false
	}
	us, err := strconv.ParseInt(micros, 10, 64)
	if err != nil {
		return "", time.Time{}, false
	}
	return name[:i], time.UnixMicro(us), true
}

// StormKeep is how long a store keeps a storm window after it ended: long
// enough for an event folded in it and delivered again (its ack lost in a
// crash, its lease run out) to be found in its digest, not emailed.
const StormKeep = 10 * time.Minute

// StormWindow is a storm route's window for one conversation, as a
// DigestStore keeps it.
type StormWindow struct {
	// Start is when the window's first event was counted, to the
	// microsecond; zero when there is no window.
	Start time.Time
	// Emailed are the ids of the events emailed one by one in the window,
	// at most the route's threshold: one delivered again (after a crash)
	// is emailed again, not counted again.
	Emailed []string
	// Folded counts the events folded into the window's digest.
	Folded int
}

// StormTx is a DigestStore's transaction on one route's and conversation's
// storm window, for CountStorm; it holds the window against every other
// count of the same conversation (other workers, other instances) until it
// ends.
type StormTx interface {
	// Window returns the window stored; a zero StormWindow when none is.
	Window() (StormWindow, error)
	// SetWindow stores w as the window.
	SetWindow(w StormWindow) error
	// Collected reports whether the event is in the digest named digest.
	Collected(digest string) (bool, error)
	// Collect adds the event to the digest named digest, with the route's
	// recipients, as Collect does, and reports whether it was not there
	// yet.
	Collect(digest string) (bool, error)
}

// StormCount is what counting an event in its storm window decided.
type StormCount struct {
	// Fold names the digest the event went into; "" when it is to be
	// emailed on its own.
	Fold string
	// Added is true when the event was not in that digest yet.
	Added bool
	// Started is true for the window's first folded event: a storm begins.
	Started bool
	// Ends is when the window ends, and its digest goes out.
	Ends time.Time
}

// CountStorm counts ev, of conversation conv, in its window of route's
// storm, now by the store's clock, within tx. A window opens with the
// first event after the last one ended. Its first route.Storm.Threshold
// events are emailed; the others are collected in its digest. Counting the
// same event again (a redelivery after a crash) decides the same within
// the window: emailed again, or folded once.
func CountStorm(tx StormTx, route *config.Route, conv string, ev *Event, now time.Time) (StormCount, error) {
	s := route.Storm
	w, err := tx.Window()
	if err != nil {
		return StormCount{}, err
	}
	if w.Start.IsZero() || !now.Before(w.Start.Add(s.Window)) {
		if w.Folded > 0 {
			// Folded in the window that ended, and delivered again (its
			// ack lost in a crash) before that window's digest went out:
			// it stays there.
			old := StormDigest(route.Name, conv, w.Start)
			if in, err := tx.Collected(old); err != nil || in {
				return StormCount{Fold: old, Ends: w.Start.Add(s.Window)}, err
			}
		}
		start := time.UnixMicro(now.UnixMicro())
		return StormCount{Ends: start.Add(s.Window)}, tx.SetWindow(StormWindow{Start: start, Emailed: []string{ev.ID}})
	}
	c := StormCount{Ends: w.Start.Add(s.Window)}
	if slices.Contains(w.Emailed, ev.ID) {
		return c, nil
	}
	digest := StormDigest(route.Name, conv, w.Start)
	if len(w.Emailed) < s.Threshold {
		// Room, after folding: a reload raised the threshold. An event
		// folded before stays folded.
		if w.Folded > 0 {
			if in, err := tx.Collected(digest); err != nil || in {
				return StormCount{Fold: digest, Ends: c.Ends}, err
			}
		}
		w.Emailed = append(w.Emailed, ev.ID)
		return c, tx.SetWindow(w)
	}
	c.Fold = digest
	if c.Added, err = tx.Collect(digest); err != nil || !c.Added {
		return c, err
	}
	w.Folded++
	c.Started = w.Folded == 1
	return c, tx.SetWindow(w)
}
