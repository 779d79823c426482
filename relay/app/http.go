package app

import (
	"log/slog"
	"net/http"
	"time"
)

// NewHTTPServer is an http.Server with hookmail's timeouts, so a slow or
// silent client cannot hold a connection for long: headers within 5 s, the
// whole request within 30 s (webhook bodies have their own, shorter,
// webhook.body_timeout), idle keep-alive connections closed after 2 min.
func NewHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
