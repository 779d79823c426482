// Package outbox is the Sender hookmail uses when no SMTP server is set: it
// writes each email as an .eml file.
package outbox

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hookmail/hookmail/relay"
)

// Outbox is the Sender used when no SMTP host is set: it writes each email
// as an .eml file. A file appears whole or not at all (temp name, fsync,
// rename, fsync of the directory), and its name is the Message-ID's event
// and route, so a re-delivery after a crash overwrites, never duplicates.
type Outbox struct {
	dir string
}

var _ relay.Sender = (*Outbox)(nil)

// New creates dir when needed.
func New(dir string) (*Outbox, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("outbox: cannot create %s: %w", dir, err)
	}
	return &Outbox{dir: dir}, nil
}

// FileName is the .eml name for a message.
func (o *Outbox) FileName(m *relay.Message) string {
	return filepath.Join(o.dir, relay.SafeID(m.EventID+"."+m.Route)+".eml")
}

// Send writes m to the outbox. File system errors are temporary: a full
// disk frees up, and the event waits in the spool meanwhile.
func (o *Outbox) Send(_ context.Context, m *relay.Message) error {
	var buf bytes.Buffer
	if err := m.WriteEML(&buf); err != nil {
		return err
	}
	final := o.FileName(m)
	tmp, err := os.CreateTemp(o.dir, ".tmp-*") // not *.eml: readers globbing for mail never see a half-written file
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("outbox: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("outbox: fsync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("outbox: close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	m.Receipt = "written to " + final
	return syncDir(o.dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("outbox: fsync %s: %w", dir, err)
	}
	return nil
}
