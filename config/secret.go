package config

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"
)

// Secret holds a credential (a webhook secret, an SMTP password). It prints as
// "<secret>" in every format a log line, an error or `hookmail check` may use,
// so a secret can only leave the process through Reveal.
type Secret string

const masked = "<secret>"

// String masks the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return masked
}

// GoString masks the secret for %#v.
func (s Secret) GoString() string { return fmt.Sprintf("config.Secret(%q)", s.String()) }

// Format masks the secret for every fmt verb, including %s, %v and %q.
func (s Secret) Format(f fmt.State, verb rune) { formatMasked(f, verb, s.String()) }

// formatMasked writes masked, a value's masked form, for any fmt verb:
// quoted for %q, as it is for the others.
func formatMasked(f fmt.State, verb rune, masked string) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", masked)
		return
	}
	fmt.Fprint(f, masked)
}

// LogValue masks the secret in slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalYAML masks the secret when the effective config is printed.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalText masks the secret in JSON and other text encodings.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reveal returns the secret itself, for the one place that must compare or
// send it.
func (s Secret) Reveal() string { return string(s) }

// MaskedURL is a URL that may carry a user and password (a source's
// public_url, as a sender signs it): it prints with the password masked in
// every format a log line, an error or `hookmail check` may use, the rest
// of the URL as written. Reveal gives it whole.
type MaskedURL string

// String masks the URL's password, if it has one.
func (u MaskedURL) String() string {
	s := string(u)
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return s
	}
	if p, err := url.Parse(s); err == nil && p.Host != "" {
		if _, has := p.User.Password(); has {
			return p.Redacted()
		}
		// No password found, but a ":" before the last "@" may be one the
		// parse took for a port (https://AC123:/k3y@host: host "AC123:",
		// path "/k3y@host"): only a user alone, or an "@" in the path
		// with no ":" before it, prints as it is.
		rest := s[strings.Index(s, "//")+2 : at]
		if !strings.Contains(rest, ":") {
			return s
		}
	}
	// Unparsed, or without "//" (AC123:token@host parses as the scheme
	// AC123): everything between the scheme and the last "@" may be a
	// password.
	if i := strings.Index(s, "://"); i >= 0 && i+3 <= at {
		return s[:i+3] + masked + s[at:]
	}
	return masked + s[at:]
}

// GoString masks the password for %#v.
func (u MaskedURL) GoString() string { return fmt.Sprintf("config.MaskedURL(%q)", u.String()) }

// Format masks the password for every fmt verb, including %s, %v and %q.
func (u MaskedURL) Format(f fmt.State, verb rune) { formatMasked(f, verb, u.String()) }

// LogValue masks the password in slog output.
func (u MaskedURL) LogValue() slog.Value { return slog.StringValue(u.String()) }

// MarshalYAML masks the password when the effective config is printed.
func (u MaskedURL) MarshalYAML() (any, error) { return u.String(), nil }

// MarshalText masks the password in JSON and other text encodings.
func (u MaskedURL) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

// Reveal returns the URL as written, password included.
func (u MaskedURL) Reveal() string { return string(u) }
