package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Source is one sender of webhooks: where it posts (path), in which wire
// format, and what it authenticates with. webhook.sources lists them; the
// single-gateway keys webhook.path and webhook.secrets make one more, named
// "gateway", in the zender format.
type Source struct {
	Name   string `mapstructure:"name" yaml:"name"`
	Path   string `mapstructure:"path" yaml:"path"`
	Format string `mapstructure:"format" yaml:"format"`
	// Secrets are what the format authenticates with: the body's secret
	// (zender), the HMAC signing key (smsgate, textbee), the auth token
	// (twilio), the JWT key (httpsms). Any of them lets a webhook in, so a
	// key can be rotated without a gap. Also from SecretsFile (one a line)
	// or HOOKMAIL_SOURCE_<NAME>_SECRETS (comma-separated).
	Secrets     []Secret `mapstructure:"secrets" yaml:"secrets"`
	SecretsFile string   `mapstructure:"secrets_file" yaml:"secrets_file"`
	// PublicURL is the URL the sender posts to, as it sees it (behind a
	// proxy it differs from what hookmail sees): the formats whose
	// signature covers the URL (twilio, httpsms) need it.
	PublicURL MaskedURL `mapstructure:"public_url" yaml:"public_url"`
	// ReplayWindow is how old a signed timestamp (smsgate's X-Timestamp)
	// may be, either way; 0 means the default, 5 minutes.
	ReplayWindow time.Duration `mapstructure:"replay_window" yaml:"replay_window"`
	// MaxBodyBytes caps this source's bodies; 0 means webhook.max_body_bytes
	// (for smsgate, whose MMS carry pictures inline, 8 MiB).
	MaxBodyBytes int64 `mapstructure:"max_body_bytes" yaml:"max_body_bytes"`
	Media        Media `mapstructure:"media" yaml:"media"`
}

// Media sets whether hookmail fetches a source's remote attachments (a
// Twilio MediaUrl) to attach them, rather than linking to them.
type Media struct {
	Fetch bool `mapstructure:"fetch" yaml:"fetch"`
	// Hosts are the hosts it may fetch from: "api.twilio.com", or
	// "*.twilio.com" for any below it. Fetching needs at least one.
	Hosts []string `mapstructure:"hosts" yaml:"hosts"`
	// MaxBytes caps one file (default 5 MiB), Timeout one fetch (default
	// 10s).
	MaxBytes int64         `mapstructure:"max_bytes" yaml:"max_bytes"`
	Timeout  time.Duration `mapstructure:"timeout" yaml:"timeout"`
	// AllowPrivate lets it fetch from loopback and private addresses,
	// which are refused by default so a webhook cannot make hookmail
	// reach inside its network (SSRF).
	AllowPrivate bool `mapstructure:"allow_private" yaml:"allow_private"`
}

// Formats a source may have.
const (
	FormatZender  = "zender"
	FormatSMSGate = "smsgate"
	FormatTwilio  = "twilio"
	FormatTextbee = "textbee"
	FormatHTTPSMS = "httpsms"
)

// SourceFormats lists every format.
var SourceFormats = []string{FormatZender, FormatSMSGate, FormatTwilio, FormatTextbee, FormatHTTPSMS}

// GatewaySource is the name of the source webhook.path and webhook.secrets
// make.
const GatewaySource = "gateway"

// Defaults of a source's keys.
const (
	DefaultReplayWindow     = 5 * time.Minute
	DefaultSMSGateBodyBytes = 8 << 20
	DefaultMediaMaxBytes    = 5 << 20
	DefaultMediaTimeout     = 10 * time.Second
	// MaxMediaBytes is the largest media.max_bytes: the most one email
	// attaches (relay.MaxAttachmentBytes), base64 a little under 10 MB.
	MaxMediaBytes = 7_000_000
	// MaxMediaTimeout is the longest media.timeout.
	MaxMediaTimeout = time.Minute
	// MaxSourceBodyBytes is the largest body an smsgate source may take:
	// an MMS with its pictures inline, base64. Its fields besides the
	// files are held to MaxWebhookBodyBytes, as every other format's body
	// is, and the email attaches files up to its own cap, naming the rest.
	MaxSourceBodyBytes = 16 << 20
)

// Sources returns every source in force: "gateway" from webhook.path and
// webhook.secrets (unless webhook.sources is set and webhook.secrets is
// not), then webhook.sources, each with its defaults filled in.
func (w *Webhook) Sources() []Source {
	var out []Source
	if len(w.SourceList) == 0 || len(w.Secrets) > 0 {
		out = append(out, Source{Name: GatewaySource, Path: w.Path, Format: FormatZender, Secrets: w.Secrets})
	}
	out = append(out, w.SourceList...)
	for i := range out {
		s := &out[i]
		if s.ReplayWindow == 0 {
			s.ReplayWindow = DefaultReplayWindow
		}
		if s.MaxBodyBytes == 0 {
			s.MaxBodyBytes = w.MaxBodyBytes
			if s.Format == FormatSMSGate {
				s.MaxBodyBytes = max(w.MaxBodyBytes, DefaultSMSGateBodyBytes)
			}
		}
		if s.Media.MaxBytes == 0 {
			s.Media.MaxBytes = DefaultMediaMaxBytes
		}
		if s.Media.Timeout == 0 {
			s.Media.Timeout = DefaultMediaTimeout
		}
	}
	return out
}

// Source returns the source in force named name.
func (w *Webhook) Source(name string) (Source, bool) {
	for _, s := range w.Sources() {
		if s.Name == name {
			return s, true
		}
	}
	return Source{}, false
}

// AllSecrets returns the source's secrets: those set, then those in
// secrets_file (one a line; empty lines and # comments skipped), read
// anew on each call so a reload picks up a rotated file.
func (s *Source) AllSecrets() ([]Secret, error) {
	out := slices.Clone(s.Secrets)
	if s.SecretsFile == "" {
		return out, nil
	}
	b, err := ReadRegularFile(s.SecretsFile, 64<<10)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.key("secrets_file"), err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, Secret(line))
		}
	}
	return out, nil
}

// key names one of the source's keys as the config file writes it.
func (s *Source) key(k string) string {
	if s.Name == GatewaySource && s.Format == FormatZender && s.SecretsFile == "" {
		switch k {
		case "path":
			return "webhook.path"
		case "secrets":
			return "webhook.secrets"
		}
	}
	return fmt.Sprintf("webhook.sources[%s].%s", s.Name, k)
}

// SourceEnvName is the environment variable that sets a source's secrets.
func SourceEnvName(name string) string {
	return EnvPrefix + "SOURCE_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(name)) + "_SECRETS"
}

// applySourceEnv sets each listed source's secrets from its variable.
func (w *Webhook) applySourceEnv(getenv func(string) string) {
	for i := range w.SourceList {
		if val := getenv(SourceEnvName(w.SourceList[i].Name)); val != "" {
			w.SourceList[i].Secrets = nil
			for part := range strings.SplitSeq(val, ",") {
				w.SourceList[i].Secrets = append(w.SourceList[i].Secrets, Secret(strings.TrimSpace(part)))
			}
		}
	}
}

var sourceName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// validateSources checks webhook.sources and the paths of every source.
func (c *Config) validateSources(v *validator, use Use) {
	w := &c.Webhook
	names := map[string]bool{}
	paths := map[string]string{}
	envs := map[string]string{}
	for i, s := range w.Sources() {
		listed := s.Name != GatewaySource || i > 0 || len(w.SourceList) > 0 && len(w.Secrets) == 0
		at := func(k string) string {
			if !listed {
				return s.key(k)
			}
			return fmt.Sprintf("webhook.sources[%d].%s", i-(len(w.Sources())-len(w.SourceList)), k)
		}
		if listed {
			switch {
			case !sourceName.MatchString(s.Name):
				v.add(at("name"), fmt.Sprintf("%q is not a name of lower-case letters, digits, - and _ (at most 32)", s.Name), `name the sender, e.g. "smsgate-office"`)
			case names[s.Name] && s.Name == GatewaySource:
				v.add(at("name"), `"gateway" is the name of the source webhook.path and webhook.secrets make`, "choose another name, or move webhook.secrets into this source")
			case names[s.Name]:
				v.add(at("name"), fmt.Sprintf("%q names two sources", s.Name), "give each source a name of its own")
			case envs[SourceEnvName(s.Name)] != "":
				v.add(at("name"), fmt.Sprintf("%q and %q share the variable %s", envs[SourceEnvName(s.Name)], s.Name, SourceEnvName(s.Name)),
					"give them names that differ in more than - and _")
			}
			envs[SourceEnvName(s.Name)] = s.Name
			v.webhookPathAt(at("path"), s.Path)
		}
		names[s.Name] = true
		if other, ok := paths[strings.TrimSuffix(s.Path, "/")]; ok {
			v.add(at("path"), fmt.Sprintf("%q is also source %q's path", s.Path, other), "give each source a path of its own, e.g. /webhook/"+s.Name)
		}
		paths[strings.TrimSuffix(s.Path, "/")] = s.Name
		if !listed {
			continue
		}
		if !slices.Contains(SourceFormats, s.Format) {
			v.add(at("format"), fmt.Sprintf("%q is not a format hookmail reads", s.Format), "use one of "+strings.Join(SourceFormats, ", "))
		}
		if use == Serve {
			secrets, err := s.AllSecrets()
			switch {
			case err != nil:
				v.add(at("secrets_file"), err.Error(), "point it at a readable file with one secret a line")
			case len(secrets) == 0:
				v.add(at("secrets"), "no secret is set, so this source's webhooks would all be refused",
					fmt.Sprintf("set the key the sender signs or authenticates with, in secrets, secrets_file or %s", SourceEnvName(s.Name)))
			}
			for j, sec := range secrets {
				switch {
				case strings.TrimSpace(sec.Reveal()) == "":
					v.add(fmt.Sprintf("%s[%d]", at("secrets"), j), "is empty", "remove it or set the sender's key")
				case isPlaceholder(sec):
					v.add(fmt.Sprintf("%s[%d]", at("secrets"), j), placeholderMsg, "set the sender's own key")
				}
			}
		}
		if s.Format == FormatTwilio || s.Format == FormatHTTPSMS {
			if u, err := url.Parse(s.PublicURL.Reveal()); s.PublicURL == "" || err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
				v.add(at("public_url"), fmt.Sprintf("%s signs the URL it posts to, so hookmail must know it: %q is not an absolute http(s) URL", s.Format, s.PublicURL),
					"set the URL you entered in the sender's console, e.g. https://hooks.example.com"+s.Path)
			}
		}
		if s.ReplayWindow < 0 {
			v.add(at("replay_window"), fmt.Sprintf("must not be negative, got %s", s.ReplayWindow), `write it like "5m"`)
		}
		switch {
		case s.MaxBodyBytes < 0 || s.MaxBodyBytes > MaxSourceBodyBytes:
			v.add(at("max_body_bytes"), fmt.Sprintf("%d is out of range", s.MaxBodyBytes), fmt.Sprintf("set at most %d (16 MiB), or 0 for the default", MaxSourceBodyBytes))
		case s.Format != FormatSMSGate && s.MaxBodyBytes > MaxWebhookBodyBytes:
			// Only smsgate carries files inline, which an email attaches
			// apart from the text; any other body is all text, and past
			// this its email could be over what mail servers take.
			v.add(at("max_body_bytes"), fmt.Sprintf("%d is over %d, past which a %s webhook's email could be over the 10 MB mail servers take", s.MaxBodyBytes, MaxWebhookBodyBytes, s.Format),
				"set at most 2097152 (2 MiB); only smsgate, whose pictures come inline, may take more")
		}
		if s.Media.Fetch {
			if len(s.Media.Hosts) == 0 {
				v.add(at("media.hosts"), "media.fetch is on but no host is allowed", `list the hosts the sender's media comes from, e.g. ["api.twilio.com"]`)
			}
			for j, h := range s.Media.Hosts {
				bare := strings.TrimPrefix(h, "*.")
				ip := net.ParseIP(bare)
				switch {
				case bare == "" || strings.ContainsAny(bare, "/:*@ ") || ip != nil && bare != h:
					v.add(fmt.Sprintf("%s[%d]", at("media.hosts"), j), fmt.Sprintf("%q is not a host name", h), `write a host like "api.twilio.com" or "*.twilio.com"`)
				case ip != nil && !s.Media.AllowPrivate && (ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() || ip.IsMulticast()):
					v.add(fmt.Sprintf("%s[%d]", at("media.hosts"), j), fmt.Sprintf("%q is a loopback, private or link-local address, which hookmail never fetches from by default", h),
						"set media.allow_private: true if the media server really is inside your network")
				}
			}
		}
		if s.Media.MaxBytes < 0 || s.Media.Timeout < 0 {
			v.add(at("media"), "max_bytes and timeout must not be negative", "leave them out for the defaults (5 MiB, 10s)")
		}
		if s.Media.MaxBytes > MaxMediaBytes {
			v.add(at("media.max_bytes"), fmt.Sprintf("%d is more than one email attaches", s.Media.MaxBytes), fmt.Sprintf("set at most %d, or 0 for the default (5 MiB)", MaxMediaBytes))
		}
		if s.Media.Timeout > MaxMediaTimeout {
			v.add(at("media.timeout"), fmt.Sprintf("%s is longer than a fetch may take", s.Media.Timeout), fmt.Sprintf("set at most %s: the files are fetched while the email is sent, which has 5 minutes in all", MaxMediaTimeout))
		}
	}
}
