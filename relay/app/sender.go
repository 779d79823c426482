package app

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/outbox"
	"github.com/hookmail/hookmail/relay/smtp"
)

// NewSender delivers by SMTP when smtp.host is set, else to the outbox.
// closeSender quits the idle SMTP connections; call it once the workers
// have stopped.
func NewSender(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) (s relay.Sender, closeSender func(), err error) {
	if cfg.SMTP.Host == "" {
		o, err := outbox.New(cfg.Outbox.Dir)
		return o, func() {}, err
	}
	sm, err := smtp.New(cfg.SMTP, log, reg)
	if err != nil {
		return nil, nil, err
	}
	return sm, sm.Close, nil
}
