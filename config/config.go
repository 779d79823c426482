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
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
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
	Spool     Spool     `mapstructure:"spool" yaml:"spool"`
	Dedup     Dedup     `mapstructure:"dedup" yaml:"dedup"`
	Admin     Admin     `mapstructure:"admin" yaml:"admin"`
	Outbox    Outbox    `mapstructure:"outbox" yaml:"outbox"`
	SMTP      SMTP      `mapstructure:"smtp" yaml:"smtp"`
	Retry     Retry     `mapstructure:"retry" yaml:"retry"`
	Routes    []Route   `mapstructure:"routes" yaml:"routes"`
	Templates Templates `mapstructure:"templates" yaml:"templates"`
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
}

// Spool configures the embedded durable queue.
type Spool struct {
	Dir string `mapstructure:"dir" yaml:"dir"`
	// MaxEvents and MaxBytes cap what the spool holds (0: no cap); past
	// them the receiver answers 503.
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
	// Match holds when every key holds: type exactly; message, content,
	// response, title and package as regular expressions found anywhere in
	// the field; any other data field exactly, or as a regular expression
	// when written /like this/.
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
}

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
var RegexFields = []string{"message", "content", "response", "title", "package"}

// MatchPattern returns the regular expression of a match value, and false
// when the value is compared exactly.
func MatchPattern(key, value string) (string, bool) {
	if key == "type" {
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

// AuthMechanisms are the values of smtp.auth; auto lets the server's offer
// decide.
var AuthMechanisms = []string{"auto", "plain", "login", "cram-md5", "scram-sha-1", "scram-sha-256", "xoauth2"}

// TLS modes for smtp.tls.
const (
	TLSStartTLS = "starttls"
	TLSImplicit = "tls"
	TLSNone     = "none"
)

// Default returns the built-in configuration: what hookmail runs on with no
// file and no environment.
func Default() *Config {
	cfg, err := load(nil, nil)
	if err != nil {
		panic("config: built-in defaults do not load: " + err.Error())
	}
	return cfg
}

// MaxWebhookBodyBytes is the largest webhook.max_body_bytes: a body up to
// it, decoded into an event, still makes an email under the 10 MB mail
// servers take (relay.MaxEmailBytes), even listed field by field as plain
// text, base64-encoded, after the repair of invalid UTF-8 tripled it.
const MaxWebhookBodyBytes = 2 << 20

// MaxFileBytes bounds a config file. Real ones are a few KiB; the bound
// keeps a --config naming the wrong file (a log, a disk image) from filling
// memory.
const MaxFileBytes = 1 << 20

// Load builds the config from the defaults, the YAML file at path (none when
// path is empty), and the HOOKMAIL_* variables getenv returns. It reports
// unknown keys and values of the wrong type; Validate checks the rest.
// The file must be a regular file of at most MaxFileBytes.
//
// When the file parses but some values do not decode, Load returns the
// config along with the error: every key that decoded is filled in, each
// that did not is left at its zero value. That is for LoadValid, which
// validates the rest in the same pass; no other caller may use such a
// config.
func Load(path string, getenv func(string) string) (*Config, error) {
	var file []byte
	if path != "" {
		b, err := ReadRegularFile(path, MaxFileBytes)
		var notFile *NotAFileError
		switch {
		case errors.As(err, &notFile):
			return nil, fmt.Errorf("config file %s: %w; point --config (or HOOKMAIL_CONFIG) at the YAML file", path, err)
		case err != nil:
			return nil, fmt.Errorf("config file: %w", err)
		}
		file = b
	}
	cfg, err := load(file, getenv)
	if err != nil && path != "" {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, err
}

// LoadValid is Load and Validate in one pass, for serve, check and reload:
// the config when it is usable, else an error listing every problem at
// once, those of decoding (an unknown key, a value of the wrong type) and
// those Validate finds in what did decode. A key that did not decode is
// not reported again by Validate: its zero value would only add a spurious
// "must be positive".
func LoadValid(path string, getenv func(string) string) (*Config, error) {
	cfg, err := Load(path, getenv)
	if cfg == nil {
		return nil, err
	}
	var all []error
	if err != nil {
		all = append(all, err)
	}
	failed := Problems(err)
	for _, p := range Problems(cfg.Validate()) {
		if !slices.ContainsFunc(failed, func(f *Problem) bool { return within(p.Key, f.Key) }) {
			all = append(all, p)
		}
	}
	if len(all) > 0 {
		return nil, errors.Join(all...)
	}
	return cfg, nil
}

// Problems lists the *Problem values in err, however wrapped and joined.
func Problems(err error) []*Problem {
	var out []*Problem
	var walk func(error)
	walk = func(e error) {
		if p, ok := e.(*Problem); ok {
			out = append(out, p)
			return
		}
		switch e := e.(type) {
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

// within reports whether key is parent or lies below it:
// routes[1].name is within routes[1].
func within(key, parent string) bool {
	return key == parent || strings.HasPrefix(key, parent+".") || strings.HasPrefix(key, parent+"[")
}

func load(file []byte, getenv func(string) string) (*Config, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(defaultsYAML)); err != nil {
		return nil, err
	}
	known := v.AllKeys()
	if file != nil {
		if err := v.MergeConfig(bytes.NewReader(file)); err != nil {
			return nil, fmt.Errorf("not valid YAML: %w", err)
		}
	}
	if getenv != nil {
		for _, key := range known {
			if key == "routes" {
				continue // a list of objects has no sensible env form
			}
			if val, ok := lookupEnv(getenv, key); ok {
				v.Set(key, val)
			}
		}
	}
	cfg := &Config{}
	// mapstructure decodes all it can before it reports what it could not.
	decodeErr := v.UnmarshalExact(cfg)
	// "a, b" from the environment means two secrets, not " b".
	for i, sec := range cfg.Webhook.Secrets {
		cfg.Webhook.Secrets[i] = Secret(strings.TrimSpace(sec.Reveal()))
	}
	if decodeErr != nil {
		return cfg, decodeProblems(decodeErr, v.AllSettings())
	}
	return cfg, nil
}

// NotAFileError is what ReadRegularFile says of a path that is not a
// regular file of the size allowed.
type NotAFileError struct{ Reason string }

func (e *NotAFileError) Error() string { return e.Reason }

// ReadRegularFile reads the regular file at path, of at most limit bytes.
// Anything else (a directory, a device such as /dev/zero, a FIFO, a socket,
// a bigger file) is a *NotAFileError, found before reading it. The file is
// opened with O_NONBLOCK, so a FIFO without a writer cannot block the open,
// and the opened file itself is examined, so a path swapped between a check
// and the open cannot slip by.
func ReadRegularFile(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if mode := fi.Mode(); !mode.IsRegular() {
		kind := "not a regular file"
		switch {
		case mode.IsDir():
			kind = "a directory, not a file"
		case mode&os.ModeDevice != 0:
			kind = "a device, not a regular file"
		case mode&os.ModeNamedPipe != 0:
			kind = "a named pipe (FIFO), not a regular file"
		case mode&os.ModeSocket != 0:
			kind = "a socket, not a regular file"
		}
		return nil, &NotAFileError{Reason: "is " + kind}
	}
	tooLarge := &NotAFileError{Reason: "is larger than " + sizeText(limit) + ", the most it may hold"}
	if fi.Size() > limit {
		return nil, tooLarge
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit { // it grew after the Stat
		return nil, tooLarge
	}
	return b, nil
}

// sizeText writes a size the way people read it: 1 MiB, 64 KiB, 100 bytes.
func sizeText(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// EnvName is the environment variable that overrides key.
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

func lookupEnv(getenv func(string) string, key string) (string, bool) {
	val := getenv(EnvName(key))
	return val, val != ""
}

// decodeProblems turns mapstructure's errors into ones that name the key,
// quote the value and show how to write it, so a typo reads "unknown key
// smtp.hots" and a bad duration `smtp.timeout: "2x" is not a valid
// duration`. viper wraps mapstructure's joined errors, which may nest, so
// every layer is opened. settings are the values decoded, to quote from.
func decodeProblems(err error, settings map[string]any) error {
	var problems []error
	var walk func(key string, e error)
	walk = func(key string, e error) {
		switch e := e.(type) {
		case *mapstructure.DecodeError:
			walk(strings.TrimPrefix(e.Name(), "."), e.Unwrap())
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(key, inner)
			}
		case *mapstructure.ParseError:
			problems = append(problems, badValue(key, e.Expected.Type(), settings, e))
		case *mapstructure.UnconvertibleTypeError:
			problems = append(problems, badValue(key, e.Expected.Type(), settings, e))
		default:
			if inner := errors.Unwrap(e); inner != nil {
				walk(key, inner)
				return
			}
			if rest, ok := strings.CutPrefix(e.Error(), "has invalid keys: "); ok {
				for _, k := range strings.Split(rest, ", ") {
					problems = append(problems, &Problem{
						Key:     joinKey(key, k),
						Message: "unknown key",
						Fix:     "remove it or correct its spelling (config/hookmail.example.yaml lists every key)",
					})
				}
				return
			}
			problems = append(problems, badValue(key, fieldType(key), settings, e))
		}
	}
	walk("", err)
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].Error() < problems[j].Error() })
	return errors.Join(problems...)
}

// badValue is the problem of a value at key that does not decode into t:
// the value quoted (a secret never), and an example.
func badValue(key string, t reflect.Type, settings map[string]any, cause error) *Problem {
	val, found := lookup(settings, key)
	shown := "" // "key: is not …" when the value is a secret's or not found
	switch val.(type) {
	case []any:
		shown = "a list "
	case map[string]any:
		shown = "a map "
	default:
		if found && t != reflect.TypeFor[Secret]() {
			shown = fmt.Sprintf("%q ", fmt.Sprint(val))
		}
	}
	p := &Problem{Key: key, Message: cause.Error(), Fix: "give a value of the type shown in config/hookmail.example.yaml"}
	if t == nil {
		return p
	}
	switch k := t.Kind(); {
	case t == reflect.TypeFor[time.Duration]():
		p.Message, p.Fix = shown+"is not a valid duration", `write it like "30s", "5m" or "1h"`
	case k >= reflect.Int && k <= reflect.Uint64:
		p.Message, p.Fix = shown+"is not a valid whole number", "write it in digits, like 10"
	case k == reflect.Float32 || k == reflect.Float64:
		p.Message, p.Fix = shown+"is not a valid number", "write it like 10 or 0.5"
	case k == reflect.Bool:
		p.Message, p.Fix = shown+"is not a valid boolean", "write true or false"
	case k == reflect.String:
		p.Message, p.Fix = shown+"is not a single value", `write one value, in quotes, like "…"`
		// The default routes are an example of a value, not of every route's.
		if def, ok := lookup(defaultSettings(), key); ok && fmt.Sprint(def) != "" && t != reflect.TypeFor[Secret]() && !strings.HasPrefix(key, "routes") {
			p.Fix = fmt.Sprintf("write one value, in quotes, like %q", fmt.Sprint(def))
		}
	case k == reflect.Slice:
		p.Message, p.Fix = shown+"is not a list", `write it in brackets, like ["a", "b"], or as "- " lines`
	case k == reflect.Struct || k == reflect.Map:
		p.Message, p.Fix = shown+"is not a map of keys", "write it as config/hookmail.example.yaml shows"
	}
	return p
}

// keyParts splits a key as mapstructure names it, routes[0].match[type],
// into routes, [0], match, [type].
var keyParts = regexp.MustCompile(`\[[^\]]*\]|[^.\[\]]+`)

// fieldType is the Go type of the Config field at key, nil when there is
// none.
func fieldType(key string) reflect.Type {
	t := reflect.TypeFor[Config]()
	for _, part := range keyParts.FindAllString(key, -1) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch {
		case strings.HasPrefix(part, "["):
			if t.Kind() != reflect.Slice && t.Kind() != reflect.Map {
				return nil
			}
			t = t.Elem()
		case t.Kind() == reflect.Struct:
			f, ok := fieldTagged(t, part)
			if !ok {
				return nil
			}
			t = f.Type
		default:
			return nil
		}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func fieldTagged(t reflect.Type, name string) (reflect.StructField, bool) {
	for f := range t.Fields() {
		if strings.Split(f.Tag.Get("mapstructure"), ",")[0] == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// lookup finds the value at key in viper's settings. mapstructure decodes
// a lone value where a list belongs as a list of one and names it [0], so
// a [0] that is not there names the value itself.
func lookup(settings map[string]any, key string) (any, bool) {
	var cur any = settings
	for _, part := range keyParts.FindAllString(key, -1) {
		name := strings.TrimSuffix(strings.TrimPrefix(part, "["), "]")
		var next any
		found := false
		switch c := cur.(type) {
		case map[string]any:
			next, found = c[name]
		case []any:
			if i, err := strconv.Atoi(name); err == nil && i >= 0 && i < len(c) {
				next, found = c[i], true
			}
		}
		switch {
		case found:
			cur = next
		case part != "[0]":
			return nil, false
		}
	}
	return cur, true
}

// defaultSettings are the built-in defaults as viper holds them.
func defaultSettings() map[string]any {
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(defaultsYAML)); err != nil {
		return nil
	}
	return v.AllSettings()
}

func joinKey(parent, child string) string {
	if parent == "" {
		return child
	}
	return parent + "." + child
}

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
