package relay

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// heldBack is what pacing holds back of one event: until when, at the
// latest of its routes, and the server's reply that asked for it, if one
// did.
type heldBack struct {
	set   bool
	until time.Time
	why   error
}

func (h *heldBack) add(until time.Time, why error) {
	h.set = true
	if until.After(h.until) {
		h.until = until
	}
	if h.why == nil {
		h.why = why
	}
}

// putBack returns the leased item to the queue as pacing holds it back,
// without counting the attempt: it keeps its place in the queue (its due
// time) when it may go again at once, else it is due when its hold ends.
func (w *Workers) putBack(ctx context.Context, lease *Lease, it Progress, h heldBack, start time.Time, log *slog.Logger) {
	it.Attempts-- // not an attempt of the email's
	next := h.until
	if !next.After(w.now()) {
		next = lease.Item.NextAttempt
	}
	if h.why != nil {
		it.LastError = h.why.Error()
		what := "throttled by the mail server, sent again at a lower pace"
		if Classify(h.why) == Quota {
			what = "held until " + next.Format(time.RFC3339) + ": the mail server's sending quota is used up"
		}
		it.History = append(it.History, Attempt{At: w.now(), What: fmt.Sprintf("%s (not counted as an attempt): %s", what, h.why)})
	}
	sctx, cancel := settling(ctx)
	defer cancel()
	if err := w.queue.Retry(sctx, lease, next, it); err != nil {
		log.Error("cannot put the email back in the queue for pacing; the queue offers it again later", "err", err)
		return
	}
	w.pacer.hold(lease.Item.Event.ID, next)
	w.metrics.deliveries.WithLabelValues("paced").Observe(w.now().Sub(start).Seconds())
}
