package config

import (
	"fmt"
	"log/slog"
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
func (s Secret) Format(f fmt.State, verb rune) {
	switch verb {
	case 'q':
		fmt.Fprintf(f, "%q", s.String())
	default:
		fmt.Fprint(f, s.String())
	}
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
