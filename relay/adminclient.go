package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/hookmail/hookmail/config"
)

// QueueAdmin is what the `hookmail queue` commands work on: a running
// hookmail through its admin endpoint, or the spool of a stopped one.
type QueueAdmin interface {
	Inspector
	// Show returns an item with its route and the email it renders to.
	Show(ctx context.Context, id string) (*ItemDetail, error)
	// Where says what the commands are talking to, for the operator.
	Where() string
	Close() error
}

// ConnectAdmin reaches the queue of the hookmail cfg describes: its admin
// endpoint when it runs, else its spool file directly. It never creates a
// spool: a missing one is an error naming --config and spool.dir, since the
// command was most likely run with another config or from another directory
// than hookmail.
func ConnectAdmin(ctx context.Context, cfg *config.Config) (QueueAdmin, error) {
	var apiErr error
	if cfg.Admin.Enabled() {
		c := NewAdminClient(cfg)
		_, err := c.Stats(ctx)
		switch {
		case err == nil:
			return c, nil
		case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, fs.ErrNotExist):
			apiErr = err // hookmail is not running: the spool file is free
		default:
			return nil, err
		}
	}
	spool, err := OpenSpool(cfg.Spool.Dir, time.Now, MustExist())
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%w: is this the config hookmail runs with? Give the same --config (or $HOOKMAIL_CONFIG), and run from hookmail's working directory when spool.dir (%q) is relative", err, cfg.Spool.Dir)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("%w: only the user hookmail runs as (or root) may use the queue commands; run them as that user, e.g. with sudo -u", err)
	case err != nil && apiErr == nil:
		return nil, fmt.Errorf("%w (admin.listen is off, so a running hookmail cannot be reached; set it, or stop hookmail first)", err)
	case err != nil:
		return nil, fmt.Errorf("%w; and hookmail's admin endpoint does not answer: %v", err, apiErr)
	}
	l, err := newLive(cfg)
	if err != nil {
		spool.Close()
		return nil, err
	}
	where := "spool file " + spool.Path() + " (hookmail is not running)"
	return &localAdmin{Spool: spool, d: l.describer(), where: where}, nil
}

// localAdmin works on the spool file of a stopped hookmail.
type localAdmin struct {
	*Spool
	d     Describer
	where string
}

func (l *localAdmin) Show(ctx context.Context, id string) (*ItemDetail, error) {
	it, err := l.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return l.d.Describe(it), nil
}

func (l *localAdmin) Where() string { return l.where }

// AdminClient talks to a running hookmail's admin endpoint.
type AdminClient struct {
	base  string
	where string
	sock  string // the Unix socket, when it listens on one
	token config.Secret
	hc    *http.Client
}

var _ QueueAdmin = (*AdminClient)(nil)

// NewAdminClient returns a client of the admin endpoint cfg's admin.listen
// names: its Unix socket, or its TCP address.
func NewAdminClient(cfg *config.Config) *AdminClient {
	if path, ok := cfg.AdminSocket(); ok {
		abs, err := filepath.Abs(path)
		if err != nil {
			abs = path
		}
		var d net.Dialer
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			c, err := d.DialContext(ctx, "unix", path)
			if err != nil {
				return nil, adminDialError(abs, err)
			}
			return c, nil
		}}
		return &AdminClient{base: "http://localhost", where: "running hookmail's admin socket " + abs, sock: abs,
			token: cfg.Admin.Token, hc: &http.Client{Timeout: time.Minute, Transport: tr}}
	}
	addr := cfg.Admin.Listen
	host, port, err := net.SplitHostPort(addr)
	if err == nil && (host == "" || host == "0.0.0.0" || host == "::") {
		addr = net.JoinHostPort("127.0.0.1", port) // listening everywhere: reach it here
	}
	return &AdminClient{base: "http://" + addr, where: "running hookmail at http://" + addr, token: cfg.Admin.Token, hc: &http.Client{Timeout: time.Minute}}
}

func (c *AdminClient) Where() string { return c.where }
func (c *AdminClient) Close() error  { return nil }

// do sends one request and decodes the JSON reply into out.
func (c *AdminClient) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set(AdminHeader, "1")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token.Reveal())
	}
	resp, err := c.hc.Do(req)
	var ue *url.Error
	if c.sock != "" && errors.As(err, &ue) {
		return ue.Err // the dialer's error names the socket
	}
	if err != nil {
		return fmt.Errorf("admin endpoint %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("admin endpoint %s: %w", c.base, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = json.Unmarshal(body, &e)
		if e.Error == "" {
			e.Error = resp.Status
		}
		switch resp.StatusCode {
		case http.StatusNotFound:
			return &remoteError{msg: e.Error, kind: ErrNotFound}
		case http.StatusConflict:
			return &remoteError{msg: e.Error, kind: ErrBusy}
		}
		return fmt.Errorf("admin endpoint %s: %s", c.base, e.Error)
	}
	return json.Unmarshal(body, out)
}

func (c *AdminClient) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	return st, c.do(ctx, http.MethodGet, "/admin/v1/stats", &st)
}

func (c *AdminClient) List(ctx context.Context, state State, limit int) ([]Item, error) {
	var items []Item
	q := url.Values{"state": {string(state)}, "limit": {strconv.Itoa(limit)}}
	return items, c.do(ctx, http.MethodGet, "/admin/v1/events?"+q.Encode(), &items)
}

func (c *AdminClient) Get(ctx context.Context, id string) (*Item, error) {
	d, err := c.Show(ctx, id)
	if err != nil {
		return nil, err
	}
	return &d.Item, nil
}

func (c *AdminClient) Show(ctx context.Context, id string) (*ItemDetail, error) {
	var d ItemDetail
	if err := c.do(ctx, http.MethodGet, "/admin/v1/events/"+url.PathEscape(id), &d); err != nil {
		return nil, err
	}
	return &d, nil
}

func (c *AdminClient) Requeue(ctx context.Context, id string) error {
	var out map[string]any
	return c.do(ctx, http.MethodPost, "/admin/v1/events/"+url.PathEscape(id)+"/retry", &out)
}

func (c *AdminClient) RequeueDead(ctx context.Context) (int, error) {
	var out struct{ Requeued int }
	err := c.do(ctx, http.MethodPost, "/admin/v1/dead/retry", &out)
	return out.Requeued, err
}

func (c *AdminClient) Drop(ctx context.Context, id string) error {
	var out map[string]any
	return c.do(ctx, http.MethodDelete, "/admin/v1/events/"+url.PathEscape(id), &out)
}

// remoteError is an error the admin endpoint answered: its own text, and
// the kind errors.Is matches.
type remoteError struct {
	msg  string
	kind error
}

func (e *remoteError) Error() string        { return e.msg }
func (e *remoteError) Is(target error) bool { return target == e.kind }
