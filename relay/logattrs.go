package relay

import (
	"context"
	"log/slog"
	"slices"
)

// LazyAttrs wraps h so that Logger.With costs an append: the attributes
// are kept as they are and written with each record h handles, where
// slog's text and JSON handlers format them at once. The workers make a
// logger with an event's id, type, attempt and route for every delivery
// and write one line with it at most, so formatting up front cost more
// than the line.
func LazyAttrs(h slog.Handler) slog.Handler { return &lazyAttrs{inner: h} }

type lazyAttrs struct {
	inner slog.Handler
	attrs []slog.Attr
}

func (h *lazyAttrs) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *lazyAttrs) Handle(ctx context.Context, r slog.Record) error {
	if len(h.attrs) == 0 {
		return h.inner.Handle(ctx, r)
	}
	// With's attributes come before the record's own, as slog writes them.
	withAttrs := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	withAttrs.AddAttrs(h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		withAttrs.AddAttrs(a)
		return true
	})
	return h.inner.Handle(ctx, withAttrs)
}

func (h *lazyAttrs) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &lazyAttrs{inner: h.inner, attrs: append(slices.Clip(h.attrs), attrs...)}
}

// WithGroup hands the attributes kept so far to h: those after it belong
// to the group.
func (h *lazyAttrs) WithGroup(name string) slog.Handler {
	return &lazyAttrs{inner: h.inner.WithAttrs(h.attrs).WithGroup(name)}
}
