package app

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

const otherSecret = "7d1e0c5b9a8f7e6d5c4b3a29180f7e6d5c4b3a29"

// postTo posts a zender form with secret to path.
func (env *testEnv) postTo(t *testing.T, path, secret string) int {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader("secret="+secret+"&type=sms&data[phone]=%2B1&data[message]=hi"))
	req.Header.Set("Content-Type", formType)
	rec := httptest.NewRecorder()
	env.h.ServeHTTP(rec, req)
	return rec.Code
}

// TestSourcesEachOnTheirPath: every source is served on its own path with
// its own keys; a key of one source does not open another's path; and
// the event records its source.
func TestSourcesEachOnTheirPath(t *testing.T) {
	cfg := testConfig(t)
	cfg.Webhook.SourceList = []config.Source{{Name: "branch", Path: "/hooks/branch", Format: config.FormatZender, Secrets: []config.Secret{otherSecret}}}
	env := newTestEnv(t, cfg, nil)
	for _, tc := range []struct {
		path, secret string
		want         int
	}{
		{"/webhook", testSecret, http.StatusOK},
		{"/hooks/branch", otherSecret, http.StatusOK},
		{"/hooks/branch/", otherSecret, http.StatusOK},
		{"/hooks/branch", testSecret, http.StatusUnauthorized},
		{"/webhook", otherSecret, http.StatusUnauthorized},
		{"/hooks/other", otherSecret, http.StatusNotFound},
	} {
		if got := env.postTo(t, tc.path, tc.secret); got != tc.want {
			t.Errorf("POST %s with %.6s…: %d, want %d", tc.path, tc.secret, got, tc.want)
		}
	}
	items := listAll(t, env)
	sources := map[string]int{}
	for _, it := range items {
		sources[it.Event.Source+"/"+it.Event.Format]++
	}
	if sources["gateway/zender"] != 1 || sources["branch/zender"] != 2 || len(items) != 3 {
		t.Errorf("queued events by source: %v", sources)
	}
}

// TestReloadRotatesSourceKeys: a reload takes a source's new keys from its
// secrets_file, and refuses the ones removed, without a restart.
func TestReloadRotatesSourceKeys(t *testing.T) {
	file := filepath.Join(t.TempDir(), "keys")
	write := func(keys ...string) {
		if err := os.WriteFile(file, []byte(strings.Join(keys, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(testSecret)
	cfg := testConfig(t)
	cfg.Webhook.Secrets = nil
	cfg.Webhook.SourceList = []config.Source{{Name: "phone", Path: "/hooks/phone", Format: config.FormatZender, SecretsFile: file}}
	env := newTestEnv(t, cfg, nil)
	if got := env.postTo(t, "/hooks/phone", testSecret); got != http.StatusOK {
		t.Fatalf("with the first key: %d", got)
	}
	if got := env.postTo(t, "/webhook", testSecret); got != http.StatusNotFound {
		t.Errorf("the gateway path, which webhook.sources without webhook.secrets turns off: %d, want 404", got)
	}
	write(testSecret, otherSecret) // rotating: both for a while
	env.s.opts.Load = func() (*config.Config, error) { return cfg, nil }
	env.s.reload("test")
	for _, k := range []string{testSecret, otherSecret} {
		if got := env.postTo(t, "/hooks/phone", k); got != http.StatusOK {
			t.Errorf("during the rotation, key %.6s…: %d", k, got)
		}
	}
	write(otherSecret)
	env.s.reload("test")
	if got := env.postTo(t, "/hooks/phone", testSecret); got != http.StatusUnauthorized {
		t.Errorf("the removed key after the reload: %d, want 401", got)
	}
	if got := env.postTo(t, "/hooks/phone", otherSecret); got != http.StatusOK {
		t.Errorf("the new key after the reload: %d", got)
	}
	if strings.Contains(env.logs.String(), "webhook.sources") {
		t.Errorf("a key rotation was logged as needing a restart:\n%s", env.logs)
	}
	next := *cfg
	next.Webhook.SourceList = []config.Source{{Name: "phone", Path: "/hooks/moved", Format: config.FormatZender, SecretsFile: file}}
	env.s.opts.Load = func() (*config.Config, error) { return &next, nil }
	env.s.reload("test")
	if !strings.Contains(env.logs.String(), "webhook.sources") {
		t.Errorf("a moved path was not named as needing a restart:\n%s", env.logs)
	}
}

// listAll lists the waiting events.
func listAll(t *testing.T, env *testEnv) []relay.Item {
	t.Helper()
	page, err := env.backend.Inspector.List(t.Context(), relay.Filter{State: relay.StateWaiting})
	if err != nil {
		t.Fatal(err)
	}
	return page.Items
}
