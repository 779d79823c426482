// Package configtest holds helpers for tests that need a config, as
// net/http/httptest does for net/http.
package configtest

import (
	"testing"

	"github.com/hookmail/hookmail/config"
)

// Default returns the built-in configuration: what hookmail runs on with
// no file and no environment.
func Default(t testing.TB) *config.Config {
	t.Helper()
	cfg, err := config.Load("", nil)
	if err != nil {
		t.Fatalf("the built-in defaults do not load: %v", err)
	}
	return cfg
}

// Secret is the gateway's published sample secret the tests send with, and
// SecondSecret the other one Config accepts, as during a rotation.
const (
	Secret       = "f50f6f32ff605baf44483fcecceaba83fc3f9362"
	SecondSecret = "second-secret-for-rotation"
)

// Config is the config most tests run on: the defaults with Secret and
// SecondSecret, the spool and the outbox in temp dirs, two workers, no
// dedup (tests post the same body many times; dedup has its own tests),
// and two routes, unthreaded so that subjects carry the message text the
// tests look for: sms to sms@example.com (cc cc@example.com), everything
// else to all@example.com.
func Config(t testing.TB) *config.Config {
	t.Helper()
	cfg := Default(t)
	cfg.Webhook.Secrets = []config.Secret{Secret, SecondSecret}
	cfg.Spool.Dir, cfg.Outbox.Dir = t.TempDir(), t.TempDir()
	cfg.SMTP.Workers = 2
	cfg.Dedup.Window = 0
	unthreaded := false
	cfg.Routes = []config.Route{
		{Name: "sms", Match: map[string]string{"type": "sms"}, To: []string{"sms@example.com"}, Cc: []string{"cc@example.com"}, Thread: &unthreaded},
		{Name: "everything-else", To: []string{"all@example.com"}, Thread: &unthreaded},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}
