package media

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

// mediaServer is an HTTPS server on loopback that serves test files and
// counts the requests for each path.
type mediaServer struct {
	*httptest.Server
	port string

	mu   sync.Mutex
	hits map[string]int
	auth map[string]string // the Authorization each path got last
}

func (s *mediaServer) hit(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

func (s *mediaServer) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, v := range s.hits {
		n += v
	}
	return n
}

var photo = bytes.Repeat([]byte{0x89, 'P', 'N', 'G'}, 125) // 500 bytes

func newMediaServer(t *testing.T) *mediaServer {
	t.Helper()
	s := &mediaServer{hits: map[string]int{}, auth: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/photo.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		w.Write(photo)
	})
	mux.HandleFunc("/named", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/jpeg")
		w.Header().Set("Content-Disposition", `attachment; filename="holiday.jpg"`)
		w.Write(photo)
	})
	mux.HandleFunc("/auth", func(w http.ResponseWriter, r *http.Request) {
		if user, pass, ok := r.BasicAuth(); !ok || user != "AC0123" || pass != "the-auth-token" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Write(photo)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5000")
		w.Write(make([]byte, 5000))
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		for range 100 { // no Content-Length: chunked, 10,000 bytes in all
			if _, err := w.Write(make([]byte, 100)); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	mux.HandleFunc("/missing", http.NotFound)
	redirect := func(to func() string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, to(), http.StatusFound) }
	}
	mux.HandleFunc("/to-photo", redirect(func() string { return "/photo.png" }))
	mux.HandleFunc("/to-elsewhere", redirect(func() string { return "https://elsewhere.example/x.png" }))
	mux.HandleFunc("/to-http", redirect(func() string { return "http://127.0.0.1:" + s.port + "/photo.png" }))
	mux.HandleFunc("/loop", redirect(func() string { return "/loop" }))
	mux.HandleFunc("/to-cdn", redirect(func() string { return "https://example.com:" + s.port + "/cdn.png" }))
	mux.HandleFunc("/cdn.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		w.Write(photo)
	})
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		s.auth[r.URL.Path] = r.Header.Get("Authorization")
		s.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	u, _ := url.Parse(s.URL)
	if ip, err := netip.ParseAddr(u.Hostname()); err != nil || !ip.IsLoopback() {
		t.Fatalf("the test server is not on loopback: %s", s.URL)
	}
	s.port = u.Port()
	return s
}

// newTestFetcher trusts srv's certificate and resolves only example.com,
// to loopback: any other name is a test failure, so no test looks up a
// real name.
func newTestFetcher(t *testing.T, srv *mediaServer) (*Fetcher, *prometheus.Registry) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	reg := prometheus.NewRegistry()
	f := NewFetcher(reg, WithRootCAs(pool), WithLookup(func(_ context.Context, host string) ([]netip.Addr, error) {
		if host == "example.com" {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		}
		t.Errorf("looked up %q", host)
		return nil, errors.New("no DNS in tests")
	}))
	return f, reg
}

func loopbackMedia() config.Media {
	return config.Media{Fetch: true, Hosts: []string{"127.0.0.1"}, MaxBytes: 1000, Timeout: 2 * time.Second, AllowPrivate: true}
}

func TestFetch(t *testing.T) {
	srv := newMediaServer(t)
	local := func(path string) string { return "https://127.0.0.1:" + srv.port + path }
	tests := []struct {
		name  string
		url   string
		media func(*config.Media)
		user  string
		file  relay.Attachment // besides the URL

		wantResult string
		wantNote   string // "" when fetched
		wantName   string
		wantType   string
		wantHits   map[string]int
	}{
		{name: "fetched", url: local("/photo.png"), wantResult: resultOK, wantName: "photo.png", wantType: "image/png", wantHits: map[string]int{"/photo.png": 1}},
		{name: "the server's name", url: local("/named"), wantResult: resultOK, wantName: "holiday.jpg", wantType: "image/jpeg"},
		{name: "the sender's name and type stay", url: local("/named"), file: relay.Attachment{Name: "mine.jpg", ContentType: "image/gif"}, wantResult: resultOK, wantName: "mine.jpg", wantType: "image/jpeg"},
		{name: "basic auth", url: local("/auth"), user: "AC0123", wantResult: resultOK, wantName: "auth", wantType: "image/png"},
		{name: "basic auth missing", url: local("/auth"), wantResult: resultFailed, wantNote: "not fetched: the server answered 401"},
		{name: "a redirect within the hosts", url: local("/to-photo"), wantResult: resultOK, wantName: "photo.png", wantHits: map[string]int{"/to-photo": 1, "/photo.png": 1}},
		{name: "not found", url: local("/missing"), wantResult: resultFailed, wantNote: "not fetched: the server answered 404"},

		{name: "loopback refused without allow_private", url: local("/photo.png"), media: func(m *config.Media) { m.AllowPrivate = false },
			wantResult: resultRefused, wantNote: "not fetched: 127.0.0.1 is not a public address (media.allow_private is off)", wantHits: map[string]int{}},
		{name: "http refused", url: "http://127.0.0.1:" + srv.port + "/photo.png",
			wantResult: resultRefused, wantNote: "not fetched: only https URLs are fetched", wantHits: map[string]int{}},
		{name: "host not allowed", url: local("/photo.png"), media: func(m *config.Media) { m.Hosts = []string{"media.example", "*.127.0.0.1"} },
			wantResult: resultRefused, wantNote: "not fetched: its host 127.0.0.1 is not in media.hosts", wantHits: map[string]int{}},
		{name: "user in the URL refused", url: "https://u:p@127.0.0.1:" + srv.port + "/photo.png",
			wantResult: resultRefused, wantNote: "not fetched: the URL holds a user name or password", wantHits: map[string]int{}},
		{name: "redirect to a host not allowed", url: local("/to-elsewhere"),
			wantResult: resultRefused, wantNote: "not fetched: redirected, but its host elsewhere.example is not in media.hosts", wantHits: map[string]int{"/to-elsewhere": 1}},
		{name: "redirect to http", url: local("/to-http"),
			wantResult: resultRefused, wantNote: "not fetched: redirected, but only https URLs are fetched", wantHits: map[string]int{"/to-http": 1, "/photo.png": 0}},
		{name: "redirect loop", url: local("/loop"),
			wantResult: resultRefused, wantNote: "not fetched: more than 3 redirects", wantHits: map[string]int{"/loop": 4}},

		{name: "Content-Length over max_bytes", url: local("/big"), wantResult: resultTooLarge, wantNote: "not fetched: larger than media.max_bytes (1000 bytes)"},
		{name: "a stream past max_bytes", url: local("/stream"), wantResult: resultTooLarge, wantNote: "not fetched: larger than media.max_bytes (1000 bytes)"},
		{name: "timeout", url: local("/slow"), media: func(m *config.Media) { m.Timeout = 300 * time.Millisecond },
			wantResult: resultFailed, wantNote: "not fetched: no answer within 300ms"},

		// The name passes the host check; the address it resolves to is
		// refused when dialed, as a name rebound to loopback would be.
		{name: "a name that resolves to loopback", url: "https://example.com:" + srv.port + "/photo.png", media: func(m *config.Media) { m.Hosts = []string{"example.com"}; m.AllowPrivate = false },
			wantResult: resultRefused, wantNote: "not fetched: 127.0.0.1 is not a public address", wantHits: map[string]int{}},
		{name: "the same with allow_private", url: "https://example.com:" + srv.port + "/photo.png", media: func(m *config.Media) { m.Hosts = []string{"*.com"} },
			wantResult: resultOK, wantName: "photo.png"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := map[string]int{}
			for path := range tt.wantHits {
				before[path] = srv.hit(path)
			}
			total := srv.total()
			f, reg := newTestFetcher(t, srv)
			m := loopbackMedia()
			if tt.media != nil {
				tt.media(&m)
			}
			file := tt.file
			file.URL = tt.url
			req := relay.MediaRequest{Media: m, File: file}
			if tt.user != "" {
				req.User, req.Password = tt.user, config.Secret("the-auth-token")
			}
			start := time.Now()
			got, err := f.Fetch(t.Context(), req)
			if elapsed := time.Since(start); elapsed > m.Timeout+time.Second {
				t.Errorf("took %s, past media.timeout %s", elapsed, m.Timeout)
			}
			if n := testutil.ToFloat64(f.fetches.WithLabelValues(tt.wantResult)); n != 1 {
				t.Errorf("hookmail_media_fetches_total{result=%q} = %v, want 1", tt.wantResult, n)
			}
			if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
				t.Errorf("metric lint: %v %v", problems, err)
			}
			if got.URL != tt.url {
				t.Errorf("URL %q, want it kept", got.URL)
			}
			if tt.wantNote != "" {
				if err == nil || len(got.Data) != 0 || !strings.HasPrefix(got.Note, tt.wantNote) {
					t.Errorf("got note %q, %d bytes, err %v; want the note %q", got.Note, len(got.Data), err, tt.wantNote)
				}
				if strings.Contains(got.Note, "the-auth-token") || err != nil && strings.Contains(err.Error(), "the-auth-token") {
					t.Error("the token shows in the note or the error")
				}
			} else {
				if err != nil || !bytes.Equal(got.Data, photo) || got.Size != int64(len(photo)) || got.Note != "" {
					t.Fatalf("err %v, %d bytes, note %q; want the photo", err, len(got.Data), got.Note)
				}
				if got.Name != tt.wantName || tt.wantType != "" && got.ContentType != tt.wantType {
					t.Errorf("name %q type %q, want %q %q", got.Name, got.ContentType, tt.wantName, tt.wantType)
				}
			}
			for path, want := range tt.wantHits {
				if n := srv.hit(path) - before[path]; n != want {
					t.Errorf("%s requested %d times, want %d", path, n, want)
				}
			}
			if tt.wantHits != nil && len(tt.wantHits) == 0 && srv.total() != total {
				t.Errorf("the server was asked %d times; want no request", srv.total()-total)
			}
		})
	}
}

// TestCredentialsStayOnTheirHost: the basic auth for the first URL (Twilio's
// API) is not sent on to a redirect to another domain (its CDN, whose URL
// is signed instead).
func TestCredentialsStayOnTheirHost(t *testing.T) {
	srv := newMediaServer(t)
	f, _ := newTestFetcher(t, srv)
	m := loopbackMedia()
	m.Hosts = []string{"127.0.0.1", "example.com"}
	got, err := f.Fetch(t.Context(), relay.MediaRequest{Media: m, File: relay.Attachment{URL: "https://127.0.0.1:" + srv.port + "/to-cdn"},
		User: "AC0123", Password: config.Secret("the-auth-token")})
	if err != nil || !bytes.Equal(got.Data, photo) {
		t.Fatalf("err %v, %d bytes", err, len(got.Data))
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.auth["/to-cdn"] == "" || srv.auth["/cdn.png"] != "" {
		t.Errorf("Authorization: to the API %q, to the CDN %q; want it on the first only", srv.auth["/to-cdn"], srv.auth["/cdn.png"])
	}
}

func TestPublicAddresses(t *testing.T) {
	for _, tt := range []struct {
		ip   string
		want bool
	}{
		{"127.0.0.1", false}, {"127.9.9.9", false}, {"::1", false},
		{"10.1.2.3", false}, {"172.16.0.1", false}, {"192.168.1.1", false}, {"fc00::1", false}, {"fd12::1", false},
		{"169.254.169.254", false}, {"fe80::1", false},
		{"0.0.0.0", false}, {"::", false}, {"0.1.2.3", false},
		{"224.0.0.1", false}, {"ff02::1", false}, {"255.255.255.255", false},
		{"100.64.0.1", false}, {"198.18.0.1", false}, {"240.0.0.1", false}, {"192.0.2.1", false},
		{"::ffff:127.0.0.1", false}, {"::ffff:10.0.0.1", false}, {"64:ff9b::a00:1", false}, {"2002:7f00:1::", false},
		{"2001::1", false}, {"::7f00:1", false},
		{"8.8.8.8", true}, {"52.1.2.3", true}, {"::ffff:52.1.2.3", true}, {"2606:4700::1111", true},
	} {
		if got := public(netip.MustParseAddr(tt.ip)); got != tt.want {
			t.Errorf("public(%s) = %v, want %v", tt.ip, got, tt.want)
		}
	}
}

func TestHostAllowed(t *testing.T) {
	hosts := []string{"api.twilio.com", "*.twiliocdn.com", "Media.Example."}
	for host, want := range map[string]bool{
		"api.twilio.com":          true,
		"twilio.com":              false,
		"evil-api.twilio.com":     false,
		"mms.twiliocdn.com":       true,
		"a.b.twiliocdn.com":       true,
		"twiliocdn.com":           false,
		"eviltwiliocdn.com":       false,
		"media.example":           true,
		"api.twilio.com.evil.com": false,
	} {
		if got := hostAllowed(host, hosts); got != want {
			t.Errorf("hostAllowed(%q) = %v, want %v", host, got, want)
		}
	}
	for raw, want := range map[string]string{
		"https://API.Twilio.com./x": "",
		"HTTPS://api.twilio.com/x":  "", // url.Parse lower-cases the scheme
		"ftp://api.twilio.com/x":    "only https URLs are fetched",
		"https:///x":                "the URL names no host",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := disallowed(u, hosts); got != want {
			t.Errorf("disallowed(%s) = %q, want %q", raw, got, want)
		}
	}
}

// TestCancelledContextFails: a delivery cut short (shutdown) ends the
// fetch at once, counted as failed.
func TestCancelledContextFails(t *testing.T) {
	srv := newMediaServer(t)
	f, _ := newTestFetcher(t, srv)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	got, err := f.Fetch(ctx, relay.MediaRequest{Media: loopbackMedia(), File: relay.Attachment{URL: fmt.Sprintf("https://127.0.0.1:%s/photo.png", srv.port)}})
	if err == nil || got.Note == "" || testutil.ToFloat64(f.fetches.WithLabelValues(resultFailed)) != 1 {
		t.Errorf("err %v, note %q", err, got.Note)
	}
}
