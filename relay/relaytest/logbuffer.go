// Package relaytest holds helpers that hookmail's tests share across
// packages, as net/http/httptest does for net/http.
package relaytest

import (
	"bytes"
	"sync"
)

// LogBuffer collects what a logger writes from many goroutines (workers,
// handlers) while a test reads it.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
