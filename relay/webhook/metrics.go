package webhook

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/hookmail/hookmail/relay"
)

// Results of a webhook request, the result label of
// hookmail_events_received_total.
const (
	ResultQueued       = "queued"
	ResultUnauthorized = "unauthorized"
	ResultInvalid      = "invalid"
	ResultTooLarge     = "too_large"
	ResultUnsupported  = "unsupported"
	ResultUnavailable  = "unavailable"
	ResultQueueFull    = "queue_full"
	ResultDuplicate    = "duplicate"
	ResultRateLimited  = "rate_limited"
	ResultBusy         = "busy"
)

// results lists every result label value.
var results = []string{ResultQueued, ResultDuplicate, ResultUnauthorized, ResultInvalid, ResultTooLarge,
	ResultUnsupported, ResultUnavailable, ResultQueueFull, ResultRateLimited, ResultBusy}

// Metrics are the receiver's metrics.
type Metrics struct {
	received *prometheus.CounterVec
}

// NewMetrics registers the receiver's metrics on reg, every series at zero,
// so rate() and alert rules see a 0 rather than a missing series.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		received: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "hookmail_events_received_total",
			Help: "Webhook requests by event type and result (queued, duplicate, unauthorized, invalid, too_large, unsupported, unavailable, queue_full, rate_limited, busy).",
		}, []string{"type", "result"}),
	}
	for _, t := range append(slices.Clone(relay.KnownTypes), "other", "none") {
		for _, r := range results {
			m.received.WithLabelValues(t, r)
		}
	}
	return m
}
