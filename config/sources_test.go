package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const (
	keyA = "0c8d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d"
	keyB = "a1b2c3d4e5f60718293a4b5c6d7e8f9011223344"
)

func loadYAML(t *testing.T, yaml string, env map[string]string) (*Config, error) {
	t.Helper()
	cfg, err := load([]byte(yaml), envMap(env))
	if err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

func sourceNames(cfg *Config) []string {
	var names []string
	for _, s := range cfg.Webhook.Sources() {
		names = append(names, s.Name+" "+s.Format+" "+s.Path)
	}
	return names
}

const routesYAML = `
smtp: {host: mail.example.com, tls: none, from: hookmail@example.com}
routes: [{name: all, to: [ops@example.com]}]
`

// TestSourcesInForce: the single-gateway keys make the source "gateway";
// webhook.sources adds to it, or replaces it when webhook.secrets is empty;
// each source gets its defaults.
func TestSourcesInForce(t *testing.T) {
	for name, tc := range map[string]struct {
		yaml string
		want []string
	}{
		"single gateway": {"webhook: {secrets: [" + keyA + "]}", []string{"gateway zender /webhook"}},
		"sources only": {`webhook:
  sources:
    - {name: android, path: /hooks/sms, format: smsgate, secrets: [` + keyA + `]}`, []string{"android smsgate /hooks/sms"}},
		"both": {`webhook:
  secrets: [` + keyB + `]
  sources:
    - {name: android, path: /hooks/sms, format: smsgate, secrets: [` + keyA + `]}`, []string{"gateway zender /webhook", "android smsgate /hooks/sms"}},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := loadYAML(t, tc.yaml+routesYAML, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := sourceNames(cfg); !slices.Equal(got, tc.want) {
				t.Errorf("sources %q, want %q", got, tc.want)
			}
		})
	}
	cfg, err := loadYAML(t, `webhook:
  max_body_bytes: 2000
  sources:
    - {name: android, path: /a, format: smsgate, secrets: [`+keyA+`]}
    - {name: bee, path: /b, format: textbee, secrets: [`+keyA+`], replay_window: 1m}
    - {name: tw, path: /t, format: twilio, public_url: "https://h.example/t", secrets: [`+keyA+`],
       media: {fetch: true, hosts: [api.twilio.com, "*.twiliocdn.com"], max_bytes: 7000000, timeout: 1m}}
    - {name: lan, path: /l, format: zender, secrets: [`+keyA+`], media: {fetch: true, hosts: ["10.0.0.5"], allow_private: true}}`+routesYAML, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := cfg.Webhook.Source("android")
	b, _ := cfg.Webhook.Source("bee")
	if a.MaxBodyBytes != DefaultSMSGateBodyBytes || b.MaxBodyBytes != 2000 || a.ReplayWindow != DefaultReplayWindow || b.ReplayWindow.Minutes() != 1 {
		t.Errorf("defaults: android %d %s, bee %d %s", a.MaxBodyBytes, a.ReplayWindow, b.MaxBodyBytes, b.ReplayWindow)
	}
	if a.Media.MaxBytes != DefaultMediaMaxBytes || a.Media.Timeout != DefaultMediaTimeout {
		t.Errorf("media defaults: %+v", a.Media)
	}
	if tw, _ := cfg.Webhook.Source("tw"); !tw.Media.Fetch || len(tw.Media.Hosts) != 2 || tw.Media.MaxBytes != MaxMediaBytes || tw.Media.Timeout.Minutes() != 1 {
		t.Errorf("tw's media: %+v", tw.Media)
	}
}

// TestSourceSecretsFromEnvAndFile: a source's secrets come from
// HOOKMAIL_SOURCE_<NAME>_SECRETS (replacing the file's list) or from
// secrets_file, read anew at each call so a rotated file applies at the
// next reload.
func TestSourceSecretsFromEnvAndFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(file, []byte("# the old key until Friday\n"+keyA+"\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := `webhook:
  sources:
    - {name: office-phone, path: /a, format: smsgate, secrets_file: ` + file + `}
    - {name: bee, path: /b, format: textbee, secrets: [placeholder-overridden]}` + routesYAML
	cfg, err := loadYAML(t, yaml, map[string]string{"HOOKMAIL_SOURCE_BEE_SECRETS": keyA + ", " + keyB})
	if err != nil {
		t.Fatal(err)
	}
	bee, _ := cfg.Webhook.Source("bee")
	if got := reveal(bee.Secrets); !slices.Equal(got, []string{keyA, keyB}) {
		t.Errorf("bee's secrets from the environment: %q", got)
	}
	office, _ := cfg.Webhook.Source("office-phone")
	got, err := office.AllSecrets()
	if err != nil || !slices.Equal(reveal(got), []string{keyA}) {
		t.Errorf("from the file: %q %v", reveal(got), err)
	}
	if err := os.WriteFile(file, []byte(keyA+"\n"+keyB+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := office.AllSecrets(); !slices.Equal(reveal(got), []string{keyA, keyB}) {
		t.Errorf("after rotating the file: %q", reveal(got))
	}
	if SourceEnvName("office-phone") != "HOOKMAIL_SOURCE_OFFICE_PHONE_SECRETS" {
		t.Errorf("env name %s", SourceEnvName("office-phone"))
	}
}

// TestSourceProblems: each mistake names its key and the fix, and no
// secret.
func TestSourceProblems(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, key, want string }{
		"unknown format": {`{name: a, path: /a, format: zapier, secrets: [` + keyA + `]}`, "webhook.sources[0].format", "zender, smsgate, twilio, textbee, httpsms"},
		"no secret":      {`{name: a, path: /a, format: smsgate}`, "webhook.sources[0].secrets", "HOOKMAIL_SOURCE_A_SECRETS"},
		"placeholder":    {`{name: a, path: /a, format: smsgate, secrets: ["9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c0b2d4f6e"]}`, "webhook.sources[0].secrets[0]", "own key"},
		"bad name":       {`{name: "Office Phone", path: /a, format: smsgate, secrets: [` + keyA + `]}`, "webhook.sources[0].name", "lower-case"},
		"bad path":       {`{name: a, path: /metrics, format: smsgate, secrets: [` + keyA + `]}`, "webhook.sources[0].path", "hookmail's own endpoint"},
		"no public_url":  {`{name: a, path: /a, format: twilio, secrets: [` + keyA + `]}`, "webhook.sources[0].public_url", "https://hooks.example.com/a"},
		"fetch no hosts": {`{name: a, path: /a, format: twilio, public_url: "https://x.example/a", secrets: [` + keyA + `], media: {fetch: true}}`, "webhook.sources[0].media.hosts", "api.twilio.com"},
		"private host":   {`{name: a, path: /a, format: zender, secrets: [` + keyA + `], media: {fetch: true, hosts: ["127.0.0.1"]}}`, "webhook.sources[0].media.hosts[0]", "media.allow_private: true"},
		"wildcard ip":    {`{name: a, path: /a, format: zender, secrets: [` + keyA + `], media: {fetch: true, hosts: ["*.10.0.0.1"]}}`, "webhook.sources[0].media.hosts[0]", "not a host name"},
		"media too big":  {`{name: a, path: /a, format: zender, secrets: [` + keyA + `], media: {max_bytes: 9000000}}`, "webhook.sources[0].media.max_bytes", "at most 7000000"},
		"media too slow": {`{name: a, path: /a, format: zender, secrets: [` + keyA + `], media: {timeout: 2m}}`, "webhook.sources[0].media.timeout", "at most 1m0s"},
		"too large":      {`{name: a, path: /a, format: smsgate, secrets: [` + keyA + `], max_body_bytes: 99999999}`, "webhook.sources[0].max_body_bytes", "16 MiB"},
		"same path":      {`{name: a, path: /webhook, format: smsgate, secrets: [` + keyA + `]}`, "webhook.sources[0].path", `source "gateway"`},
		"same variable":  {"{name: a-b, path: /a, format: smsgate, secrets: [" + keyA + "]}\n    - {name: a_b, path: /b, format: smsgate, secrets: [" + keyA + "]}", "webhook.sources[1].name", "HOOKMAIL_SOURCE_A_B_SECRETS"},
		"same name":      {`{name: gateway, path: /a, format: smsgate, secrets: [` + keyA + `]}`, "webhook.sources[0].name", "move webhook.secrets"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadYAML(t, "webhook:\n  secrets: ["+keyB+"]\n  sources:\n    - "+tc.yaml+routesYAML, nil)
			var found bool
			for _, p := range problems(t, err) {
				if strings.HasPrefix(p.Error(), tc.key+":") && strings.Contains(p.Error(), tc.want) {
					found = true
				}
				if strings.Contains(p.Error(), keyA) || strings.Contains(p.Error(), keyB) {
					t.Errorf("a problem shows a secret: %v", p)
				}
			}
			if !found {
				t.Errorf("no problem at %s saying %q: %v", tc.key, tc.want, err)
			}
		})
	}
}

// TestRouteMatchesKnownSources: a route matching a source or format that
// does not exist would match nothing: refused, naming the choices.
func TestRouteMatchesKnownSources(t *testing.T) {
	_, err := loadYAML(t, `webhook:
  secrets: [`+keyA+`]
smtp: {host: mail.example.com, tls: none, from: hookmail@example.com}
routes:
  - {name: android, match: {source: androi}, to: [a@example.com]}
  - {name: fmt, match: {format: zapier}, to: [a@example.com]}
  - {name: ok, match: {source: gateway, format: zender, from: "+63 976", text: "(?i)otp"}, to: [a@example.com]}
`, nil)
	var got []string
	for _, p := range problems(t, err) {
		got = append(got, p.Error())
	}
	if len(got) != 2 || !strings.HasPrefix(got[0], "routes[0].match.source:") || !strings.Contains(got[0], "use one of gateway") ||
		!strings.HasPrefix(got[1], "routes[1].match.format:") {
		t.Errorf("problems %q", got)
	}
}

// TestOnlySMSGateTakesLargeBodies: a body that is all text is held to
// webhook.max_body_bytes' cap, past which its email could not be sent;
// smsgate's files come apart from its text.
func TestOnlySMSGateTakesLargeBodies(t *testing.T) {
	_, err := loadYAML(t, `webhook:
  sources:
    - {name: a, path: /a, format: smsgate, secrets: [`+keyA+`], max_body_bytes: 16777216}
    - {name: b, path: /b, format: textbee, secrets: [`+keyA+`], max_body_bytes: 4194304}`+routesYAML, nil)
	ps := problems(t, err)
	if len(ps) != 1 || !strings.HasPrefix(ps[0].Error(), "webhook.sources[1].max_body_bytes: 4194304 is over 2097152") {
		t.Errorf("problems %v", ps)
	}
}
