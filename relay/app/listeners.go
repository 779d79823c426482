package app

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/coreos/go-systemd/v22/activation"

	"github.com/hookmail/hookmail/config"
)

// activatedName is the FileDescriptorName= that marks the webhook's socket
// when systemd passes several.
const activatedName = "webhook"

// webhookListener returns the webhook port: the listening socket systemd
// passed (socket activation, LISTEN_FDS and LISTEN_PID), else listen bound
// anew. Under socket activation systemd holds the socket while hookmail
// restarts, so connections wait in the kernel's queue for the new process
// instead of being refused: the gateway never retries a refused webhook.
// from says which it was, for the log.
//
// go-systemd's activation package reads the variables as sd_listen_fds(3)
// does: only when LISTEN_PID is this process, so a child never takes its
// parent's sockets; it unsets them and marks the descriptors close-on-exec.
func webhookListener(cfg *config.Config, log *slog.Logger) (ln net.Listener, from string, err error) {
	files := activation.Files(true)
	if len(files) == 0 {
		ln, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return nil, "", fmt.Errorf("listen: %w (set listen, or serve --listen, to a free address such as :8080; is another hookmail running?)", err)
		}
		return ln, "listen", nil
	}
	f, err := pickActivated(files)
	for _, other := range files {
		if other == f {
			continue
		}
		if err == nil {
			log.Warn("systemd passed a socket hookmail does not use; closing it", "name", other.Name())
		}
		other.Close()
	}
	if err != nil {
		return nil, "", err
	}
	defer f.Close() // FileListener holds a duplicate
	ln, err = net.FileListener(f)
	if err != nil {
		return nil, "", fmt.Errorf("the socket systemd passed (%s) is not a listening socket: %w (give hookmail.socket ListenStream= and Accept=no)", f.Name(), err)
	}
	log.Info("webhook port passed by systemd (socket activation); listen is not used", "name", f.Name(), "addr", ln.Addr().String())
	return ln, "systemd", nil
}

// pickActivated picks the webhook's socket among those systemd passed: the
// one named "webhook", or the only one.
func pickActivated(files []*os.File) (*os.File, error) {
	for _, f := range files {
		if f.Name() == activatedName {
			return f, nil
		}
	}
	if len(files) == 1 {
		return files[0], nil
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Name()
	}
	return nil, fmt.Errorf("systemd passed %d sockets (%s) and none is named %q: pass one, or set FileDescriptorName=%s on the webhook's", len(files), strings.Join(names, ", "), activatedName, activatedName)
}
