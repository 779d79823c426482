package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/viper"
)

const examplePath = "hookmail.example.yaml"

// noEnv is a getenv with nothing set.
func noEnv(string) string { return "" }

// envMap is a getenv that answers from m.
func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// problems splits a joined error into its parts.
func problems(t *testing.T, err error) []error {
	t.Helper()
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func mustLoad(t *testing.T, path string, getenv func(string) string) *Config {
	t.Helper()
	cfg, err := Load(path, getenv)
	if err != nil {
		t.Fatalf("Load(%q): %v", path, err)
	}
	return cfg
}

// --- 1. the example config ---------------------------------------------------

// TestExampleLoadsAndValidates: the example is valid but for its
// placeholder secret, which must be replaced.
func TestExampleLoadsAndValidates(t *testing.T) {
	cfg := mustLoad(t, examplePath, noEnv)
	const refused = "webhook.secrets[0]: " + placeholder + "; set your gateway's own secret (its webhook settings show it)"
	if err := cfg.Validate(); err == nil || err.Error() != refused {
		t.Fatalf("example validates to\n%v\nwant\n%s", err, refused)
	}
	if w := cfg.Warnings(); len(w) != 0 {
		t.Errorf("example has warnings: %q", w)
	}

	if cfg.SMTP.Host != "" {
		t.Errorf("smtp.host = %q, want empty (emails go to outbox.dir)", cfg.SMTP.Host)
	}
	if len(cfg.Webhook.Secrets) != 1 || !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(cfg.Webhook.Secrets[0].Reveal()) {
		t.Errorf("webhook.secrets should hold one 40-hex-character placeholder, got %d secrets", len(cfg.Webhook.Secrets))
	}

	want := []Route{
		{
			Name:  "drop-otp",
			Match: map[string]string{"type": "sms", "message": `(?i)\bOTP\b|verification code`},
			Drop:  true,
		},
		{
			Name:    "sms",
			Match:   map[string]string{"type": "sms"},
			To:      []string{"Support <support@example.com>"},
			Cc:      []string{"team-lead@example.com"},
			Bcc:     []string{"archive@example.com"},
			ReplyTo: "support@example.com",
		},
		{Name: "everything-else", To: []string{"ops@example.com"}, Storm: &Storm{Threshold: 10, Window: time.Minute}},
	}
	if !reflect.DeepEqual(cfg.Routes, want) {
		t.Errorf("routes =\n%#v\nwant\n%#v", cfg.Routes, want)
	}

	// Apart from the secret and the routes, the example shows the defaults.
	def := defaults(t)
	cfg.Webhook.Secrets, def.Webhook.Secrets = nil, nil
	cfg.Routes, def.Routes = nil, nil
	if !reflect.DeepEqual(cfg, def) {
		t.Errorf("example values differ from the defaults:\n%s\nwant\n%s", cfg.YAML(), def.YAML())
	}
}

// TestExampleDocumentsEveryKey keeps the example in step with defaults.yaml:
// the same keys, and every key's env name and default written in a comment.
func TestExampleDocumentsEveryKey(t *testing.T) {
	keys := func(b []byte) []string {
		v := viper.New()
		v.SetConfigType("yaml")
		if err := v.ReadConfig(bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		k := v.AllKeys()
		slices.Sort(k)
		return k
	}
	example, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	defKeys, exKeys := keys(defaultsYAML), keys(example)
	if !slices.Equal(defKeys, exKeys) {
		t.Errorf("example keys differ from defaults.yaml:\n got %q\nwant %q", exKeys, defKeys)
	}

	var comments strings.Builder
	for _, line := range strings.Split(string(example), "\n") {
		if _, c, ok := strings.Cut(line, "#"); ok {
			comments.WriteString(c + "\n")
		}
	}
	for _, k := range defKeys {
		if k == "routes" || k == "webhook.sources" {
			continue // no env form
		}
		if !strings.Contains(comments.String(), "Env: "+EnvName(k)) {
			t.Errorf("example does not document %s's env override %s", k, EnvName(k))
		}
	}
	if !strings.Contains(comments.String(), "HOOKMAIL_WEBHOOK_SECRETS=a,b") {
		t.Error("example does not show the comma-separated list form HOOKMAIL_WEBHOOK_SECRETS=a,b")
	}
	if n := strings.Count(comments.String(), "Default"); n < len(defKeys)-1 {
		t.Errorf("example states %d defaults for %d keys", n, len(defKeys))
	}
}

// TestExampleHasNoStaleStatements: statements the example once made that
// the code has outgrown.
func TestExampleHasNoStaleStatements(t *testing.T) {
	example, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	for _, stale := range []string{
		"no SMTP delivery yet",                   // serve delivers by SMTP when smtp.host is set
		"must be signed with",                    // the gateway sends the secret itself
		"events and dead letters stored",         // digests count in spool.max_bytes too
		"How long one delivery attempt may take", // smtp.timeout bounds the dial and each message
	} {
		if strings.Contains(string(example), stale) {
			t.Errorf("the example still says %q", stale)
		}
	}
}

// --- 2. bad files --------------------------------------------------------------

const (
	fixUnknown  = "remove it or correct its spelling (config/hookmail.example.yaml lists every key)"
	fixInt      = "write it in digits, like 10"
	fixAddress  = `write it as "name@example.com" or "Name <name@example.com>"`
	fixDur      = `write it like "30s", "5m" or "1h"`
	fixPath     = `write it like "/webhook" or "/hooks/sms-gateway"`
	placeholder = "is a placeholder from hookmail's example config, deploy files or README, not a secret"
	noSecret    = "webhook.secrets: no secret is set, so no gateway could be let in; set the secret your gateway sends (its webhook settings show it), e.g. HOOKMAIL_WEBHOOK_SECRETS=..."
)

func TestBadFiles(t *testing.T) {
	tests := []struct {
		file string
		// want is LoadValid's exact error, one problem a line: those of
		// decoding first (the first line names the file), then Validate's.
		want []string
	}{
		{file: "unknown_top_key.yaml", want: []string{"testdata/unknown_top_key.yaml: smpt: unknown key; " + fixUnknown}},
		{file: "unknown_nested_key.yaml", want: []string{"testdata/unknown_nested_key.yaml: smtp.hots: unknown key; " + fixUnknown}},
		// The route's recipients were under the misspelt key, so it has none.
		{file: "unknown_route_key.yaml", want: []string{
			"testdata/unknown_route_key.yaml: routes[0].too: unknown key; " + fixUnknown,
			`routes[0]: route "everything-else" has no recipient; add an address to its to, cc or bcc, or set drop: true to never email its events`,
		}},
		// smtp.workers did not decode, so Validate does not also call it 0.
		{file: "wrong_type.yaml", want: []string{"testdata/wrong_type.yaml: smtp.workers: \"many\" is not a valid whole number; " + fixInt}},
		{file: "invalid_yaml.yaml", want: []string{"testdata/invalid_yaml.yaml: not valid YAML: While parsing config: yaml: line 2: did not find expected key"}},
		{file: "bad_tls.yaml", want: []string{
			`smtp.tls: "ssl" is not a TLS mode; use starttls (port 587), tls (implicit TLS, port 465) or none`,
		}},
		{file: "clear_credentials_off_loopback.yaml", want: []string{
			`smtp.tls: none would send smtp.username's credentials in clear to "mail.example.com", which is not a loopback address; use starttls (port 587) or tls (port 465), or relay through a server on 127.0.0.1, ::1 or localhost`,
		}},
		{file: "password_and_file.yaml", want: []string{
			"smtp.password: is set together with smtp.password_file; set only one of them",
		}},
		{file: "queue_backend_unknown.yaml", want: []string{
			`queue.backend: "mysql" is not a queue backend; use spool (one hookmail, the queue in a file in spool.dir) or postgres (several hookmails sharing a database)`,
		}},
		{file: "postgres_without_url.yaml", want: []string{
			"queue.postgres.url: is empty, and queue.backend is postgres; set the database's URL, e.g. HOOKMAIL_QUEUE_POSTGRES_URL=postgres://hookmail:PASSWORD@db.example.com/hookmail, or queue.postgres.url_file",
		}},
		{file: "postgres_url_and_file.yaml", want: []string{
			"queue.postgres.url: is set together with queue.postgres.url_file; set only one of them",
		}},
		// The value is not quoted: it holds the password.
		{file: "postgres_url_not_url.yaml", want: []string{
			"queue.postgres.url: is neither a postgres:// URL nor a key=value connection string; write it like postgres://hookmail:PASSWORD@db.example.com:5432/hookmail",
		}},
		{file: "bad_queue_durations.yaml", want: []string{
			"queue.lease_timeout: must be a positive duration, got 0s; " + fixDur,
			"queue.postgres.poll: must be a positive duration, got -1s; " + fixDur,
		}},
		{file: "bad_address.yaml", want: []string{
			`routes[0].to[0]: "ops at example dot com" is not an email address (mail: no angle-addr); ` + fixAddress,
		}},
		{file: "duplicate_route_names.yaml", want: []string{
			`routes[1].name: "sms" is also the name of routes[0]; give every route a unique name`,
		}},
		{file: "route_without_recipients.yaml", want: []string{
			`routes[0]: route "sms" has no recipient; add an address to its to, cc or bcc, or set drop: true to never email its events`,
		}},
		{file: "bad_durations.yaml", want: []string{
			"smtp.timeout: must be a positive duration, got 0s; " + fixDur,
			"retry.initial: must be a positive duration, got -5s; " + fixDur,
			`shutdown.drain: must not be negative, got -5s; write it like "5s", or "0" to stop taking webhooks at once on SIGTERM`,
		}},
		{file: "bad_storm.yaml", want: []string{
			`routes[0].storm.threshold: route "otp": 0 is out of range; use a number from 1 to 1000: how many events of one conversation are emailed one by one in a window`,
			`routes[0].storm.window: route "otp": 500ms is not a window from 1s to 24h; write it like "1m" or "10m"`,
			`routes[1].storm: route "facebook" has a digest, which already sends one email per window; remove storm or the digest`,
			`routes[2].storm.threshold: route "everything-else": 1001 is out of range; use a number from 1 to 1000: how many events of one conversation are emailed one by one in a window`,
			`routes[2].storm.window: route "everything-else": 25h0m0s is not a window from 1s to 24h; write it like "1m" or "10m"`,
		}},
		{file: "retry_initial_over_max.yaml", want: []string{
			"retry.initial: 2h0m0s is longer than retry.max (1h0m0s); make retry.initial shorter than retry.max",
		}},
		{file: "bad_timezone.yaml", want: []string{
			`timezone: "Mars/Olympus_Mons" is not a known time zone; use an IANA name like "UTC", "Europe/Berlin" or "Asia/Manila"`,
		}},
		{file: "no_secrets.yaml", want: []string{noSecret}},
		{file: "webhook_path_under_metrics.yaml", want: []string{
			`webhook.path: "/metrics/" is taken by hookmail's own endpoint /metrics; choose another path, e.g. "/webhook"`,
		}},
		{file: "webhook_path_with_space.yaml", want: []string{
			`webhook.path: "/web hook" holds a character other than letters, digits, "-", ".", "_", "~" and "/"; ` + fixPath,
		}},
		{file: "webhook_path_pattern.yaml", want: []string{
			`webhook.path: "/a/{$}" holds a character other than letters, digits, "-", ".", "_", "~" and "/"; ` + fixPath,
		}},
		{file: "rate_limit_nan.yaml", want: []string{
			"webhook.rate_limit: NaN is not a number of requests; set requests per second per client IP, e.g. 10, or 0 for no limit",
		}},
		{file: "rate_limit_inf.yaml", want: []string{
			"webhook.rate_limit: +Inf is not a number of requests; set requests per second per client IP, e.g. 10, or 0 for no limit",
		}},
		{file: "bad_regex.yaml", want: []string{
			"routes[0].match.message: route \"drop-otp\": \"(?i)\\\\bOTP(\" is not a regular expression (error parsing regexp: missing closing ): `(?i)\\bOTP(`); write it in Go (RE2) syntax, e.g. \"(?i)\\\\bOTP\\\\b\"; escape a literal . + ( with \\\\",
			"routes[1].match.sim: route \"sim2\": \"/^[2-/\" is not a regular expression (error parsing regexp: missing closing ]: `[2-`); write it in Go (RE2) syntax, e.g. \"(?i)\\\\bOTP\\\\b\"; escape a literal . + ( with \\\\",
			"routes[2].subject: route \"everything-else\": the subject template does not parse (template: subject:1: unclosed action); write it like \"SMS from {{.Get \\\"phone\\\"}}\"",
		}},
		// Several problems in one file, of decoding and of validation: every
		// one at once, and none twice.
		{file: "many_problems.yaml", want: []string{
			`testdata/many_problems.yaml: retry.lifetime: "3d" is not a valid duration; ` + fixDur,
			"smtp.hots: unknown key; " + fixUnknown,
			`smtp.timeout: "2x" is not a valid duration; ` + fixDur,
			`timezone: "Nowhere/Special" is not a known time zone; use an IANA name like "UTC", "Europe/Berlin" or "Asia/Manila"`,
			`log.level: "loud" is not a level; use one of debug, info, warn, error`,
			`webhook.path: "webhook" does not start with /; write it like "/webhook"`,
			noSecret,
			`smtp.tls: "ssl" is not a TLS mode; use starttls (port 587), tls (implicit TLS, port 465) or none`,
			"smtp.workers: 0 is out of range; use a number from 1 to 256",
			"retry.initial: 2h0m0s is longer than retry.max (1h0m0s); make retry.initial shorter than retry.max",
			`routes[0].to[0]: "not an address" is not an email address (mail: no angle-addr); ` + fixAddress,
			`routes[1].name: "dup" is also the name of routes[0]; give every route a unique name`,
			"routes[1].match.sender: route \"dup\": \"/(BANK/\" is not a regular expression (error parsing regexp: missing closing ): `(BANK`); write it in Go (RE2) syntax, e.g. \"(?i)\\\\bOTP\\\\b\"; escape a literal . + ( with \\\\",
			`routes[1]: route "dup" has no recipient; add an address to its to, cc or bcc, or set drop: true to never email its events`,
		}},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.file, ".yaml"), func(t *testing.T) {
			cfg, err := LoadValid("testdata/"+tt.file, noEnv)
			if err == nil {
				t.Fatalf("LoadValid succeeded, want\n%s", strings.Join(tt.want, "\n"))
			}
			if cfg != nil {
				t.Errorf("LoadValid returned a config along with its error")
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Fatalf("LoadValid error\n got:\n%s\nwant:\n%s", got, want)
			}
			// Each line is its own *Problem naming a key and a fix (but a
			// file that is not YAML at all).
			if tt.file != "invalid_yaml.yaml" {
				ps := Problems(err)
				if len(ps) != len(tt.want) {
					t.Fatalf("LoadValid joined %d problems, want %d", len(ps), len(tt.want))
				}
				for _, p := range ps {
					if p.Key == "" || p.Fix == "" {
						t.Errorf("problem %q has no key or no fix", p)
					}
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error quotes the SMTP password: %s", err)
			}
		})
	}
}

// TestDecodeProblems: a value that does not decode is reported with its
// key, the value quoted (a secret's never) and how to write it.
func TestDecodeProblems(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       string
	}{
		{"duration", "smtp:\n  timeout: 2x\n", `smtp.timeout: "2x" is not a valid duration; ` + fixDur},
		{"day duration", "routes:\n  - name: r\n    to: [a@example.com]\n    digest: { every: 1d }\n", `routes[0].digest.every: "1d" is not a valid duration; ` + fixDur},
		{"whole number", "webhook:\n  max_body_bytes: 1MB\n", `webhook.max_body_bytes: "1MB" is not a valid whole number; ` + fixInt},
		{"number", "webhook:\n  rate_limit: fast\n", `webhook.rate_limit: "fast" is not a valid number; write it like 10 or 0.5`},
		{"boolean", "webhook:\n  unescape_html: maybe\n", `webhook.unescape_html: "maybe" is not a valid boolean; write true or false`},
		{"list for a single value", "listen: [\":8080\", \":8081\"]\n", `listen: a list is not a single value; write one value, in quotes, like ":8080"`},
		// mapstructure takes a lone value for a list of one.
		{"map for a list", "routes:\n  - name: r\n    to: { a: b }\n", `routes[0].to[0]: a map is not a single value; write one value, in quotes, like "…"`},
		{"list for a map", "routes:\n  - name: r\n    to: [a@example.com]\n    match: [sms]\n", `routes[0].match[0]: "sms" is not a map of keys; write it as config/hookmail.example.yaml shows`},
		{"scalar for a route", "routes:\n  - 5\n", `routes[0]: "5" is not a map of keys; write it as config/hookmail.example.yaml shows`},
		{"secret never quoted", "webhook:\n  secrets: [[hunter2]]\n", `webhook.secrets[0]: a list is not a single value; write one value, in quotes, like "…"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "hookmail.yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path, noEnv)
			if want := path + ": " + tt.want; err == nil || err.Error() != want {
				t.Errorf("Load error\n got: %v\nwant: %s", err, want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/does-not-exist.yaml", noEnv)
	want := "config file: open testdata/does-not-exist.yaml: no such file or directory"
	if err == nil || err.Error() != want {
		t.Fatalf("Load error\n got: %v\nwant: %s", err, want)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error does not wrap os.ErrNotExist: %v", err)
	}
}

// TestLoadListsEveryProblemAtOnce: a file with several unknown keys and a
// value of the wrong type should get every one reported in a single run.
func TestLoadListsEveryProblemAtOnce(t *testing.T) {
	want := strings.Join([]string{
		"testdata/many_unknown_keys.yaml: routes[0].too: unknown key; " + fixUnknown,
		"smpt: unknown key; " + fixUnknown,
		"smtp.hots: unknown key; " + fixUnknown,
		"smtp.workers: \"many\" is not a valid whole number; " + fixInt,
	}, "\n")
	_, err := Load("testdata/many_unknown_keys.yaml", noEnv)
	if err == nil {
		t.Fatal("Load succeeded, want four problems")
	}
	if err.Error() != want {
		t.Fatalf("Load error\n got:\n%s\nwant:\n%s", err, want)
	}
}

// --- 3. environment overrides -------------------------------------------------

func TestEnvName(t *testing.T) {
	for key, want := range map[string]string{
		"listen":                 "HOOKMAIL_LISTEN",
		"smtp.password":          "HOOKMAIL_SMTP_PASSWORD",
		"webhook.secrets":        "HOOKMAIL_WEBHOOK_SECRETS",
		"webhook.max_body_bytes": "HOOKMAIL_WEBHOOK_MAX_BODY_BYTES",
		"retry.max":              "HOOKMAIL_RETRY_MAX",
	} {
		if got := EnvName(key); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestEnvOverrides(t *testing.T) {
	t.Run("smtp password", func(t *testing.T) {
		cfg := mustLoad(t, "", envMap(map[string]string{"HOOKMAIL_SMTP_PASSWORD": "pw-from-env"}))
		if got := cfg.SMTP.Password.Reveal(); got != "pw-from-env" {
			t.Errorf("smtp.password = %q, want pw-from-env", got)
		}
	})
	t.Run("two webhook secrets", func(t *testing.T) {
		cfg := mustLoad(t, "", envMap(map[string]string{"HOOKMAIL_WEBHOOK_SECRETS": "a,b"}))
		if got, want := cfg.Webhook.Secrets, []Secret{"a", "b"}; !slices.Equal(got, want) {
			t.Errorf("webhook.secrets has %d secrets, want [a b] (revealed: %q)", len(got), reveal(got))
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("Validate: %v", err)
		}
	})
	t.Run("one webhook secret", func(t *testing.T) {
		cfg := mustLoad(t, "", envMap(map[string]string{"HOOKMAIL_WEBHOOK_SECRETS": "only-one"}))
		if got := reveal(cfg.Webhook.Secrets); !slices.Equal(got, []string{"only-one"}) {
			t.Errorf("webhook.secrets = %q, want [only-one]", got)
		}
	})
	t.Run("workers and retry.max", func(t *testing.T) {
		cfg := mustLoad(t, "", envMap(map[string]string{
			"HOOKMAIL_SMTP_WORKERS": "8",
			"HOOKMAIL_RETRY_MAX":    "2h",
		}))
		if cfg.SMTP.Workers != 8 {
			t.Errorf("smtp.workers = %d, want 8", cfg.SMTP.Workers)
		}
		if cfg.Retry.Max != 2*time.Hour {
			t.Errorf("retry.max = %s, want 2h", cfg.Retry.Max)
		}
	})
	t.Run("shutdown.drain, and 0 turns it off", func(t *testing.T) {
		for env, want := range map[string]time.Duration{"": 5 * time.Second, "30s": 30 * time.Second, "0": 0} {
			cfg := mustLoad(t, "", envMap(map[string]string{"HOOKMAIL_SHUTDOWN_DRAIN": env}))
			if cfg.Shutdown.Drain != want {
				t.Errorf("HOOKMAIL_SHUTDOWN_DRAIN=%q: shutdown.drain = %s, want %s", env, cfg.Shutdown.Drain, want)
			}
		}
	})
	t.Run("bool and int64", func(t *testing.T) {
		cfg := mustLoad(t, "", envMap(map[string]string{
			"HOOKMAIL_WEBHOOK_UNESCAPE_HTML":  "false",
			"HOOKMAIL_WEBHOOK_MAX_BODY_BYTES": "2048",
		}))
		if cfg.Webhook.UnescapeHTML || cfg.Webhook.MaxBodyBytes != 2048 {
			t.Errorf("unescape_html=%v max_body_bytes=%d, want false 2048", cfg.Webhook.UnescapeHTML, cfg.Webhook.MaxBodyBytes)
		}
	})
	t.Run("postgres queue", func(t *testing.T) {
		cfg := mustLoad(t, "", envMap(map[string]string{
			"HOOKMAIL_WEBHOOK_SECRETS":       "0123456789abcdef0123456789abcdef01234567",
			"HOOKMAIL_QUEUE_BACKEND":         "postgres",
			"HOOKMAIL_QUEUE_POSTGRES_URL":    "postgres://hookmail:pw-from-env@db/hookmail",
			"HOOKMAIL_QUEUE_POSTGRES_LISTEN": "false",
			"HOOKMAIL_QUEUE_POSTGRES_POLL":   "250ms",
			"HOOKMAIL_QUEUE_LEASE_TIMEOUT":   "1m",
		}))
		q := cfg.Queue
		if q.Backend != BackendPostgres || q.Postgres.Listen || q.Postgres.Poll != 250*time.Millisecond || q.LeaseTimeout != time.Minute {
			t.Errorf("queue = %+v", q)
		}
		if url, err := q.Postgres.ConnString(); url != "postgres://hookmail:pw-from-env@db/hookmail" || err != nil {
			t.Errorf("ConnString() = %q, %v", url, err)
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("Validate: %v", err)
		}
		if strings.Contains(cfg.YAML(), "pw-from-env") {
			t.Errorf("YAML() shows the database password")
		}
	})
	t.Run("postgres url file", func(t *testing.T) {
		cfg := mustLoad(t, "", envMap(map[string]string{"HOOKMAIL_QUEUE_POSTGRES_URL_FILE": "testdata/postgres_url.txt"}))
		if url, err := cfg.Queue.Postgres.ConnString(); url != "postgres://hookmail:hunter2-from-the-file@db.example.com/hookmail" || err != nil {
			t.Errorf("ConnString() = %q, %v, want the file's content without its newline", url, err)
		}
		cfg.Queue.Postgres.URLFile = "testdata"
		if _, err := cfg.Queue.Postgres.ConnString(); err == nil || !strings.HasPrefix(err.Error(), "queue.postgres.url_file: ") {
			t.Errorf("ConnString() of a directory: %v", err)
		}
	})
	t.Run("env beats file, file beats defaults", func(t *testing.T) {
		cfg := mustLoad(t, "testdata/file_overrides.yaml", envMap(map[string]string{
			"HOOKMAIL_SMTP_PASSWORD":   "pw-from-env",
			"HOOKMAIL_SMTP_WORKERS":    "8",
			"HOOKMAIL_WEBHOOK_SECRETS": "env-secret-0123456789",
		}))
		if got := cfg.SMTP.Password.Reveal(); got != "pw-from-env" {
			t.Errorf("smtp.password = %q, want the env's", got)
		}
		if cfg.SMTP.Workers != 8 {
			t.Errorf("smtp.workers = %d, want the env's 8", cfg.SMTP.Workers)
		}
		if got := reveal(cfg.Webhook.Secrets); !slices.Equal(got, []string{"env-secret-0123456789"}) {
			t.Errorf("webhook.secrets = %q, want the env's", got)
		}
		if cfg.Retry.Max != 3*time.Hour {
			t.Errorf("retry.max = %s, want the file's 3h (no env set)", cfg.Retry.Max)
		}
		if cfg.Retry.Initial != 30*time.Second {
			t.Errorf("retry.initial = %s, want the default 30s", cfg.Retry.Initial)
		}
	})
	t.Run("file beats defaults", func(t *testing.T) {
		cfg := mustLoad(t, "testdata/file_overrides.yaml", noEnv)
		if got := cfg.SMTP.Password.Reveal(); got != "from-the-file" {
			t.Errorf("smtp.password = %q, want the file's", got)
		}
		if cfg.SMTP.Workers != 2 || cfg.Retry.Max != 3*time.Hour {
			t.Errorf("workers=%d retry.max=%s, want the file's 2 and 3h", cfg.SMTP.Workers, cfg.Retry.Max)
		}
		if cfg.SMTP.Port != 587 || cfg.SMTP.TLS != TLSStartTLS || cfg.SMTP.Timeout != 30*time.Second {
			t.Errorf("smtp keys the file does not set lost their defaults: %+v", cfg.SMTP)
		}
	})
	t.Run("file sets only webhook.path", func(t *testing.T) {
		cfg := mustLoad(t, "testdata/only_webhook_path.yaml", noEnv)
		want := defaults(t)
		want.Webhook.Path = "/hooks/sms-gateway"
		if !reflect.DeepEqual(cfg, want) {
			t.Errorf("got\n%s\nwant\n%s", cfg.YAML(), want.YAML())
		}
		if cfg.Webhook.MaxBodyBytes != 1048576 || !cfg.Webhook.UnescapeHTML {
			t.Errorf("webhook defaults lost: max_body_bytes=%d unescape_html=%v", cfg.Webhook.MaxBodyBytes, cfg.Webhook.UnescapeHTML)
		}
	})
	t.Run("empty variable is ignored", func(t *testing.T) {
		cfg := mustLoad(t, "testdata/file_overrides.yaml", envMap(map[string]string{"HOOKMAIL_SMTP_PASSWORD": ""}))
		if got := cfg.SMTP.Password.Reveal(); got != "from-the-file" {
			t.Errorf("smtp.password = %q, want the file's", got)
		}
	})
	t.Run("routes has no env form", func(t *testing.T) {
		cfg := mustLoad(t, "", envMap(map[string]string{"HOOKMAIL_ROUTES": "x"}))
		if !reflect.DeepEqual(cfg.Routes, defaults(t).Routes) {
			t.Errorf("routes = %+v, want the defaults", cfg.Routes)
		}
	})
	t.Run("only HOOKMAIL_ names are read", func(t *testing.T) {
		var asked []string
		mustLoad(t, "", func(k string) string { asked = append(asked, k); return "" })
		if !slices.Contains(asked, "HOOKMAIL_SMTP_PASSWORD") || !slices.Contains(asked, "HOOKMAIL_WEBHOOK_SECRETS") {
			t.Errorf("getenv was not asked for the known keys: %q", asked)
		}
		for _, k := range asked {
			if !strings.HasPrefix(k, EnvPrefix) || k == "HOOKMAIL_ROUTES" {
				t.Errorf("getenv asked for %q", k)
			}
		}
	})
	t.Run("nil getenv reads no environment", func(t *testing.T) {
		cfg := mustLoad(t, "", nil)
		if !reflect.DeepEqual(cfg, defaults(t)) {
			t.Errorf("Load(\"\", nil) differs from defaults(t)")
		}
	})
	t.Run("bad value", func(t *testing.T) {
		_, err := Load("", envMap(map[string]string{"HOOKMAIL_SMTP_WORKERS": "lots"}))
		want := "smtp.workers: \"lots\" is not a valid whole number; " + fixInt
		if err == nil || err.Error() != want {
			t.Errorf("Load error\n got: %v\nwant: %s", err, want)
		}
	})
}

func reveal(ss []Secret) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Reveal()
	}
	return out
}

// --- 4. secret masking ------------------------------------------------------

func TestSecretMasking(t *testing.T) {
	const value = "s3cr3t-VALUE-never-printed"
	s := Secret(value)

	if got := s.Reveal(); got != value {
		t.Errorf("Reveal() = %q, want %q", got, value)
	}
	if got := s.String(); got != "<secret>" {
		t.Errorf("String() = %q, want <secret>", got)
	}
	if got := Secret("").String(); got != "" {
		t.Errorf("empty secret String() = %q, want empty", got)
	}

	cfg := defaults(t)
	cfg.SMTP.Password = s
	cfg.Webhook.Secrets = []Secret{s, s + "-2"}
	cfg.Queue.Postgres.URL = s

	outputs := map[string]string{
		"String":      s.String(),
		"%v":          fmt.Sprintf("%v", s),
		"%+v":         fmt.Sprintf("%+v", s),
		"%s":          fmt.Sprintf("%s", s),
		"%q":          fmt.Sprintf("%q", s),
		"%#v":         fmt.Sprintf("%#v", s),
		"%x":          fmt.Sprintf("%x", s),
		"%10s":        fmt.Sprintf("%10s", s),
		"Sprint":      fmt.Sprint(s),
		"Sprintln":    fmt.Sprintln(s),
		"pointer %v":  fmt.Sprintf("%v", &s),
		"slice %v":    fmt.Sprintf("%v", cfg.Webhook.Secrets),
		"config %v":   fmt.Sprintf("%v", cfg),
		"config %+v":  fmt.Sprintf("%+v", cfg),
		"config %#v":  fmt.Sprintf("%#v", cfg),
		"smtp %+v":    fmt.Sprintf("%+v", cfg.SMTP),
		"Errorf":      fmt.Errorf("login failed with %v", s).Error(),
		"Config.YAML": cfg.YAML(),
	}

	for name, h := range map[string]func(*bytes.Buffer) slog.Handler{
		"slog text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		"slog json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var b bytes.Buffer
		log := slog.New(h(&b))
		log.Info("secret", "secret", s, "secrets", cfg.Webhook.Secrets, "smtp", cfg.SMTP, "webhook", cfg.Webhook)
		log.Info("attr", slog.Any("secret", s), slog.String("str", s.String()))
		log.With("secret", s).WithGroup("g").Info("group", "secret", s)
		outputs[name] = b.String()
	}

	for name, v := range map[string]any{"json secret": s, "json config": cfg, "json smtp": cfg.SMTP} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		outputs[name] = string(b)
	}

	for name, out := range outputs {
		if strings.Contains(out, value) {
			t.Errorf("%s shows the secret: %s", name, out)
		}
		// encoding/json escapes < and > as \u003c and \u003e.
		if !strings.Contains(out, "<secret>") && !strings.Contains(out, `\u003csecret\u003e`) {
			t.Errorf("%s shows no <secret> mask: %s", name, out)
		}
	}

	if got, want := fmt.Sprintf("%q", s), `"<secret>"`; got != want {
		t.Errorf("%%q = %s, want %s", got, want)
	}
	// Format handles %#v too, so GoString is never reached by fmt.
	if got, want := fmt.Sprintf("%#v", s), `<secret>`; got != want {
		t.Errorf("%%#v = %s, want %s", got, want)
	}
	if got, want := s.GoString(), `config.Secret("<secret>")`; got != want {
		t.Errorf("GoString() = %s, want %s", got, want)
	}
	var decoded struct{ Password string }
	if err := json.Unmarshal([]byte(outputs["json smtp"]), &decoded); err != nil || decoded.Password != "<secret>" {
		t.Errorf("json.Marshal(smtp) password decodes to %q (%v), want <secret>", decoded.Password, err)
	}
	yml := cfg.YAML()
	for _, want := range []string{"password: <secret>", "- <secret>"} {
		if !strings.Contains(yml, want) {
			t.Errorf("YAML() lacks %q:\n%s", want, yml)
		}
	}
}

// --- 5. defaults and warnings ---------------------------------------------

func TestDefaultValidatesExceptForTheSecret(t *testing.T) {
	err := defaults(t).Validate()
	ps := problems(t, err)
	if len(ps) != 1 {
		t.Fatalf("defaults(t).Validate() gave %d problems, want only the missing secret:\n%v", len(ps), err)
	}
	var p *Problem
	if !errors.As(ps[0], &p) {
		t.Fatalf("problem is %T, want *Problem", ps[0])
	}
	if p.Key != "webhook.secrets" || err.Error() != noSecret {
		t.Errorf("got %q (key %q), want\n%s", err, p.Key, noSecret)
	}

	cfg := defaults(t)
	cfg.Webhook.Secrets = []Secret{"0123456789abcdef0123456789abcdef01234567"}
	if err := cfg.Validate(); err != nil {
		t.Errorf("defaults(t) with a secret: %v", err)
	}
	if w := cfg.Warnings(); len(w) != 0 {
		t.Errorf("defaults(t) with a secret warns: %q", w)
	}
	if cfg.Location() != time.UTC {
		t.Errorf("Location() = %v, want UTC", cfg.Location())
	}
}

func TestWarnings(t *testing.T) {
	const noCatchAll = `routes: no catch-all route (one without match); an event no route takes goes to the dead letters with reason "no route"`

	cfg := defaults(t)
	cfg.Webhook.Secrets = []Secret{"0123456789abcdef0123456789abcdef01234567"}
	cfg.Routes = []Route{{Name: "sms", Match: map[string]string{"type": "sms"}, To: []string{"sms@example.com"}}}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if got := cfg.Warnings(); !slices.Equal(got, []string{noCatchAll}) {
		t.Errorf("Warnings() = %q, want [%q]", got, noCatchAll)
	}

	cfg.Routes = nil
	if got := cfg.Warnings(); !slices.Equal(got, []string{noCatchAll}) {
		t.Errorf("no routes: Warnings() = %q, want [%q]", got, noCatchAll)
	}

	cfg = defaults(t)
	cfg.Webhook.Secrets = []Secret{"0123456789abcdef0123456789abcdef01234567", "short-secret"}
	want := "webhook.secrets[1]: shorter than 16 characters; use a long random value (the gateway's own are 40 hex characters)"
	got := cfg.Warnings()
	if !slices.Equal(got, []string{want}) {
		t.Errorf("Warnings() = %q, want [%q]", got, want)
	}
	if strings.Contains(strings.Join(got, ""), "short-secret") {
		t.Errorf("warning quotes the secret")
	}

	// The README's quickstart secret is the gateway's published sample: it
	// works, and says loudly that it is no secret.
	cfg = defaults(t)
	cfg.Webhook.Secrets = []Secret{"0123456789abcdef0123456789abcdef01234567", "f50f6f32ff605baf44483fcecceaba83fc3f9362"}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate refuses the sample secret: %v", err)
	}
	want = "webhook.secrets[1]: is the sample secret published in the gateway's documentation and hookmail's README, so anyone can post webhooks with it; fine for a trial, but set your gateway's own secret before hookmail can be reached from elsewhere"
	if got := cfg.Warnings(); !slices.Equal(got, []string{want}) {
		t.Errorf("Warnings() = %q, want [%q]", got, want)
	}
}

// TestAdminTokenWarnings: a short admin.token works, with a warning that
// never quotes it; the admin page's login takes it.
func TestAdminTokenWarnings(t *testing.T) {
	cfg := defaults(t)
	cfg.Webhook.Secrets = []Secret{"0123456789abcdef0123456789abcdef01234567"}
	cfg.Admin.Listen, cfg.Admin.Token = "127.0.0.1:9090", "hunter2"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	want := "admin.token: shorter than 16 characters; the admin page's login takes it, so use a long random value, e.g. the output of: openssl rand -hex 32"
	got := cfg.Warnings()
	if !slices.Equal(got, []string{want}) {
		t.Errorf("Warnings() = %q, want [%q]", got, want)
	}
	if strings.Contains(strings.Join(got, ""), "hunter2") {
		t.Errorf("warning quotes the token")
	}
	cfg.Admin.Token = "0123456789abcdef"
	if got := cfg.Warnings(); len(got) != 0 {
		t.Errorf("a 16-character token warns: %q", got)
	}
}

// TestAdminPage: check says where the admin page is, or what to set for
// it: a browser cannot open a Unix socket, and always logs in with
// admin.token.
func TestAdminPage(t *testing.T) {
	const how = "set admin.listen to a TCP address such as 127.0.0.1:9090 and admin.token (HOOKMAIL_ADMIN_TOKEN) to a long random value, then open http://127.0.0.1:9090/ and log in with the token"
	for _, tc := range []struct {
		listen string
		token  Secret
		want   string
	}{
		{"off", "", "off: admin.listen is off; " + how},
		{"unix", "", "off: admin.listen is a Unix socket, which a browser cannot open, and admin.token is empty; " + how},
		{"unix:/run/h.sock", "0123456789abcdef", "on the Unix socket /run/h.sock, which a browser cannot open: forward it (ssh -L 9090:/run/h.sock) or " + how},
		{"127.0.0.1:9090", "0123456789abcdef", "http://127.0.0.1:9090/ (log in with admin.token)"},
		{":9090", "0123456789abcdef", "http://127.0.0.1:9090/, and every address of this machine (log in with admin.token)"},
	} {
		cfg := defaults(t)
		cfg.Admin.Listen, cfg.Admin.Token = tc.listen, tc.token
		if got := cfg.AdminPage(); got != tc.want {
			t.Errorf("admin.listen %s: AdminPage() = %q, want %q", tc.listen, got, tc.want)
		}
		if strings.Contains(cfg.AdminPage(), "0123456789abcdef") {
			t.Errorf("AdminPage() quotes the token")
		}
	}
}

// TestPlaceholderCredentialsAreRefused reads every credential hookmail's
// own files show (the example config, README.md, everything in deploy/):
// each must be refused, naming its key and never quoting it, except the
// gateway's published sample secret, which the quickstart uses and which
// only warns, and the short values that show the list syntax. A new
// placeholder in those files fails this test until it is refused too.
func TestPlaceholderCredentialsAreRefused(t *testing.T) {
	keys := map[string]string{
		"HOOKMAIL_WEBHOOK_SECRETS": "webhook.secrets[0]",
		"HOOKMAIL_SMTP_PASSWORD":   "smtp.password",
		"HOOKMAIL_ADMIN_TOKEN":     "admin.token",
	}
	// What the files write after one of the keys: a quoted value, a <stand
	// in>, a shell default ${VAR:-value}, or a word.
	assignment := regexp.MustCompile(`(HOOKMAIL_(?:WEBHOOK_SECRETS|SMTP_PASSWORD|ADMIN_TOKEN))(?:=|: ?)("[^"]*"|<[^>]*>|\$\{[^}]*\}|[^\s` + "`" + `'")]*)`)
	syntaxOnly := []string{"a", "b", "first", "second", "new", "old"}

	type found struct{ env, value, where string }
	var creds []found
	files := []string{"../README.md", examplePath}
	err := filepath.WalkDir("../deploy", func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasSuffix(path, ".go") {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range assignment.FindAllStringSubmatch(string(b), -1) {
			value := strings.Trim(m[2], `"`)
			if strings.HasPrefix(value, "$") {
				_, def, ok := strings.Cut(value, ":-")
				if !ok {
					continue // a shell variable, no value of its own
				}
				value = strings.TrimSuffix(def, "}")
			}
			for _, v := range strings.Split(value, ",") {
				if m[1] == "HOOKMAIL_WEBHOOK_SECRETS" && slices.Contains(syntaxOnly, v) {
					continue
				}
				creds = append(creds, found{m[1], v, file})
			}
		}
	}
	// The example's secret is a YAML value, not an assignment.
	creds = append(creds, found{"HOOKMAIL_WEBHOOK_SECRETS", mustLoad(t, examplePath, noEnv).Webhook.Secrets[0].Reveal(), examplePath + " webhook.secrets"})
	if len(creds) < 10 {
		t.Fatalf("found only %d credentials in the files; is the pattern stale? %v", len(creds), creds)
	}

	for _, c := range creds {
		t.Run(c.where+" "+c.env+"="+c.value, func(t *testing.T) {
			cfg := mustLoad(t, "", envMap(map[string]string{
				"HOOKMAIL_WEBHOOK_SECRETS": "0123456789abcdef0123456789abcdef01234567",
				c.env:                      c.value,
			}))
			err := cfg.Validate()
			if c.value == "f50f6f32ff605baf44483fcecceaba83fc3f9362" {
				if err != nil {
					t.Errorf("the quickstart's sample secret is refused: %v", err)
				}
				if w := strings.Join(cfg.Warnings(), "\n"); !strings.Contains(w, "sample secret published") {
					t.Errorf("no warning about the sample secret: %q", w)
				}
				return
			}
			var hit *Problem
			for _, p := range Problems(err) {
				if p.Key == keys[c.env] && p.Message == placeholder {
					hit = p
				}
			}
			if hit == nil {
				t.Fatalf("Validate() = %v, want %s refused as a placeholder", err, keys[c.env])
			}
			if strings.Contains(err.Error(), c.value) {
				t.Errorf("the problem quotes the value: %s", err)
			}
		})
	}
}

func TestValidateMore(t *testing.T) {
	base := func() *Config {
		cfg := defaults(t)
		cfg.Webhook.Secrets = []Secret{"0123456789abcdef0123456789abcdef01234567"}
		return cfg
	}
	tests := []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"listen without port", func(c *Config) { c.Listen = "localhost" },
			`listen: "localhost" is not host:port (address localhost: missing port in address); write it like ":8080" or "127.0.0.1:8080"`},
		{"listen port too big", func(c *Config) { c.Listen = ":70000" },
			`listen: port "70000" is not a number from 0 to 65535; write it like ":8080"`},
		{"log format", func(c *Config) { c.Log.Format = "xml" },
			`log.format: "xml" is not a format; use text or json`},
		{"unknown auth mechanism", func(c *Config) { c.SMTP.Auth = "ntlm" },
			`smtp.auth: "ntlm" is not an AUTH mechanism; use one of auto, plain, login, cram-md5, scram-sha-1, scram-sha-256, xoauth2`},
		{"root webhook path", func(c *Config) { c.Webhook.Path = "/" },
			`webhook.path: "/" would take every path, hookmail's own endpoints too; choose a path of its own, e.g. "/webhook"`},
		{"reserved webhook path", func(c *Config) { c.Webhook.Path = "/metrics" },
			`webhook.path: "/metrics" is taken by hookmail's own endpoint /metrics; choose another path, e.g. "/webhook"`},
		{"webhook path below a reserved one", func(c *Config) { c.Webhook.Path = "/healthz/gateway" },
			`webhook.path: "/healthz/gateway" is taken by hookmail's own endpoint /healthz; choose another path, e.g. "/webhook"`},
		{"webhook path with a double slash", func(c *Config) { c.Webhook.Path = "/hooks//sms" },
			`webhook.path: "/hooks//sms" is not a clean path (no //, /./ or /../); write it as "/hooks/sms"`},
		{"webhook path with dot-dot", func(c *Config) { c.Webhook.Path = "/hooks/../metrics/" },
			`webhook.path: "/hooks/../metrics/" is not a clean path (no //, /./ or /../); write it as "/metrics"`},
		{"negative infinite rate limit", func(c *Config) { c.Webhook.RateLimit = math.Inf(-1) },
			"webhook.rate_limit: -Inf is not a number of requests; set requests per second per client IP, e.g. 10, or 0 for no limit"},
		{"blank secret", func(c *Config) { c.Webhook.Secrets = append(c.Webhook.Secrets, "  ") },
			"webhook.secrets[1]: is empty; remove it or set the gateway's secret"},
		{"max body", func(c *Config) { c.Webhook.MaxBodyBytes = 0 },
			"webhook.max_body_bytes: must be positive, got 0; set a limit in bytes, e.g. 1048576"},
		{"max body over 2 MiB", func(c *Config) { c.Webhook.MaxBodyBytes = 10 << 20 },
			"webhook.max_body_bytes: 10485760 is over 2097152, past which an event could make an email over the 10 MB mail servers take; set at most 2097152 (2 MiB); the gateway's own bodies are a few KiB"},
		{"no spool dir", func(c *Config) { c.Spool.Dir = "" },
			"spool.dir: is empty; set the directory the durable queue lives in, e.g. ./data"},
		{"nowhere to deliver", func(c *Config) { c.Outbox.Dir = "" },
			"outbox.dir: is empty and smtp.host is not set, so emails have nowhere to go; set outbox.dir (e.g. ./outbox) or smtp.host"},
		{"smtp port", func(c *Config) { c.SMTP.Port = 0 },
			"smtp.port: 0 is not a port; use 587 for starttls, 465 for tls, 25 for a local server"},
		{"missing password file", func(c *Config) { c.SMTP.PasswordFile = "testdata/nope.txt" },
			`smtp.password_file: "testdata/nope.txt" cannot be read (stat testdata/nope.txt: no such file or directory); create the file or correct the path`},
		{"ca file is a directory", func(c *Config) { c.SMTP.CAFile = "testdata" },
			`smtp.ca_file: "testdata" is a directory; point it at a file`},
		{"templates dir is a file", func(c *Config) { c.Templates.Dir = "testdata/smtp_password.txt" },
			`templates.dir: "testdata/smtp_password.txt" is not a directory; point it at a directory`},
		{"from", func(c *Config) { c.SMTP.From = "" },
			`smtp.from: "" is not an email address (mail: no address); ` + fixAddress},
		{"workers", func(c *Config) { c.SMTP.Workers = 257 },
			"smtp.workers: 257 is out of range; use a number from 1 to 256"},
		{"no routes", func(c *Config) { c.Routes = nil },
			"routes: no route is set, so no event would be emailed; add at least one route with a recipient; one without match takes every event"},
		{"unnamed route", func(c *Config) { c.Routes[0].Name = "" },
			"routes[0].name: is empty; give every route a unique name"},
		{"bad cc and bcc", func(c *Config) { c.Routes[0].Cc = []string{"x"}; c.Routes[0].Bcc = []string{"ok@example.com", "y"} },
			`routes[0].cc[0]: "x" is not an email address (mail: missing '@' or angle-addr); ` + fixAddress + "\n" +
				`routes[0].bcc[1]: "y" is not an email address (mail: missing '@' or angle-addr); ` + fixAddress},
		{"storm on a drop route", func(c *Config) {
			c.Routes[0].To, c.Routes[0].Drop, c.Routes[0].Storm = nil, true, &Storm{Threshold: 5, Window: time.Minute}
		}, `routes[0].storm: route "everything" drops its events, so there is no storm to fold; remove drop: true or the storm`},
		{"postgres url copied from the README", func(c *Config) {
			c.Queue.Backend, c.Queue.Postgres.URL = BackendPostgres, "postgres://hookmail:PASSWORD@db.example.com/hookmail"
		}, "queue.postgres.url: " + placeholder + "; set the database's URL, e.g. in HOOKMAIL_QUEUE_POSTGRES_URL or queue.postgres.url_file"},
		{"postgres url copied from the Kubernetes secret", func(c *Config) {
			c.Queue.Backend, c.Queue.Postgres.URL = BackendPostgres, "postgres://hookmail:replace-with-the-database-password@postgres.example.com:5432/hookmail?sslmode=verify-full"
		}, "queue.postgres.url: " + placeholder + "; set the database's URL, e.g. in HOOKMAIL_QUEUE_POSTGRES_URL or queue.postgres.url_file"},
		{"postgres url file missing", func(c *Config) { c.Queue.Postgres.URLFile = "testdata/nope.txt" },
			`queue.postgres.url_file: "testdata/nope.txt" cannot be read (stat testdata/nope.txt: no such file or directory); create the file or correct the path`},
		{"zero lifetime", func(c *Config) { c.Retry.Lifetime = 0 },
			"retry.lifetime: must be a positive duration, got 0s; " + fixDur},
		// Only "localhost" and loopback IPs count: a name that resolves to
		// loopback today may not tomorrow, and Validate asks no DNS.
		{"credentials in clear to a name", func(c *Config) { clearAuth(c, "relay.internal") },
			`smtp.tls: none would send smtp.username's credentials in clear to "relay.internal", which is not a loopback address; ` + fixClear},
		{"credentials in clear to a LAN address", func(c *Config) { clearAuth(c, "192.168.1.10") },
			`smtp.tls: none would send smtp.username's credentials in clear to "192.168.1.10", which is not a loopback address; ` + fixClear},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base()
			tt.modify(cfg)
			err := cfg.Validate()
			if err == nil || err.Error() != tt.want {
				t.Errorf("Validate()\n got: %v\nwant: %s", err, tt.want)
			}
		})
	}
	// Credentials in clear to loopback are fine, and so is no login in clear
	// to anywhere.
	for _, host := range []string{"127.0.0.1", "127.0.0.2", "::1", "localhost"} {
		cfg := base()
		clearAuth(cfg, host)
		if err := cfg.Validate(); err != nil {
			t.Errorf("tls none with a username to %s: %v", host, err)
		}
	}
	cfg := base()
	clearAuth(cfg, "mail.example.com")
	cfg.SMTP.Username = ""
	if err := cfg.Validate(); err != nil {
		t.Errorf("tls none without a username: %v", err)
	}
	// An existing password_file, ca_file and templates dir are fine.
	cfg = base()
	cfg.SMTP.PasswordFile = "testdata/smtp_password.txt"
	cfg.SMTP.CAFile = "testdata/smtp_password.txt"
	cfg.Templates.Dir = "testdata"
	cfg.SMTP.TLS = TLSImplicit
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

const fixClear = "use starttls (port 587) or tls (port 465), or relay through a server on 127.0.0.1, ::1 or localhost"

// clearAuth sets a login without TLS to host.
func clearAuth(c *Config, host string) {
	c.SMTP.Host, c.SMTP.Port, c.SMTP.TLS = host, 25, TLSNone
	c.SMTP.Username, c.SMTP.Password = "hookmail", "hunter2"
}

func TestProblemError(t *testing.T) {
	if got := (&Problem{Key: "k", Message: "m"}).Error(); got != "k: m" {
		t.Errorf("without fix: %q", got)
	}
	if got := (&Problem{Key: "k", Message: "m", Fix: "f"}).Error(); got != "k: m; f" {
		t.Errorf("with fix: %q", got)
	}
}

func TestLocation(t *testing.T) {
	cfg := defaults(t)
	cfg.Timezone = "Asia/Manila"
	if got := cfg.Location().String(); got != "Asia/Manila" {
		t.Errorf("Location() = %s", got)
	}
	cfg.Timezone = "Not/AZone"
	if cfg.Location() != time.UTC {
		t.Errorf("unknown zone should fall back to UTC")
	}
}

func TestSecretsListTrimsSpaces(t *testing.T) {
	cfg, err := Load("", func(k string) string {
		return map[string]string{"HOOKMAIL_WEBHOOK_SECRETS": "first-secret-value-0001, second-secret-value-0002"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Webhook.Secrets) != 2 || cfg.Webhook.Secrets[1].Reveal() != "second-secret-value-0002" {
		t.Fatalf("secrets = %d, second %q; want the space trimmed", len(cfg.Webhook.Secrets), cfg.Webhook.Secrets[len(cfg.Webhook.Secrets)-1].Reveal())
	}
}

func TestDurationWithoutUnitIsAnError(t *testing.T) {
	cfg := defaults(t)
	cfg.Webhook.Secrets = []Secret{"0123456789abcdef0123"}
	cfg.SMTP.Timeout = 30 // what "timeout: 30" decodes to
	want := `smtp.timeout: 30ns is shorter than a millisecond; is the unit missing?; write it with a unit, like "30s", "5m" or "1h"`
	if err := cfg.Validate(); err == nil || err.Error() != want {
		t.Fatalf("Validate = %v\nwant %s", err, want)
	}
	cfg.SMTP.Timeout = 30 * time.Second
	cfg.Shutdown.Drain = 5 // "drain: 5"
	want = `shutdown.drain: 5ns is shorter than a millisecond; is the unit missing?; write it with a unit, like "5s"`
	if err := cfg.Validate(); err == nil || err.Error() != want {
		t.Fatalf("Validate = %v\nwant %s", err, want)
	}
}

// TestLoadRefusesWhatIsNotAConfigFile: a --config naming a device, a FIFO,
// a directory or a huge file is refused at once, before it is read: a read
// of /dev/zero would fill memory, and of a FIFO wait forever for a writer.
func TestLoadRefusesWhatIsNotAConfigFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.yaml")
	// Valid YAML, so only its size is wrong with it.
	if err := os.WriteFile(big, []byte(strings.Repeat("# a comment line of a config file\n", 40000)), 0o600); err != nil {
		t.Fatal(err)
	}
	const fix = "; point --config (or HOOKMAIL_CONFIG) at the YAML file"
	tests := []struct {
		name, path, want string
	}{
		{"device", "/dev/zero", "config file /dev/zero: is a device, not a regular file" + fix},
		{"fifo", fifo, "config file " + fifo + ": is a named pipe (FIFO), not a regular file" + fix},
		{"directory", dir, "config file " + dir + ": is a directory, not a file" + fix},
		{"too large", big, "config file " + big + ": is larger than 1 MiB, the most it may hold" + fix},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(tt.path, noEnv)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("Load error\n got: %v\nwant: %s", err, tt.want)
			}
			if cfg != nil {
				t.Error("Load returned a config")
			}
		})
	}
}

// TestAcceptedWebhookPathsServe: every webhook.path Validate accepts can be
// registered the way relay.(*Relay).Handler registers it (p and p+"/" beside
// hookmail's own endpoints) without http.ServeMux panicking: what check
// accepts, serve runs.
func TestAcceptedWebhookPathsServe(t *testing.T) {
	tests := []struct {
		path   string
		accept bool
	}{
		{"/webhook", true},
		{"/webhook/", true},
		{"/hooks/sms-gateway", true},
		{"/Hooks/v1.2/sms_gateway~x/", true},
		{"/metricsx", true},
		{"/healthz-gateway", true},
		{"/metrics", false},
		{"/metrics/", false},
		{"/metrics/x", false},
		{"/readyz/", false},
		{"/", false},
		{"//", false},
		{"webhook", false},
		{"/web hook", false},
		{"/a/{$}", false},
		{"/a/{x}", false},
		{"/a/{x...}", false},
		{"GET /webhook", false},
		{"/webhook//", false},
		{"/a//b", false},
		{"/a/./b", false},
		{"/a/../b", false},
		{"/a/..", false},
		{"/%2e%2e/x", false},
		{`/hook\x`, false},
		{"/hook?x=1", false},
		{"/hook#x", false},
		{"/hook\n", false},
		{"/héllo", false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			cfg := defaults(t)
			cfg.Webhook.Secrets = []Secret{"0123456789abcdef0123456789abcdef01234567"}
			cfg.Webhook.Path = tt.path
			err := cfg.Validate()
			if accepted := err == nil; accepted != tt.accept {
				t.Errorf("Validate() = %v, want accepted %v", err, tt.accept)
			}
			if err != nil {
				return
			}
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("Validate accepted %q, but registering it panics: %v", tt.path, p)
				}
			}()
			h := http.NotFoundHandler()
			mux := http.NewServeMux()
			p := strings.TrimSuffix(tt.path, "/")
			mux.Handle(p, h)
			mux.Handle(p+"/", h)
			for _, own := range []string{"/healthz", "/readyz", "/metrics", "/"} {
				mux.Handle(own, h)
			}
		})
	}
}

// defaults is the built-in configuration, as configtest.Default gives it
// to other packages' tests.
func defaults(t testing.TB) *Config {
	t.Helper()
	cfg, err := load(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestPublicURLPasswordMasked: a user and password in a source's
// public_url (Twilio signs the URL without them) never show where the
// config or an error about it is printed; the rest of the URL does.
func TestPublicURLPasswordMasked(t *testing.T) {
	const password = "pw-NEVER-printed"
	cfg := defaults(t)
	cfg.Webhook.SourceList = []Source{{Name: "tw", Path: "/hooks/tw", Format: FormatTwilio, Secrets: []Secret{"token-0123456789abcdef"},
		PublicURL: "https://twilio:" + password + "@hooks.example/hooks/tw"}}
	src := cfg.Webhook.SourceList[0]
	outputs := map[string]string{
		"%v": fmt.Sprintf("%v", src), "%+v": fmt.Sprintf("%+v", src), "%#v": fmt.Sprintf("%#v", src),
		"%q": fmt.Sprintf("%q", src.PublicURL), "%s": fmt.Sprintf("%s", src.PublicURL), "Config.YAML": cfg.YAML(),
	}
	var b bytes.Buffer
	slog.New(slog.NewTextHandler(&b, nil)).Info("source", "url", src.PublicURL, "source", src)
	outputs["slog"] = b.String()
	j, err := json.Marshal(src)
	if err != nil {
		t.Fatal(err)
	}
	outputs["json"] = string(j)
	for name, out := range outputs {
		if strings.Contains(out, password) {
			t.Errorf("%s shows the password: %s", name, out)
		}
		if !strings.Contains(out, "hooks.example/hooks/tw") {
			t.Errorf("%s does not show the URL: %s", name, out)
		}
	}
	if got := src.PublicURL.Reveal(); got != "https://twilio:"+password+"@hooks.example/hooks/tw" {
		t.Errorf("Reveal() = %q", got)
	}
	for _, u := range []MaskedURL{"https://hooks.example/a@b", "https://user@hooks.example/x", "https://[::1]:8443/x"} {
		if u.String() != string(u) {
			t.Errorf("%s, with no password, printed as %s", string(u), u)
		}
	}
	// A password with a "/" ends the authority early: "AC123:" parses as a
	// host with an empty port, the rest as the path.
	for _, u := range []MaskedURL{"https://AC123:/" + password + "@hooks.example/x", "https://u:123/" + password + "@hooks.example/x"} {
		if strings.Contains(u.String(), password) {
			t.Errorf("%s printed as %s", password, u)
		}
	}
	// An error about a public_url quotes it masked, parsed or not.
	for _, bad := range []MaskedURL{"ftp://u:" + password + "@hooks.example/x", "https://u:" + password + "@hooks example/x",
		"AC123:" + password + "@hooks.example/x", "https:/u:" + password + "@hooks.example/x"} {
		cfg.Webhook.SourceList[0].PublicURL = bad
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), "public_url") || strings.Contains(err.Error(), password) {
			t.Errorf("public_url %s: validation says %v, want its problem without the password", bad, err)
		}
	}
}

// TestSourceKeyWarnings: a listed source's key shorter than 16 characters,
// set inline or in its secrets_file, warns naming the source and which key,
// never quoting it (SMS Gateway's app suggests 8 characters).
func TestSourceKeyWarnings(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bee.keys")
	if err := os.WriteFile(file, []byte("# rotated\n0123456789abcdef0123\nbee-short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := defaults(t)
	cfg.Webhook.Secrets = []Secret{"0123456789abcdef0123456789abcdef01234567"}
	cfg.Webhook.SourceList = []Source{
		{Name: "android", Path: "/hooks/sms", Format: FormatSMSGate, Secrets: []Secret{"abcd1234"}},
		{Name: "bee", Path: "/hooks/bee", Format: FormatTextbee, SecretsFile: file},
		{Name: "long", Path: "/hooks/long", Format: FormatSMSGate, Secrets: []Secret{"0123456789abcdef"}},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	got := cfg.Warnings()
	const tail = ": shorter than 16 characters; anyone who sees one signed webhook can try keys offline until one matches, so set a long random value in the gateway and here"
	want := []string{"webhook.sources[0].secrets[0]" + tail, "webhook.sources[1].secrets[1]" + tail}
	if !slices.Equal(got, want) {
		t.Errorf("Warnings() = %q, want %q", got, want)
	}
	if all := strings.Join(got, ""); strings.Contains(all, "abcd1234") || strings.Contains(all, "bee-short") {
		t.Errorf("a warning quotes a key: %q", got)
	}
}
