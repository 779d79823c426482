package smtp

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/hookmail/hookmail/relay"
)

type smtpMetrics struct {
	duration    prometheus.Histogram
	connections prometheus.Gauge
	replies     *prometheus.CounterVec
	throttles   *prometheus.CounterVec
}

func newSMTPMetrics(reg prometheus.Registerer) smtpMetrics {
	f := promauto.With(reg)
	return smtpMetrics{
		duration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "hookmail_smtp_send_duration_seconds",
			Help:    "Time to send one email over SMTP, connecting included, whatever the outcome.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		connections: f.NewGauge(prometheus.GaugeOpts{
			Name: "hookmail_smtp_connections",
			Help: "SMTP connections open now.",
		}),
		replies: f.NewCounterVec(prometheus.CounterOpts{
			Name: "hookmail_smtp_replies_total",
			Help: "SMTP replies to MAIL, RCPT and DATA by reply code (250, 451, 550, ...).",
		}, []string{"code"}),
		throttles: f.NewCounterVec(prometheus.CounterOpts{
			Name: "hookmail_smtp_throttle_replies_total",
			Help: "Replies that asked hookmail to slow down (kind throttle) or said the sending quota is used up (kind quota), by reply code and the enhanced code's class and subject (4.7 of 4.7.28).",
		}, []string{"kind", "code", "enhanced"}),
	}
}

// throttled counts a throttling or quota reply.
func (m smtpMetrics) throttled(class relay.ErrorClass, err error) {
	kind := "throttle"
	if class == relay.Quota {
		kind = "quota"
	}
	code, enhanced := replyLabels(err)
	m.throttles.WithLabelValues(kind, code, enhanced).Inc()
}

// reply counts the server's answer to one command: 250 when err is nil.
func (m smtpMetrics) reply(err error) {
	code := 250
	if err != nil {
		if code, _ = SMTPReply(err); code == 0 {
			return // no reply: the connection failed
		}
	}
	m.replies.WithLabelValues(strconv.Itoa(code)).Inc()
}
