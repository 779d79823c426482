package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/mail"
	neturl "net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MaxWebhookBodyBytes is the largest webhook.max_body_bytes: a body up to
// it, decoded into an event, still makes an email under the 10 MB mail
// servers take (relay.MaxEmailBytes), even listed field by field as plain
// text, base64-encoded, after the repair of invalid UTF-8 tripled it.
const MaxWebhookBodyBytes = 2 << 20

// Problem is one thing wrong with a config: the key, what is wrong, and how
// to fix it. It never quotes a secret's value.
type Problem struct {
	Key     string
	Message string
	Fix     string
}

func (p *Problem) Error() string {
	if p.Fix == "" {
		return fmt.Sprintf("%s: %s", p.Key, p.Message)
	}
	return fmt.Sprintf("%s: %s; %s", p.Key, p.Message, p.Fix)
}

// Validate reports every problem in the config at once, joined, each a
// *Problem naming the key and the fix. It returns nil for a usable config.
func (c *Config) Validate() error { return c.ValidateFor(Serve) }

// Use says what a config is loaded for.
type Use int

const (
	// Serve needs every setting: serve, check and reloads.
	Serve Use = iota
	// Tools are the commands that receive no webhook (render, route,
	// send-test, queue): they need no webhook secret.
	Tools
)

// ValidateFor is Validate for what the config is used for.
func (c *Config) ValidateFor(use Use) error {
	var v validator
	c.validateServer(&v)
	c.validateWebhook(&v, use)
	c.validateQueue(&v)
	c.validateBackend(&v)
	c.validateSMTP(&v)
	c.validatePace(&v)
	c.validateRetry(&v)
	c.validateRoutes(&v)
	if c.Templates.Dir != "" {
		v.dir("templates.dir", c.Templates.Dir)
	}
	c.validateShutdown(&v)
	return errors.Join(v.problems...)
}

// validateShutdown checks shutdown.drain: 0 is allowed (no drain), a
// negative one is not, and neither is a bare number, which decodes as
// nanoseconds.
func (c *Config) validateShutdown(v *validator) {
	switch d := c.Shutdown.Drain; {
	case d < 0:
		v.add("shutdown.drain", fmt.Sprintf("must not be negative, got %s", d), `write it like "5s", or "0" to stop taking webhooks at once on SIGTERM`)
	case d > 0 && d < time.Millisecond:
		v.add("shutdown.drain", fmt.Sprintf("%s is shorter than a millisecond; is the unit missing?", d), `write it with a unit, like "5s"`)
	}
}

// Warnings lists what is allowed but probably a mistake.
func (c *Config) Warnings() []string {
	var warns []string
	if !c.hasCatchAll() {
		warns = append(warns, "routes: no catch-all route (one without match); an event no route takes goes to the dead letters with reason \"no route\"")
	}
	for i, s := range c.Webhook.Secrets {
		switch {
		case s.Reveal() == SampleSecret:
			warns = append(warns, fmt.Sprintf("webhook.secrets[%d]: is the sample secret published in the gateway's documentation and hookmail's README, so anyone can post webhooks with it; fine for a trial, but set your gateway's own secret before hookmail can be reached from elsewhere", i))
		case s != "" && len(s.Reveal()) < 16:
			warns = append(warns, fmt.Sprintf("webhook.secrets[%d]: shorter than 16 characters; use a long random value (the gateway's own are 40 hex characters)", i))
		}
	}
	// A listed source's keys: a short one can be found from one captured
	// webhook, offline (SMS Gateway's app suggests 8 characters).
	for i, src := range c.Webhook.SourceList {
		secrets, err := src.AllSecrets()
		if err != nil {
			continue // Validate names the file's problem
		}
		for j, s := range secrets { // numbered as validation numbers them: set ones, then the file's
			if s != "" && len(s.Reveal()) < 16 {
				warns = append(warns, fmt.Sprintf("webhook.sources[%d].secrets[%d]: shorter than 16 characters; anyone who sees one signed webhook can try keys offline until one matches, so set a long random value in the gateway and here", i, j))
			}
		}
	}
	if tok := c.Admin.Token.Reveal(); tok != "" && len(tok) < 16 {
		warns = append(warns, "admin.token: shorter than 16 characters; the admin page's login takes it, so use a long random value, e.g. the output of: openssl rand -hex 32")
	}
	return warns
}

// SampleSecret is the webhook secret in the gateway's public documentation.
// The README's quickstart uses it, so it is accepted, with a warning.
const SampleSecret = "f50f6f32ff605baf44483fcecceaba83fc3f9362"

// placeholders are the stand-in credentials of hookmail's own example
// config, deploy files and README. A config holding one was copied without
// its secret filled in, and each is public.
var placeholders = []string{
	"9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c0b2d4f6e",      // config/hookmail.example.yaml
	"replace-with-the-gateways-40-character-secret", // deploy/kubernetes/secret.yaml
	"replace-with-the-smtp-password",                // deploy/kubernetes/secret.yaml
	"the-16-letter-app-password",                    // README.md, Gmail
	"replace-with-the-database-password",            // deploy/kubernetes-postgres/secret.yaml, in the URL
	"PASSWORD",                                      // README.md and the example config, in the URL
}

const placeholderMsg = "is a placeholder from hookmail's example config, deploy files or README, not a secret"

// isPlaceholder reports whether s is one of placeholders, or a stand-in
// left as written: "..." or "<the mail server password>".
func isPlaceholder(s Secret) bool {
	v := strings.TrimSpace(s.Reveal())
	switch {
	case v == "":
		return false
	case slices.Contains(placeholders, v), strings.Trim(v, ".…") == "":
		return true
	}
	return len(v) > 2 && strings.HasPrefix(v, "<") && strings.HasSuffix(v, ">")
}

// urlPassword is the password in a postgres:// URL, or "".
func urlPassword(s string) string {
	u, err := neturl.Parse(strings.TrimSpace(s))
	if err != nil || u.User == nil {
		return ""
	}
	p, _ := u.User.Password()
	return p
}

func (c *Config) hasCatchAll() bool {
	for _, r := range c.Routes {
		if len(r.Match) == 0 {
			return true
		}
	}
	return false
}

type validator struct{ problems []error }

func (v *validator) add(key, msg, fix string) {
	v.problems = append(v.problems, &Problem{Key: key, Message: msg, Fix: fix})
}

func (v *validator) positive(key string, d time.Duration) {
	switch {
	case d <= 0:
		v.add(key, fmt.Sprintf("must be a positive duration, got %s", d), `write it like "30s", "5m" or "1h"`)
	case d < time.Millisecond:
		// A bare number decodes as nanoseconds: "30" is 30ns, surely not meant.
		v.add(key, fmt.Sprintf("%s is shorter than a millisecond; is the unit missing?", d), `write it with a unit, like "30s", "5m" or "1h"`)
	}
}

func (v *validator) address(key, addr string) {
	if _, err := mail.ParseAddress(addr); err != nil {
		v.add(key, fmt.Sprintf("%q is not an email address (%v)", addr, err), `write it as "name@example.com" or "Name <name@example.com>"`)
	}
}

func (v *validator) dir(key, path string) {
	if fi, err := os.Stat(path); err != nil {
		v.add(key, fmt.Sprintf("%q cannot be read (%v)", path, err), "create the directory or correct the path")
	} else if !fi.IsDir() {
		v.add(key, fmt.Sprintf("%q is not a directory", path), "point it at a directory")
	}
}

func (v *validator) file(key, path string) {
	if fi, err := os.Stat(path); err != nil {
		v.add(key, fmt.Sprintf("%q cannot be read (%v)", path, err), "create the file or correct the path")
	} else if fi.IsDir() {
		v.add(key, fmt.Sprintf("%q is a directory", path), "point it at a file")
	}
}

func (c *Config) validateServer(v *validator) {
	if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		v.add("listen", fmt.Sprintf("%q is not host:port (%v)", c.Listen, err), `write it like ":8080" or "127.0.0.1:8080"`)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.add("listen", fmt.Sprintf("port %q is not a number from 0 to 65535", port), `write it like ":8080"`)
	}
	if _, err := time.LoadLocation(c.Timezone); err != nil {
		v.add("timezone", fmt.Sprintf("%q is not a known time zone", c.Timezone), `use an IANA name like "UTC", "Europe/Berlin" or "Asia/Manila"`)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		v.add("log.level", fmt.Sprintf("%q is not a level", c.Log.Level), "use one of debug, info, warn, error")
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		v.add("log.format", fmt.Sprintf("%q is not a format", c.Log.Format), "use text or json")
	}
	if c.Spool.Dir == "" {
		v.add("spool.dir", "is empty", "set the directory the durable queue lives in, e.g. ./data")
	}
	if c.SMTP.Host == "" && c.Outbox.Dir == "" {
		v.add("outbox.dir", "is empty and smtp.host is not set, so emails have nowhere to go", "set outbox.dir (e.g. ./outbox) or smtp.host")
	}
}

// ownPaths are the endpoints hookmail serves beside the webhook; the
// webhook's path may be neither one of them nor below one.
var ownPaths = []string{"/healthz", "/readyz", "/metrics"}

// webhookPathChars are the characters a webhook.path may hold: RFC 3986's
// unreserved ones and "/". Anything else could be read by http.ServeMux as
// a pattern (a space before a method, {wildcards}) or be escaped on the wire.
var webhookPathChars = regexp.MustCompile(`^[A-Za-z0-9._~/-]*$`)

// webhookPath accepts what the webhook handler can be registered on, both
// as p and p+"/", without http.ServeMux panicking or redirecting.
func (v *validator) webhookPath(p string) { v.webhookPathAt("webhook.path", p) }

// webhookPathAt is webhookPath for the path at key.
func (v *validator) webhookPathAt(key, p string) {
	trimmed := strings.TrimSuffix(p, "/")
	switch {
	case !strings.HasPrefix(p, "/"):
		v.add(key, fmt.Sprintf("%q does not start with /", p), `write it like "/webhook"`)
	case strings.Trim(p, "/") == "":
		v.add(key, fmt.Sprintf("%q would take every path, hookmail's own endpoints too", p), `choose a path of its own, e.g. "/webhook"`)
	case !webhookPathChars.MatchString(p):
		v.add(key, fmt.Sprintf(`%q holds a character other than letters, digits, "-", ".", "_", "~" and "/"`, p), `write it like "/webhook" or "/hooks/sms-gateway"`)
	case path.Clean(trimmed) != trimmed:
		v.add(key, fmt.Sprintf("%q is not a clean path (no //, /./ or /../)", p), fmt.Sprintf("write it as %q", path.Clean(trimmed)))
	default:
		for _, own := range ownPaths {
			if trimmed == own || strings.HasPrefix(trimmed, own+"/") {
				v.add(key, fmt.Sprintf("%q is taken by hookmail's own endpoint %s", p, own), `choose another path, e.g. "/webhook"`)
			}
		}
	}
}

func (c *Config) validateWebhook(v *validator, use Use) {
	w := c.Webhook
	v.webhookPath(w.Path)
	if use == Serve && (len(w.SourceList) == 0 || len(w.Secrets) > 0) {
		c.validateSecrets(v)
	}
	c.validateSources(v, use)
	switch {
	case w.MaxBodyBytes <= 0:
		v.add("webhook.max_body_bytes", fmt.Sprintf("must be positive, got %d", w.MaxBodyBytes), "set a limit in bytes, e.g. 1048576")
	case w.MaxBodyBytes > MaxWebhookBodyBytes:
		v.add("webhook.max_body_bytes", fmt.Sprintf("%d is over %d, past which an event could make an email over the 10 MB mail servers take", w.MaxBodyBytes, MaxWebhookBodyBytes),
			"set at most 2097152 (2 MiB); the gateway's own bodies are a few KiB")
	}
}

// validateSecrets checks the secrets the receiver lets gateways in with.
func (c *Config) validateSecrets(v *validator) {
	if len(c.Webhook.Secrets) == 0 {
		v.add("webhook.secrets", "no secret is set, so no gateway could be let in", "set the secret your gateway sends (its webhook settings show it), e.g. HOOKMAIL_WEBHOOK_SECRETS=...")
	}
	for i, s := range c.Webhook.Secrets {
		switch key := fmt.Sprintf("webhook.secrets[%d]", i); {
		case strings.TrimSpace(s.Reveal()) == "":
			v.add(key, "is empty", "remove it or set the gateway's secret")
		case isPlaceholder(s):
			v.add(key, placeholderMsg, "set your gateway's own secret (its webhook settings show it)")
		}
	}
}

func (c *Config) validateQueue(v *validator) {
	w := c.Webhook
	if w.MaxConcurrent < 1 || w.MaxConcurrent > 100000 {
		v.add("webhook.max_concurrent", fmt.Sprintf("%d is out of range", w.MaxConcurrent), "use a number from 1 to 100000, e.g. 256")
	}
	if math.IsNaN(w.RateLimit) || math.IsInf(w.RateLimit, 0) {
		// NaN compares false with everything, so it would turn the limit off.
		v.add("webhook.rate_limit", fmt.Sprintf("%g is not a number of requests", w.RateLimit), "set requests per second per client IP, e.g. 10, or 0 for no limit")
	} else if w.RateLimit < 0 {
		v.add("webhook.rate_limit", fmt.Sprintf("must not be negative, got %g", w.RateLimit), "set requests per second per client IP, or 0 for no limit")
	}
	if w.RateLimit > 0 && w.RateBurst < 1 {
		v.add("webhook.rate_burst", fmt.Sprintf("must be at least 1 while webhook.rate_limit is set, got %d", w.RateBurst), "set it to the requests a client may make at once, e.g. 20")
	}
	v.positive("webhook.body_timeout", w.BodyTimeout)
	if w.MaxConnections < 1 || w.MaxConnections > 1000000 {
		v.add("webhook.max_connections", fmt.Sprintf("%d is out of range", w.MaxConnections), "use a number from 1 to 1000000, e.g. 1024")
	}
	if w.MaxConnectionsPerIP < 0 || w.MaxConnectionsPerIP > w.MaxConnections {
		v.add("webhook.max_connections_per_ip", fmt.Sprintf("%d is out of range", w.MaxConnectionsPerIP),
			"use a number from 1 to webhook.max_connections, e.g. 64, or 0 for no cap per IP (behind a proxy every connection has the proxy's IP)")
	}
	if c.Spool.MaxEvents < 0 {
		v.add("spool.max_events", fmt.Sprintf("must not be negative, got %d", c.Spool.MaxEvents), "set a number of events, or 0 for no limit")
	}
	if c.Spool.MaxBytes < 0 {
		v.add("spool.max_bytes", fmt.Sprintf("must not be negative, got %d", c.Spool.MaxBytes), "set a size in bytes, or 0 for no limit")
	}
	if c.Dedup.Window < 0 {
		v.add("dedup.window", fmt.Sprintf("must not be negative, got %s", c.Dedup.Window), `write it like "24h", or "0" to turn it off`)
	} else if c.Dedup.Window > 0 && c.Dedup.Window < time.Millisecond {
		v.add("dedup.window", fmt.Sprintf("%s is shorter than a millisecond; is the unit missing?", c.Dedup.Window), `write it with a unit, like "24h"`)
	}
	if isPlaceholder(c.Admin.Token) {
		v.add("admin.token", placeholderMsg, "set a long random token, e.g. the output of: openssl rand -hex 32")
	}
	if sock, ok := c.AdminSocket(); ok {
		switch {
		case sock == "":
			v.add("admin.listen", `"unix:" names no socket file`, `write "unix" for a socket in spool.dir, or "unix:/run/hookmail/admin.sock"`)
		case len(sock) > maxSocketPath:
			v.add("admin.listen", fmt.Sprintf("the socket path %q is longer than the %d bytes a Unix socket allows", sock, maxSocketPath),
				`give a shorter path with "unix:/run/hookmail/admin.sock", or a shorter spool.dir`)
		}
	} else if a := c.Admin.Listen; c.Admin.Enabled() {
		_, _, err := net.SplitHostPort(a)
		switch {
		case err != nil:
			v.add("admin.listen", fmt.Sprintf("%q is not host:port (%v)", a, err), `write "unix" (a socket in spool.dir, the default), a TCP address like "127.0.0.1:8025" with admin.token, or "off"`)
		case strings.TrimSpace(c.Admin.Token.Reveal()) == "":
			v.add("admin.listen", fmt.Sprintf("%q is a TCP address and admin.token is empty, so any user on this machine (and anyone who reaches it) could read and drop queued events", a),
				`set admin.token (HOOKMAIL_ADMIN_TOKEN), a long random value such as the output of openssl rand -hex 32: the queue commands send it, and the admin page's login asks for it; or use admin.listen: unix, a socket only hookmail's own user can open`)
		case a == c.Listen:
			v.add("admin.listen", fmt.Sprintf("%q is also listen", a), "give the admin endpoint its own port")
		}
	}
}

func (c *Config) validateBackend(v *validator) {
	q, pg := c.Queue, c.Queue.Postgres
	switch q.Backend {
	case BackendSpool, BackendPostgres:
	default:
		v.add("queue.backend", fmt.Sprintf("%q is not a queue backend", q.Backend),
			"use spool (one hookmail, the queue in a file in spool.dir) or postgres (several hookmails sharing a database)")
	}
	v.positive("queue.lease_timeout", q.LeaseTimeout)
	v.positive("queue.postgres.poll", pg.Poll)
	if isPlaceholder(pg.URL) || isPlaceholder(Secret(urlPassword(pg.URL.Reveal()))) {
		v.add("queue.postgres.url", placeholderMsg, "set the database's URL, e.g. in HOOKMAIL_QUEUE_POSTGRES_URL or queue.postgres.url_file")
	}
	switch url := strings.TrimSpace(pg.URL.Reveal()); {
	case url != "" && pg.URLFile != "":
		v.add("queue.postgres.url", "is set together with queue.postgres.url_file", "set only one of them")
	case url == "" && pg.URLFile == "" && q.Backend == BackendPostgres:
		v.add("queue.postgres.url", "is empty, and queue.backend is postgres",
			"set the database's URL, e.g. HOOKMAIL_QUEUE_POSTGRES_URL=postgres://hookmail:PASSWORD@db.example.com/hookmail, or queue.postgres.url_file")
	case url != "" && !strings.HasPrefix(url, "postgres://") && !strings.HasPrefix(url, "postgresql://") && !strings.Contains(url, "="):
		// The value is not quoted: it may hold the password.
		v.add("queue.postgres.url", "is neither a postgres:// URL nor a key=value connection string",
			"write it like postgres://hookmail:PASSWORD@db.example.com:5432/hookmail")
	}
	if pg.URLFile != "" {
		v.file("queue.postgres.url_file", pg.URLFile)
	}
}

// maxSocketPath is the longest Unix socket path Linux takes (sun_path is
// 108 bytes with its NUL; macOS allows 104).
const maxSocketPath = 103

// IsLoopback reports whether host (no port) names only the local machine:
// "localhost" or a loopback IP. The admin endpoint checks requests' Host
// with it, and smtp.tls: none with credentials is allowed only to loopback.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CredentialsInClear reports whether a login would cross a network in
// clear: smtp.tls none with a username, to a host that is not loopback.
// A name other than "localhost" that resolves to loopback does not count as
// loopback: that is DNS's answer of the day, and no DNS is asked here.
func (s SMTP) CredentialsInClear() bool {
	return s.TLS == TLSNone && s.Username != "" && !IsLoopback(s.Host)
}

func (c *Config) validateSMTP(v *validator) {
	s := c.SMTP
	if s.Port < 1 || s.Port > 65535 {
		v.add("smtp.port", fmt.Sprintf("%d is not a port", s.Port), "use 587 for starttls, 465 for tls, 25 for a local server")
	}
	switch s.TLS {
	case TLSStartTLS, TLSImplicit, TLSNone:
	default:
		v.add("smtp.tls", fmt.Sprintf("%q is not a TLS mode", s.TLS), "use starttls (port 587), tls (implicit TLS, port 465) or none")
	}
	if isPlaceholder(s.Password) {
		v.add("smtp.password", placeholderMsg, "set the mail server's password, e.g. in HOOKMAIL_SMTP_PASSWORD or smtp.password_file")
	}
	if s.Password != "" && s.PasswordFile != "" {
		v.add("smtp.password", "is set together with smtp.password_file", "set only one of them")
	}
	if s.PasswordFile != "" {
		v.file("smtp.password_file", s.PasswordFile)
	}
	if s.Host != "" && s.CredentialsInClear() {
		v.add("smtp.tls", fmt.Sprintf("none would send smtp.username's credentials in clear to %q, which is not a loopback address", s.Host),
			"use starttls (port 587) or tls (port 465), or relay through a server on 127.0.0.1, ::1 or localhost")
	}
	if !slices.Contains(AuthMechanisms, s.Auth) {
		v.add("smtp.auth", fmt.Sprintf("%q is not an AUTH mechanism", s.Auth), "use one of "+strings.Join(AuthMechanisms, ", "))
	}
	if s.CAFile != "" {
		v.file("smtp.ca_file", s.CAFile)
	}
	v.address("smtp.from", s.From)
	v.positive("smtp.timeout", s.Timeout)
	if s.Workers < 1 || s.Workers > 256 {
		v.add("smtp.workers", fmt.Sprintf("%d is out of range", s.Workers), "use a number from 1 to 256")
	}
}

func (c *Config) validateRetry(v *validator) {
	r := c.Retry
	v.positive("retry.initial", r.Initial)
	v.positive("retry.max", r.Max)
	v.positive("retry.lifetime", r.Lifetime)
	if r.Initial > 0 && r.Max > 0 && r.Initial > r.Max {
		v.add("retry.initial", fmt.Sprintf("%s is longer than retry.max (%s)", r.Initial, r.Max), "make retry.initial shorter than retry.max")
	}
}
