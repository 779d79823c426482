// Package media fetches the remote files of webhook events (a Twilio
// MediaUrl, a Zender attachment URL) for the sources whose media.fetch is
// on, so their emails attach them rather than link them.
//
// A webhook names the URL, so every fetch is held to what the source
// allows, against server-side request forgery: https only; a host in
// media.hosts, for the first URL and every redirect (at most 3); no
// loopback, private, link-local or other non-public address unless
// media.allow_private, checked on the address actually dialed, so a name
// that resolves to a public address when checked and a private one when
// dialed (DNS rebinding) gains nothing; no proxy from the environment, whose
// address would be the one checked; and media.max_bytes and media.timeout
// per file.
package media

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

// maxRedirects is how many redirects one fetch follows: Twilio's media URL
// redirects once, to its CDN.
const maxRedirects = 3

// The results a fetch counts under in hookmail_media_fetches_total.
const (
	resultOK       = "ok"
	resultTooLarge = "too_large"
	resultRefused  = "refused"
	resultFailed   = "failed"
)

// Fetcher fetches remote files over HTTPS under each source's media
// settings. It keeps no connection between fetches: each has the dialer and
// redirect rules of its source.
type Fetcher struct {
	fetches *prometheus.CounterVec
	lookup  func(ctx context.Context, host string) ([]netip.Addr, error)
	roots   *x509.CertPool
}

var _ relay.MediaFetcher = (*Fetcher)(nil)

// Option changes a Fetcher, for tests.
type Option func(*Fetcher)

// WithRootCAs trusts pool's certificates instead of the system's (a test
// server's).
func WithRootCAs(pool *x509.CertPool) Option { return func(f *Fetcher) { f.roots = pool } }

// WithLookup resolves host names with lookup instead of DNS. Every address
// it returns is still checked as it is dialed.
func WithLookup(lookup func(ctx context.Context, host string) ([]netip.Addr, error)) Option {
	return func(f *Fetcher) { f.lookup = lookup }
}

// NewFetcher registers hookmail_media_fetches_total on reg.
func NewFetcher(reg prometheus.Registerer, opts ...Option) *Fetcher {
	f := &Fetcher{
		fetches: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "hookmail_media_fetches_total",
			Help: "Remote files fetched to attach them, by result: ok, too_large (over media.max_bytes), refused (not https, a host media.hosts does not allow, a non-public address), failed (no answer, an error status).",
		}, []string{"result"}),
		lookup: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		},
	}
	for _, r := range []string{resultOK, resultTooLarge, resultRefused, resultFailed} {
		f.fetches.WithLabelValues(r)
	}
	for _, o := range opts {
		o(f)
	}
	return f
}

// fetchError is a fetch that did not bring the file: the result it counts
// as, the note the email shows, and the cause, for the log.
type fetchError struct {
	result, note string
	err          error
}

func (e *fetchError) Error() string {
	if e.err == nil {
		return e.note
	}
	return e.note + ": " + e.err.Error()
}

func (e *fetchError) Unwrap() error { return e.err }

func refused(why string) *fetchError {
	return &fetchError{result: resultRefused, note: "not fetched: " + why}
}

// Fetch fetches req.File.URL under req.Media. The file comes back with its
// bytes, a media type (the server's, else the sender's) and a name (the
// sender's, else the server's, else the URL's last segment); or, on any
// failure, as it was with a Note saying why, and the error for the log.
func (f *Fetcher) Fetch(ctx context.Context, req relay.MediaRequest) (relay.Attachment, error) {
	a := req.File
	res, err := f.fetch(ctx, req)
	if err != nil {
		var fe *fetchError
		if !errors.As(err, &fe) {
			fe = &fetchError{result: resultFailed, note: "not fetched: the connection failed", err: err}
		}
		f.fetches.WithLabelValues(fe.result).Inc()
		a.Note = fe.note
		return a, fe
	}
	f.fetches.WithLabelValues(resultOK).Inc()
	a.Data, a.Size = res.data, int64(len(res.data))
	if ct := res.header.Get("Content-Type"); ct != "" && ct != "application/octet-stream" || a.ContentType == "" {
		a.ContentType = ct
	}
	if a.Name == "" {
		if _, params, err := mime.ParseMediaType(res.header.Get("Content-Disposition")); err == nil && params["filename"] != "" {
			a.Name = params["filename"]
		} else if base := path.Base(res.url.Path); base != "/" && base != "." {
			a.Name = base
		}
	}
	return a, nil
}

// response is what a fetch brought: the body, read whole, the header and
// the URL it came from after the redirects.
type response struct {
	data   []byte
	header http.Header
	url    *url.URL
}

func (f *Fetcher) fetch(ctx context.Context, req relay.MediaRequest) (*response, error) {
	m := req.Media
	u, err := url.Parse(req.File.URL)
	if err != nil {
		return nil, refused("not a URL")
	}
	if why := disallowed(u, m.Hosts); why != "" {
		return nil, refused(why)
	}
	ctx, cancel := context.WithTimeout(ctx, m.Timeout)
	defer cancel()
	client := f.client(m)
	defer client.CloseIdleConnections()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, refused("not a URL")
	}
	hreq.Header.Set("User-Agent", "hookmail")
	if req.User != "" {
		// Go's client drops it on a redirect to another domain (Twilio's
		// CDN, whose URL is signed instead).
		hreq.SetBasicAuth(req.User, req.Password.Reveal())
	}
	timedOut := func(err error) error {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return &fetchError{result: resultFailed, note: fmt.Sprintf("not fetched: no answer within %s", m.Timeout), err: err}
		}
		return err
	}
	res, err := client.Do(hreq)
	if err != nil {
		return nil, timedOut(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, &fetchError{result: resultFailed, note: "not fetched: the server answered " + strconv.Itoa(res.StatusCode)}
	}
	tooLarge := &fetchError{result: resultTooLarge, note: fmt.Sprintf("not fetched: larger than media.max_bytes (%d bytes)", m.MaxBytes)}
	if res.ContentLength > m.MaxBytes {
		return nil, tooLarge
	}
	data, err := io.ReadAll(io.LimitReader(res.Body, m.MaxBytes+1))
	if err != nil {
		return nil, timedOut(err)
	}
	if int64(len(data)) > m.MaxBytes {
		return nil, tooLarge
	}
	return &response{data: data, header: res.Header, url: res.Request.URL}, nil
}

// client is an HTTP client under m's rules: its own dialer (which checks
// each address it dials), TLS with the system's roots, no proxy, no
// connection kept, and redirects checked as the first URL is.
func (f *Fetcher) client(m config.Media) *http.Client {
	dialer := &net.Dialer{
		Timeout: m.Timeout,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return refused("not an address: " + address)
			}
			if !m.AllowPrivate && !public(ap.Addr()) {
				return refused(ap.Addr().String() + " is not a public address (media.allow_private is off)")
			}
			return nil
		},
	}
	transport := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return f.dial(ctx, dialer, network, addr)
		},
		TLSClientConfig:        &tls.Config{RootCAs: f.roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    m.Timeout,
		ResponseHeaderTimeout:  m.Timeout,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{
		Transport: transport,
		CheckRedirect: func(r *http.Request, via []*http.Request) error {
			if len(via) > maxRedirects {
				return refused(fmt.Sprintf("more than %d redirects", maxRedirects))
			}
			if why := disallowed(r.URL, m.Hosts); why != "" {
				return refused("redirected, but " + why)
			}
			return nil
		},
	}
}

// dial connects to addr's host at each of its addresses in turn, through
// dialer, whose Control refuses the addresses m does not allow.
func (f *Fetcher) dial(ctx context.Context, dialer *net.Dialer, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else if addrs, err = f.lookup(ctx, host); err != nil {
		return nil, err
	}
	var first error
	for _, ip := range addrs {
		conn, err := dialer.DialContext(ctx, network, net.JoinHostPort(ip.Unmap().String(), port))
		if err == nil {
			return conn, nil
		}
		first = cmp.Or(first, err)
	}
	if first == nil {
		first = fmt.Errorf("%s has no address", host)
	}
	return nil, first
}
