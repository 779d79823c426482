package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

// Queue is what the `hookmail queue` commands work on: a running hookmail
// through its admin endpoint (Client), or the queue of a stopped one opened
// directly (Local).
type Queue interface {
	relay.Inspector
	// Show returns an item with its route and the email it renders to.
	Show(ctx context.Context, id string) (*Detail, error)
	// Where says what the commands are talking to, for the operator.
	Where() string
	Close() error
}

// Local is a Queue on a backend opened in this process: the queue of a
// stopped hookmail.
type Local struct {
	relay.Inspector
	// Rules describe items for Show.
	Rules *relay.Rules
	// Place names the backend for Where, e.g. the spool file.
	Place  string
	Closer func() error
}

// Show describes the item id.
func (l *Local) Show(ctx context.Context, id string) (*Detail, error) {
	it, err := l.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return Describe(l.Rules, it), nil
}

// Where names the backend.
func (l *Local) Where() string { return l.Place }

// Close closes the backend.
func (l *Local) Close() error { return l.Closer() }

// Client talks to a running hookmail's admin endpoint.
type Client struct {
	base  string
	where string
	sock  string // the Unix socket, when it listens on one
	token config.Secret
	hc    *http.Client
}

var _ Queue = (*Client)(nil)

// NewClient returns a client of the admin endpoint cfg's admin.listen
// names: its Unix socket, or its TCP address.
func NewClient(cfg *config.Config) *Client {
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
		return &Client{base: "http://localhost", where: "running hookmail's admin socket " + abs, sock: abs,
			token: cfg.Admin.Token, hc: &http.Client{Timeout: time.Minute, Transport: tr}}
	}
	addr := cfg.Admin.Listen
	host, port, err := net.SplitHostPort(addr)
	if err == nil && (host == "" || host == "0.0.0.0" || host == "::") {
		addr = net.JoinHostPort("127.0.0.1", port) // listening everywhere: reach it here
	}
	return &Client{base: "http://" + addr, where: "running hookmail at http://" + addr, token: cfg.Admin.Token, hc: &http.Client{Timeout: time.Minute}}
}

// Where names the endpoint.
func (c *Client) Where() string { return c.where }

// Close does nothing: each call is a request of its own.
func (c *Client) Close() error { return nil }

// do sends one request and decodes the JSON reply into out.
func (c *Client) do(ctx context.Context, method, path string, out any) error {
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
			return &remoteError{msg: e.Error, kind: relay.ErrNotFound}
		case http.StatusConflict:
			return &remoteError{msg: e.Error, kind: relay.ErrBusy}
		}
		return fmt.Errorf("admin endpoint %s: %s", c.base, e.Error)
	}
	return json.Unmarshal(body, out)
}

// Stats reads the queue's numbers.
func (c *Client) Stats(ctx context.Context) (relay.Stats, error) {
	var v StatsView
	err := c.do(ctx, http.MethodGet, "/admin/v1/stats", &v)
	return v.stats(), err
}

// List reads one page of the listing f asks for.
func (c *Client) List(ctx context.Context, f relay.Filter) (relay.Page, error) {
	q := url.Values{"state": {string(f.State)}, "limit": {strconv.Itoa(f.Limit)}}
	if f.Type != "" {
		q.Set("type", f.Type)
	}
	if f.After != "" {
		q.Set("after", f.After)
	}
	var v PageView
	if err := c.do(ctx, http.MethodGet, "/admin/v1/events?"+q.Encode(), &v); err != nil {
		return relay.Page{}, err
	}
	page := relay.Page{Next: v.Next}
	for i := range v.Items {
		page.Items = append(page.Items, v.Items[i].item())
	}
	return page, nil
}

// Get reads one item.
func (c *Client) Get(ctx context.Context, id string) (*relay.Item, error) {
	d, err := c.Show(ctx, id)
	if err != nil {
		return nil, err
	}
	it := d.Item.item()
	return &it, nil
}

// Show reads one item with its route and email.
func (c *Client) Show(ctx context.Context, id string) (*Detail, error) {
	var d Detail
	if err := c.do(ctx, http.MethodGet, "/admin/v1/events/"+url.PathEscape(id), &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Requeue makes the item id due now.
func (c *Client) Requeue(ctx context.Context, id string) error {
	var out map[string]any
	return c.do(ctx, http.MethodPost, "/admin/v1/events/"+url.PathEscape(id)+"/retry", &out)
}

// RequeueDead makes the dead letters of f's type due now.
func (c *Client) RequeueDead(ctx context.Context, f relay.Filter) (int, error) {
	var out struct{ Requeued int }
	path := "/admin/v1/dead/retry"
	if f.Type != "" {
		path += "?" + url.Values{"type": {f.Type}}.Encode()
	}
	err := c.do(ctx, http.MethodPost, path, &out)
	return out.Requeued, err
}

// Drop deletes the item id for good.
func (c *Client) Drop(ctx context.Context, id string) error {
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
