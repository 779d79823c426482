package relay

import (
	"bytes"
	"log/slog"
	"testing"
)

// TestLazyAttrsWritesWhatSlogWrites: a logger on LazyAttrs writes the
// same lines as one on the handler itself, With and groups included, in
// text and JSON.
func TestLazyAttrsWritesWhatSlogWrites(t *testing.T) {
	noTime := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	opts := &slog.HandlerOptions{Level: slog.LevelInfo, ReplaceAttr: noTime}
	for name, newHandler := range map[string]func(*bytes.Buffer) slog.Handler{
		"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, opts) },
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, opts) },
	} {
		var want, got bytes.Buffer
		for _, l := range []struct {
			log *slog.Logger
			out *bytes.Buffer
		}{{slog.New(newHandler(&want)), &want}, {slog.New(LazyAttrs(newHandler(&got))), &got}} {
			base := l.log.With("id", "e1", "type", "sms", "attempt", 1)
			base.Info("plain")
			route := base.With("route", "ops")
			route.Info("email sent", "message_id", "m1", "reply", "250 ok")
			route.Debug("not written")
			base.With("route", "other").Warn("another route", "err", "boom")
			route.WithGroup("smtp").With("host", "mx").Error("grouped", "code", 451)
			l.log.WithGroup("").Info("empty group")
		}
		if got.String() != want.String() {
			t.Errorf("%s:\n got %s\nwant %s", name, got.String(), want.String())
		}
	}
}
