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
	// ResultIgnored is an authentic webhook with nothing to email (a
	// sender's ping), answered 200 and not stored.
	ResultIgnored = "ignored"
)

// results lists every result label value.
var results = []string{ResultQueued, ResultDuplicate, ResultUnauthorized, ResultInvalid, ResultTooLarge,
	ResultUnsupported, ResultUnavailable, ResultQueueFull, ResultRateLimited, ResultBusy, ResultIgnored}

// Metrics are the receiver's metrics.
type Metrics struct {
	received *prometheus.CounterVec
}

// NewMetrics registers the receiver's metrics on reg. Each source's series
// start at zero when its handler is made, so rate() and alert rules see a
// 0 rather than a missing series. The source label is bounded by the
// config: a source is a name in webhook.sources.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	return &Metrics{
		received: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "hookmail_events_received_total",
			Help: "Webhook requests by source, event type and result (queued, duplicate, ignored, unauthorized, invalid, too_large, unsupported, unavailable, queue_full, rate_limited, busy).",
		}, []string{"source", "type", "result"}),
	}
}

// init makes source's series, at zero.
func (m *Metrics) init(source string) {
	for _, t := range append(slices.Clone(relay.KnownTypes), "other", "none") {
		for _, r := range results {
			m.received.WithLabelValues(source, t, r)
		}
	}
}
