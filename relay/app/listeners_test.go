package app

import (
	"os"
	"strings"
	"syscall"
	"testing"
)

// namedFile is an open file named as systemd names a passed socket
// (LISTEN_FDNAMES).
func namedFile(t *testing.T, name string) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w.Close()
	fd, err := syscall.Dup(int(r.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), name)
	t.Cleanup(func() { f.Close() })
	return f
}

// TestPickActivated: of the sockets systemd passes, the webhook's is the
// one named "webhook", or the only one; otherwise the error says how to
// name it.
func TestPickActivated(t *testing.T) {
	tests := []struct {
		name  string
		names []string
		want  string // the name picked, or a part of the error
	}{
		{"the only one, by the unit's name", []string{"hookmail.socket"}, "hookmail.socket"},
		{"named webhook", []string{"admin", "webhook"}, "webhook"},
		{"several, none named", []string{"one.socket", "two.socket"}, "systemd passed 2 sockets (one.socket, two.socket) and none is named \"webhook\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var files []*os.File
			for _, n := range tt.names {
				files = append(files, namedFile(t, n))
			}
			f, err := pickActivated(files)
			switch {
			case err != nil && !strings.Contains(err.Error(), tt.want):
				t.Errorf("error %q; want it to contain %q", err, tt.want)
			case err == nil && f.Name() != tt.want:
				t.Errorf("picked %q, want %q", f.Name(), tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), "FileDescriptorName=webhook") {
				t.Errorf("error %q does not say how to name the webhook's socket", err)
			}
		})
	}
}
