package relay

import (
	"context"
	"time"

	"github.com/hookmail/hookmail/config"
)

// DigestStore keeps the events digest routes collect until their digest
// email goes out. Collected events are durable: a digest in progress
// survives a restart. A backend that several instances share lets one
// instance at a time send a route's digest (ClaimDigest), so each window
// gives one email.
type DigestStore interface {
	// Collect adds ev to route's digest, with where the digest goes;
	// adding the same event twice keeps one copy, so a redelivery after a
	// crash does not list it twice.
	Collect(ctx context.Context, route *config.Route, ev *Event) error
	// ClaimDigest lets this instance alone send route's digest for up to
	// ttl, or until ReleaseDigest; it reports false while another holds it.
	ClaimDigest(ctx context.Context, route string, ttl time.Duration) (bool, error)
	// ReleaseDigest gives up this instance's claim on route's digest.
	ReleaseDigest(ctx context.Context, route string) error
	// Digest returns up to limit of route's collected events, oldest
	// first, and how many there are in all.
	Digest(ctx context.Context, route string, limit int) ([]DigestEntry, int, error)
	// DigestRoutes names every route with collected events, including
	// routes the config no longer has.
	DigestRoutes(ctx context.Context) ([]string, error)
	// Forget removes the given events from route's digest once its email
	// has gone out.
	Forget(ctx context.Context, route string, ids []string) error
	// BuryDigest moves the given events of route's digest to the dead
	// letters with reason, when the digest cannot be delivered, and says
	// how many it moved: one still waiting in the queue (another route
	// owes it) stays collected.
	BuryDigest(ctx context.Context, route string, ids []string, reason string) (moved int, err error)
	// Storm counts ev in its window of route's storm for conversation conv
	// (a StormConversation) by running CountStorm, with the store's clock,
	// in a transaction that no other count of the same route and
	// conversation, by this instance or another sharing the store,
	// interleaves with. A folded event is stored when Storm returns. The
	// window outlives a restart; after a crash a backend may have lost the
	// last counts of emailed events (a few more emails), never a fold. A
	// window may be deleted StormKeep after it ended; the digest it folded
	// into stays until sent.
	Storm(ctx context.Context, route *config.Route, conv string, ev *Event) (StormCount, error)
}

// DigestEntry is one collected event, when it was collected, and where its
// digest goes (kept with it, so the events still reach someone when a
// reload renames or removes the route).
type DigestEntry struct {
	Event     Event
	Collected time.Time
	To        []string
	Cc        []string
	Bcc       []string
	ReplyTo   string
}
