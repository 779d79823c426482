package admin

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"

	"github.com/hookmail/hookmail/config"
)

// Listen opens the admin endpoint's listener as cfg's admin.listen
// says: a Unix socket that only this process's user (and root) can open, or
// TCP (which Validate allows only with admin.token). A socket file left by
// a hookmail that did not stop cleanly is replaced: the spool's lock, taken
// before this, shows that no other hookmail uses the spool.
func Listen(cfg *config.Config) (net.Listener, error) {
	path, ok := cfg.AdminSocket()
	if !ok {
		ln, err := net.Listen("tcp", cfg.Admin.Listen)
		if err != nil {
			return nil, fmt.Errorf("admin.listen: %w (set admin.listen to a free port, unix for a socket in spool.dir, or off to turn the admin endpoint off)", err)
		}
		return ln, nil
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() == fs.ModeSocket {
		_ = os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin.listen: cannot listen on the socket %s: %w (set admin.listen to unix:PATH with a writable directory, or off)", path, err)
	}
	// Owner-only: connecting to a socket needs write permission on it.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin.listen: %w", err)
	}
	return &ownerOnly{UnixListener: ln.(*net.UnixListener), uid: os.Geteuid()}, nil
}

// ownerOnly accepts connections from this process's user and root only,
// checked by the peer's credentials, whatever the socket file's mode (a
// chmod by someone else, or the moment between bind and chmod).
type ownerOnly struct {
	*net.UnixListener
	uid int
}

func (l *ownerOnly) Accept() (net.Conn, error) {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			return nil, err
		}
		if uid, err := peerUID(c); err == nil && (uid == l.uid || uid == 0) {
			return c, nil
		}
		c.Close()
	}
}

// adminDialError explains why the admin socket could not be opened.
func adminDialError(path string, err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("admin socket %s: permission denied: only the user hookmail runs as (or root) may use the queue commands; run them as that user, e.g. with sudo -u", path)
	}
	return fmt.Errorf("admin socket %s: %w", path, err)
}
