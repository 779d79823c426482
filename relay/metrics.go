package relay

import (
	"context"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/hookmail/hookmail/config"
)

// Metrics are the delivery pipeline's Prometheus metrics.
type Metrics struct {
	sent          *prometheus.CounterVec
	failed        *prometheus.CounterVec
	deliveries    *prometheus.HistogramVec
	dropped       *prometheus.CounterVec
	digestSize    *prometheus.HistogramVec
	digestWait    *prometheus.HistogramVec
	digestPending *prometheus.GaugeVec
	stormsStarted *prometheus.CounterVec
	stormFolded   *prometheus.CounterVec
	stormsActive  *prometheus.GaugeVec
}

// QueueScope says whose numbers the gauges that describe the queue are:
// their queue label, so that alert rules and dashboards aggregate them
// right across instances.
type QueueScope string

const (
	// QueueLocal is a queue one process holds (the spool): each instance
	// reports its own, and they add up.
	QueueLocal QueueScope = "local"
	// QueueShared is a queue several instances share (Postgres): each
	// reports the same numbers, to be taken once (max), never summed.
	QueueShared QueueScope = "shared"
)

// NewMetrics registers the pipeline's metrics on reg, and the queue gauges
// read from queue at each scrape (the same numbers the queue commands
// show). The gauges that describe the queue rather than this process carry
// the label queue=scope.
func NewMetrics(reg prometheus.Registerer, queue Queue, scope QueueScope) *Metrics {
	f := promauto.With(reg)
	scoped := prometheus.Labels{"queue": string(scope)}
	m := &Metrics{
		sent: f.NewCounterVec(prometheus.CounterOpts{
			Name: "hookmail_emails_sent_total",
			Help: "Emails delivered, by event type.",
		}, []string{"type"}),
		failed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "hookmail_emails_failed_total",
			Help: "Failed delivery attempts by event type and reason (temporary: retried; permanent: dead-lettered; config: the SMTP setup needs fixing; throttled and quota: the server asked to slow down or its quota is used up, sent again at the pace, not counted as attempts).",
		}, []string{"type", "reason"}),
		deliveries: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hookmail_delivery_duration_seconds",
			Help:    "Time from taking an event off the queue to its outcome, by outcome.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"outcome"}),
		dropped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "hookmail_events_dropped_total",
			Help: "Events a route with drop: true took and did not email, by route.",
		}, []string{"route"}),
		digestSize: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hookmail_digest_size_events",
			Help:    "Events listed in each digest email sent, by route.",
			Buckets: []float64{1, 5, 10, 25, 50, 100, 200, 500, 1000, 5000, 10000},
		}, []string{"route"}),
		digestWait: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hookmail_digest_wait_seconds",
			Help:    "How long a digest's oldest event waited for the digest email, by route.",
			Buckets: []float64{1, 10, 60, 300, 900, 1800, 3600, 7200, 21600, 86400},
		}, []string{"route"}),
		digestPending: f.NewGaugeVec(prometheus.GaugeOpts{
			Name:        "hookmail_digest_pending_events",
			Help:        "Events collected for a route's next digest, not yet sent.",
			ConstLabels: scoped,
		}, []string{"route"}),
		stormsStarted: f.NewCounterVec(prometheus.CounterOpts{
			Name: "hookmail_storms_started_total",
			Help: "Storms: windows in which one conversation passed the route's storm.threshold, so the rest went into one digest, by route.",
		}, []string{"route"}),
		stormFolded: f.NewCounterVec(prometheus.CounterOpts{
			Name: "hookmail_storm_events_folded_total",
			Help: "Events folded into a storm's digest instead of emailed one by one, by route.",
		}, []string{"route"}),
		stormsActive: f.NewGaugeVec(prometheus.GaugeOpts{
			Name:        "hookmail_storms_active",
			Help:        "Storm digests waiting for their window to end (or to be sent), by route.",
			ConstLabels: scoped,
		}, []string{"route"}),
	}
	m.initSeries()
	reg.MustRegister(newQueueCollector(queue, scoped))
	return m
}

// initSeries creates every known series at zero, so rate() and alert rules
// see a 0 from the first scrape rather than a missing series until the first
// event of each kind.
func (m *Metrics) initSeries() {
	for _, t := range append(slices.Clone(KnownTypes), "other", "none") {
		m.sent.WithLabelValues(t)
		for _, c := range []ErrorClass{Temporary, Permanent, Config, Throttled, Quota} {
			m.failed.WithLabelValues(t, c.String())
		}
	}
	for _, o := range []string{"sent", "retry", "dead", "paced"} {
		m.deliveries.WithLabelValues(o)
	}
}

// initRouteSeries creates the per-route series of cfg's routes at zero, so
// alerts and dashboards see them before the first digest or drop.
func (m *Metrics) initRouteSeries(cfg *config.Config) {
	for _, rt := range cfg.Routes {
		if rt.Digest != nil {
			m.digestSize.WithLabelValues(rt.Name)
			m.digestWait.WithLabelValues(rt.Name)
			m.digestPending.WithLabelValues(rt.Name)
		}
		if rt.Drop {
			m.dropped.WithLabelValues(rt.Name)
		}
		if rt.Storm != nil {
			m.stormsStarted.WithLabelValues(rt.Name)
			m.stormFolded.WithLabelValues(rt.Name)
			m.stormsActive.WithLabelValues(rt.Name)
		}
	}
}

// countPending zeroes the pending count of cfg's digest routes that
// have nothing collected, and sets each storm route's count of storm
// digests waiting. On a queue several instances share, another instance
// may have sent the digest this one last counted: without this its count
// would stay up until the route collects again.
func (m *Metrics) countPending(cfg *config.Config, collecting []string) {
	storms := map[string]int{}
	for _, name := range collecting {
		if route, _, ok := ParseStormDigest(name); ok {
			storms[route]++
		}
	}
	for _, rt := range cfg.Routes {
		if rt.Digest != nil && !slices.Contains(collecting, rt.Name) {
			m.digestPending.WithLabelValues(rt.Name).Set(0)
		}
		if rt.Storm != nil {
			m.stormsActive.WithLabelValues(rt.Name).Set(float64(storms[rt.Name]))
		}
	}
}

// queueCollector reads the queue once per scrape for all its gauges.
// hookmail_queue_up carries no queue label: it says whether this instance
// could read the queue, which on a shared queue one instance may fail
// alone.
type queueCollector struct {
	queue                        Queue
	depth, oldest, dead, queueUp *prometheus.Desc
}

func newQueueCollector(queue Queue, scoped prometheus.Labels) *queueCollector {
	return &queueCollector{
		queue: queue,
		depth: prometheus.NewDesc("hookmail_queue_depth",
			"Events waiting for delivery, including those being delivered now.", nil, scoped),
		oldest: prometheus.NewDesc("hookmail_queue_oldest_age_seconds",
			"Age of the oldest event waiting for delivery; 0 when the queue is empty.", nil, scoped),
		dead: prometheus.NewDesc("hookmail_dead_letters",
			"Events in the dead letters: failed permanently, outlived retry.lifetime, or taken by no route.", nil, scoped),
		queueUp: prometheus.NewDesc("hookmail_queue_up",
			"1 when the queue answered the last scrape, 0 when it could not be read.", nil, nil),
	}
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.oldest
	ch <- c.dead
	ch <- c.queueUp
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.queue.Stats(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.queueUp, prometheus.GaugeValue, 0)
		return
	}
	age := 0.0
	if !st.Oldest.IsZero() {
		age = max(time.Since(st.Oldest).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(c.queueUp, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(st.Depth))
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
	ch <- prometheus.MustNewConstMetric(c.dead, prometheus.GaugeValue, float64(st.Dead))
}
