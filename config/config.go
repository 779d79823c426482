// Package config loads, validates and prints hookmail's configuration.
//
// A config is built in three layers, each overriding the one before: the
// built-in defaults (defaults.yaml), an optional YAML file, and HOOKMAIL_*
// environment variables. Every load uses its own viper instance, so a reload
// never sees a half-built config.
package config

import (
	"bytes"
	_ "embed"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

//go:embed defaults.yaml
var defaultsYAML []byte

// EnvPrefix starts every environment variable hookmail reads for config keys:
// smtp.password is HOOKMAIL_SMTP_PASSWORD.
const EnvPrefix = "HOOKMAIL_"

// Config is hookmail's whole configuration.
type Config struct {
	Listen    string    `mapstructure:"listen" yaml:"listen"`
	Timezone  string    `mapstructure:"timezone" yaml:"timezone"`
	Log       Log       `mapstructure:"log" yaml:"log"`
	Webhook   Webhook   `mapstructure:"webhook" yaml:"webhook"`
	Queue     Queue     `mapstructure:"queue" yaml:"queue"`
	Spool     Spool     `mapstructure:"spool" yaml:"spool"`
	Dedup     Dedup     `mapstructure:"dedup" yaml:"dedup"`
	Admin     Admin     `mapstructure:"admin" yaml:"admin"`
	Outbox    Outbox    `mapstructure:"outbox" yaml:"outbox"`
	SMTP      SMTP      `mapstructure:"smtp" yaml:"smtp"`
	Retry     Retry     `mapstructure:"retry" yaml:"retry"`
	Routes    []Route   `mapstructure:"routes" yaml:"routes"`
	Templates Templates `mapstructure:"templates" yaml:"templates"`
	Shutdown  Shutdown  `mapstructure:"shutdown" yaml:"shutdown"`
}

// Log sets how hookmail logs.
type Log struct {
	Level  string `mapstructure:"level" yaml:"level"`   // debug | info | warn | error
	Format string `mapstructure:"format" yaml:"format"` // text | json
}

// Webhook configures the HTTP receiver.
type Webhook struct {
	Path         string   `mapstructure:"path" yaml:"path"`
	Secrets      []Secret `mapstructure:"secrets" yaml:"secrets"`
	MaxBodyBytes int64    `mapstructure:"max_body_bytes" yaml:"max_body_bytes"`
	UnescapeHTML bool     `mapstructure:"unescape_html" yaml:"unescape_html"`
	// MaxConcurrent caps the webhook requests handled at once; more wait
	// briefly for a slot, then get 503.
	MaxConcurrent int `mapstructure:"max_concurrent" yaml:"max_concurrent"`
	// RateLimit is the requests per second one client IP may make (0: no
	// limit), with bursts of up to RateBurst.
	RateLimit float64 `mapstructure:"rate_limit" yaml:"rate_limit"`
	RateBurst int     `mapstructure:"rate_burst" yaml:"rate_burst"`
	// BodyTimeout bounds how long a client may take to send its body. The
	// body is read before the request takes one of MaxConcurrent's slots,
	// so a slow client holds a connection, never a slot.
	BodyTimeout time.Duration `mapstructure:"body_timeout" yaml:"body_timeout"`
	// MaxConnections caps the open connections to the webhook listener;
	// MaxConnectionsPerIP caps one client IP's share of them (0: no cap
	// per IP), so one client cannot hold what the others need.
	MaxConnections      int `mapstructure:"max_connections" yaml:"max_connections"`
	MaxConnectionsPerIP int `mapstructure:"max_connections_per_ip" yaml:"max_connections_per_ip"`
	// SourceList is webhook.sources: senders of other formats, or more
	// than one gateway. Read the sources in force with Sources.
	SourceList []Source `mapstructure:"sources" yaml:"sources"`
}

// Queue chooses where accepted events wait for delivery, and how long a
// worker holds one.
type Queue struct {
	// Backend is BackendSpool (one file in spool.dir that one hookmail
	// holds) or BackendPostgres (tables several hookmails share).
	Backend string `mapstructure:"backend" yaml:"backend"`
	// LeaseTimeout is how long a worker holds an event unless it extends
	// its lease: after a worker hangs or its instance dies, the event is
	// due again this long after the last extension.
	LeaseTimeout time.Duration `mapstructure:"lease_timeout" yaml:"lease_timeout"`
	Postgres     Postgres      `mapstructure:"postgres" yaml:"postgres"`
}

// The values of queue.backend.
const (
	BackendSpool    = "spool"
	BackendPostgres = "postgres"
)

// Postgres configures the shared queue backend.
type Postgres struct {
	// URL is the database's connection URL (postgres://user:password@host/db)
	// or key=value string; URLFile names a file that holds it instead.
	URL     Secret `mapstructure:"url" yaml:"url"`
	URLFile string `mapstructure:"url_file" yaml:"url_file"`
	// Listen has idle workers woken by LISTEN/NOTIFY when another instance
	// stores an event; off behind PgBouncer in transaction mode, which
	// loses a LISTEN. Poll is how often idle workers look in any case.
	Listen bool          `mapstructure:"listen" yaml:"listen"`
	Poll   time.Duration `mapstructure:"poll" yaml:"poll"`
}

// ConnString returns queue.postgres.url, or the content of
// queue.postgres.url_file without its trailing newline.
func (p Postgres) ConnString() (string, error) {
	if p.URLFile == "" {
		return p.URL.Reveal(), nil
	}
	b, err := ReadRegularFile(p.URLFile, MaxFileBytes)
	if err != nil {
		return "", fmt.Errorf("queue.postgres.url_file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// Spool configures the embedded durable queue.
type Spool struct {
	Dir string `mapstructure:"dir" yaml:"dir"`
	// MaxEvents and MaxBytes cap what the spool holds (0: no cap): events
	// waiting, and the bytes of the spool file's pages in use; past them
	// the receiver answers 503.
	MaxEvents int   `mapstructure:"max_events" yaml:"max_events"`
	MaxBytes  int64 `mapstructure:"max_bytes" yaml:"max_bytes"`
}

// Dedup sets how long a sender's event id is remembered, so a repeated
// delivery of the same event yields one email.
type Dedup struct {
	Window time.Duration `mapstructure:"window" yaml:"window"`
}

// Admin configures the queue-management endpoint the `hookmail queue`
// commands talk to while hookmail runs.
type Admin struct {
	// Listen is where the endpoint listens: "unix" (the default) for a
	// socket in spool.dir that only hookmail's own user (and root) can
	// open, "unix:PATH" for a socket elsewhere, host:port for TCP (which
	// any local user can reach, so it requires Token), or "off" (also "")
	// to turn it off ("off" also works from the environment, where an
	// empty value counts as unset).
	Listen string `mapstructure:"listen" yaml:"listen"`
	Token  Secret `mapstructure:"token" yaml:"token"`
}

// AdminSocketName is the admin socket's file name in spool.dir.
const AdminSocketName = "admin.sock"

// Enabled reports whether the admin endpoint is on.
func (a Admin) Enabled() bool { return a.Listen != "" && a.Listen != "off" }

// Socket returns the path of the admin endpoint's Unix socket, and false
// when it listens on TCP (or is off).
func (c *Config) AdminSocket() (string, bool) {
	switch l := c.Admin.Listen; {
	case l == "unix":
		return filepath.Join(c.Spool.Dir, AdminSocketName), true
	case strings.HasPrefix(l, "unix:"):
		return strings.TrimPrefix(l, "unix:"), true
	}
	return "", false
}

// AdminPage says where hookmail serves its admin web page, or what to set
// for it to: the page is served on the admin endpoint whenever admin.token
// is set (a browser logs in with it), and a browser reaches it on a TCP
// admin.listen.
func (c *Config) AdminPage() string {
	const how = "set admin.listen to a TCP address such as 127.0.0.1:9090 and admin.token (HOOKMAIL_ADMIN_TOKEN) to a long random value, then open http://127.0.0.1:9090/ and log in with the token"
	sock, onSocket := c.AdminSocket()
	switch {
	case !c.Admin.Enabled():
		return "off: admin.listen is off; " + how
	case onSocket && c.Admin.Token == "":
		return "off: admin.listen is a Unix socket, which a browser cannot open, and admin.token is empty; " + how
	case onSocket:
		return fmt.Sprintf("on the Unix socket %s, which a browser cannot open: forward it (ssh -L 9090:%s) or %s", sock, sock, how)
	}
	addr, also := c.Admin.Listen, ""
	if host, port, err := net.SplitHostPort(addr); err == nil && (host == "" || host == "0.0.0.0" || host == "::") {
		addr, also = net.JoinHostPort("127.0.0.1", port), ", and every address of this machine"
	}
	return "http://" + addr + "/" + also + " (log in with admin.token)"
}

// Outbox configures the .eml writer used when no SMTP host is set.
type Outbox struct {
	Dir string `mapstructure:"dir" yaml:"dir"`
}

// SMTP configures delivery through a mail server.
type SMTP struct {
	Host         string        `mapstructure:"host" yaml:"host"`
	Port         int           `mapstructure:"port" yaml:"port"`
	TLS          string        `mapstructure:"tls" yaml:"tls"`
	CAFile       string        `mapstructure:"ca_file" yaml:"ca_file"`
	Username     string        `mapstructure:"username" yaml:"username"`
	Password     Secret        `mapstructure:"password" yaml:"password"`
	PasswordFile string        `mapstructure:"password_file" yaml:"password_file"`
	Auth         string        `mapstructure:"auth" yaml:"auth"`
	From         string        `mapstructure:"from" yaml:"from"`
	Timeout      time.Duration `mapstructure:"timeout" yaml:"timeout"`
	Workers      int           `mapstructure:"workers" yaml:"workers"`
	// Rate caps the emails sent, all workers and instances together, as
	// "N/unit" ("30/m", "2000/d"): sent evenly, one every unit/N. "" is no
	// cap (see ParseRate).
	Rate string `mapstructure:"rate" yaml:"rate"`
	// ThrottleReplies and QuotaReplies are regular expressions for server
	// replies that mean "slow down" and "quota used up", besides the
	// built-in ones (relay/smtp): a throttling reply lowers the pace, a
	// quota reply holds every email until QuotaReset.
	ThrottleReplies []string `mapstructure:"throttle_replies" yaml:"throttle_replies"`
	QuotaReplies    []string `mapstructure:"quota_replies" yaml:"quota_replies"`
	// QuotaReset is how long a quota reply holds the emails: a duration
	// ("1h"), or a time of day ("00:00", in timezone) to hold until.
	QuotaReset string `mapstructure:"quota_reset" yaml:"quota_reset"`
}

// Retry sets the backoff between delivery attempts and how long an event may
// keep failing before it goes to the dead letters.
type Retry struct {
	Initial  time.Duration `mapstructure:"initial" yaml:"initial"`
	Max      time.Duration `mapstructure:"max" yaml:"max"`
	Lifetime time.Duration `mapstructure:"lifetime" yaml:"lifetime"`
}

// Route sends the events it matches to its recipients. A route without a
// match takes every event (the catch-all). Routes are tried in order; the
// first that matches takes the event, unless it has continue: true, in which
// case the routes after it are tried too.
type Route struct {
	Name string `mapstructure:"name" yaml:"name"`
	// Match holds when every key holds. The canonical keys, the same for
	// every format: type, source (the webhook source's name), format and
	// status exactly; text as a regular expression found anywhere in it;
	// from and to exactly (phone numbers compared without spaces, dashes
	// and brackets), or as a regular expression when written /like this/.
	// Any other key is a data field of the format's own (names compared
	// without regard to case): message, content, response, title and
	// package as regular expressions, the rest exactly or /like this/.
	Match map[string]string `mapstructure:"match" yaml:"match,omitempty"`
	To    []string          `mapstructure:"to" yaml:"to,omitempty"`
	Cc    []string          `mapstructure:"cc" yaml:"cc,omitempty"`
	Bcc   []string          `mapstructure:"bcc" yaml:"bcc,omitempty"`
	// ReplyTo sets the Reply-To header.
	ReplyTo string `mapstructure:"reply_to" yaml:"reply_to,omitempty"`
	// Subject is a subject template replacing the type's own.
	Subject string `mapstructure:"subject" yaml:"subject,omitempty"`
	// Template names the template set (<name>.subject.tmpl, .text.tmpl,
	// .html.tmpl) to use instead of the event type's.
	Template string `mapstructure:"template" yaml:"template,omitempty"`
	// Thread makes emails about one conversation one thread in mail
	// clients (References, In-Reply-To, a stable subject); default true.
	Thread *bool `mapstructure:"thread" yaml:"thread,omitempty"`
	// Drop: matching events are counted and never emailed.
	Drop bool `mapstructure:"drop" yaml:"drop,omitempty"`
	// Continue: after this route, the routes below are tried too.
	Continue bool `mapstructure:"continue" yaml:"continue,omitempty"`
	// Digest collects the route's events and sends them as one email per
	// window instead of one email each.
	Digest *Digest `mapstructure:"digest" yaml:"digest,omitempty"`
	// Rate caps the route's emails as smtp.rate does ("10/m"), on top of
	// smtp.rate; "" is no cap of its own.
	Rate string `mapstructure:"rate" yaml:"rate,omitempty"`
	// Priority orders the queue: events of a route with a higher priority
	// (0 to MaxPriority) go out before older ones of lower routes.
	Priority int `mapstructure:"priority" yaml:"priority,omitempty"`
	// Storm emails a conversation's first events in a window one by one
	// and folds the rest into one digest email at the window's end.
	Storm *Storm `mapstructure:"storm" yaml:"storm,omitempty"`
}

// Storm sets when a burst from one conversation (the thread key: one
// phone number, chat, USSD code or app) becomes a digest: past Threshold
// events in Window, the window's other events go out as one email when it
// ends. The window starts with the conversation's first event and ends by
// itself; the next event after it starts a new one.
type Storm struct {
	Threshold int           `mapstructure:"threshold" yaml:"threshold"`
	Window    time.Duration `mapstructure:"window" yaml:"window"`
}

// Storm bounds: a threshold is stored with each window (the ids of the
// events emailed in it), and a window holds its events back until it ends.
const (
	MaxStormThreshold = 1000
	MaxStormWindow    = 24 * time.Hour
)

// Digest sets when a route's collected events go out as one email: Every
// after the first of them arrived, or as soon as MaxEvents are waiting.
type Digest struct {
	Every     time.Duration `mapstructure:"every" yaml:"every"`
	MaxEvents int           `mapstructure:"max_events" yaml:"max_events"`
}

// DefaultDigestMax is a digest's size when the route sets no max_events.
const DefaultDigestMax = 200

// Max is the number of events that sends a digest before its window ends.
func (d *Digest) Max() int {
	if d.MaxEvents == 0 {
		return DefaultDigestMax
	}
	return d.MaxEvents
}

// Threaded reports whether the route threads its emails (the default).
func (r *Route) Threaded() bool { return r.Thread == nil || *r.Thread }

// RegexFields are the match keys whose values are always regular
// expressions: the free-text fields.
var RegexFields = []string{"message", "content", "response", "title", "package", "text"}

// ExactKeys are the canonical match keys compared exactly, never as
// regular expressions.
var ExactKeys = []string{"type", "source", "format", "status"}

// MatchPattern returns the regular expression of a match value, and false
// when the value is compared exactly.
func MatchPattern(key, value string) (string, bool) {
	if slices.Contains(ExactKeys, key) {
		return "", false
	}
	if len(value) >= 2 && strings.HasPrefix(value, "/") && strings.HasSuffix(value, "/") {
		return value[1 : len(value)-1], true
	}
	for _, f := range RegexFields {
		if key == f {
			return value, true
		}
	}
	return "", false
}

// Templates points at an optional directory whose files override the
// embedded email templates of the same name.
type Templates struct {
	Dir string `mapstructure:"dir" yaml:"dir"`
}

// Shutdown sets how hookmail stops on SIGTERM.
type Shutdown struct {
	// Drain is how long hookmail keeps taking webhooks after SIGTERM while
	// /readyz already answers 503, so load balancers and Kubernetes stop
	// sending before the port closes (0: close at once). The gateway never
	// retries, so a webhook sent to a closed port is lost.
	Drain time.Duration `mapstructure:"drain" yaml:"drain"`
}

// AuthMechanisms are the values of smtp.auth; auto lets the server's offer
// decide.
var AuthMechanisms = []string{"auto", "plain", "login", "cram-md5", "scram-sha-1", "scram-sha-256", "xoauth2"}

// TLS modes for smtp.tls.
const (
	TLSStartTLS = "starttls"
	TLSImplicit = "tls"
	TLSNone     = "none"
)

// Location returns the zone event timestamps are shown in. Validate has
// checked that it loads.
func (c *Config) Location() *time.Location {
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// YAML prints the effective config, secrets masked, for `hookmail check`.
func (c *Config) YAML() string {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return "# cannot print config: " + err.Error() + "\n"
	}
	return b.String()
}
