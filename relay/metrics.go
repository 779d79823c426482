package relay

import (
	"context"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
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

// Metrics are hookmail's own Prometheus metrics.
type Metrics struct {
	received   *prometheus.CounterVec
	sent       *prometheus.CounterVec
	failed     *prometheus.CounterVec
	deliveries *prometheus.HistogramVec
	dropped    *prometheus.CounterVec
}

// NewMetrics registers hookmail's metrics on reg, and the queue gauges read
// from queue at each scrape (the same numbers the queue commands show).
func NewMetrics(reg prometheus.Registerer, queue Queue) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		received: f.NewCounterVec(prometheus.CounterOpts{
			Name: "hookmail_events_received_total",
			Help: "Webhook requests by event type and result (queued, duplicate, unauthorized, invalid, too_large, unsupported, unavailable, queue_full, rate_limited, busy).",
		}, []string{"type", "result"}),
		sent: f.NewCounterVec(prometheus.CounterOpts{
			Name: "hookmail_emails_sent_total",
			Help: "Emails delivered, by event type.",
		}, []string{"type"}),
		failed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "hookmail_emails_failed_total",
			Help: "Failed delivery attempts by event type and reason (temporary: retried; permanent: dead-lettered).",
		}, []string{"type", "reason"}),
		deliveries: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hookmail_delivery_duration_seconds",
			Help:    "Time from taking an event off the queue to its outcome, by outcome.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"outcome"}),
	}
	m.dropped = f.NewCounterVec(prometheus.CounterOpts{
		Name: "hookmail_events_dropped_total",
		Help: "Events a route with drop: true took and did not email, by route.",
	}, []string{"route"})
	m.initSeries()
	reg.MustRegister(&queueCollector{queue: queue})
	return m
}

// initSeries creates every known series at zero, so rate() and alert rules
// see a 0 from the first scrape rather than a missing series until the first
// event of each kind.
func (m *Metrics) initSeries() {
	types := append(slices.Clone(KnownTypes), "other", "none")
	for _, t := range types {
		for _, r := range results {
			m.received.WithLabelValues(t, r)
		}
		m.sent.WithLabelValues(t)
		for _, c := range []ErrorClass{Temporary, Permanent, Config} {
			m.failed.WithLabelValues(t, c.String())
		}
	}
	for _, o := range []string{"sent", "retry", "dead"} {
		m.deliveries.WithLabelValues(o)
	}
}

// typeLabel bounds the type label's values: a sender chooses the type, so
// an unknown one counts as "other" rather than growing the series forever.
func typeLabel(t string) string {
	if slices.Contains(KnownTypes, t) {
		return t
	}
	if t == "" {
		return "none"
	}
	return "other"
}

var (
	queueDepthDesc = prometheus.NewDesc("hookmail_queue_depth",
		"Events waiting for delivery, including those being delivered now.", nil, nil)
	queueOldestDesc = prometheus.NewDesc("hookmail_queue_oldest_age_seconds",
		"Age of the oldest event waiting for delivery; 0 when the queue is empty.", nil, nil)
	deadLettersDesc = prometheus.NewDesc("hookmail_dead_letters",
		"Events in the dead letters: failed permanently, outlived retry.lifetime, or taken by no route.", nil, nil)
	queueUpDesc = prometheus.NewDesc("hookmail_queue_up",
		"1 when the queue answered the last scrape, 0 when it could not be read.", nil, nil)
)

// queueCollector reads the queue once per scrape for all its gauges.
type queueCollector struct{ queue Queue }

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDepthDesc
	ch <- queueOldestDesc
	ch <- deadLettersDesc
	ch <- queueUpDesc
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.queue.Stats(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(queueUpDesc, prometheus.GaugeValue, 0)
		return
	}
	age := 0.0
	if !st.Oldest.IsZero() {
		age = max(time.Since(st.Oldest).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(queueUpDesc, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(st.Depth))
	ch <- prometheus.MustNewConstMetric(queueOldestDesc, prometheus.GaugeValue, age)
	ch <- prometheus.MustNewConstMetric(deadLettersDesc, prometheus.GaugeValue, float64(st.Dead))
}
