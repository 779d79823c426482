package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/config/configtest"
	"github.com/hookmail/hookmail/relay/app"
	"github.com/hookmail/hookmail/relay/relaytest"
)

// promtoolInstall is how .ci/run installs promtool.
const promtoolInstall = "go install github.com/prometheus/prometheus/cmd/promtool@v0.316.0"

// findTool finds a tool on PATH or in $(go env GOPATH)/bin. A missing tool
// skips the test; in CI (env CI set) it fails it instead when install, the
// command .ci/run installs it with, is given.
func findTool(t *testing.T, name, install string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if install == "" {
		t.Skipf("%s not installed", name)
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed; .ci/run installs it with %s", name, install)
	}
	t.Skipf("%s not installed: %s", name, install)
	return ""
}

// runTool runs bin with args and fails the test with its output on error.
func runTool(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestPrometheusRules(t *testing.T) {
	promtool := findTool(t, "promtool", promtoolInstall)
	runTool(t, promtool, "check", "rules", "--lint=all", "--lint-fatal", "prometheus/hookmail-rules.yaml")
	runTool(t, promtool, "test", "rules", "prometheus/hookmail-rules_test.yaml")
}

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	SchemaVersion int `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ X, Y, W, H int } `json:"gridPos"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile("grafana/hookmail.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana/hookmail.json is not valid JSON: %v", err)
	}
	return d
}

func TestGrafanaDashboard(t *testing.T) {
	d := readDashboard(t)
	if d.SchemaVersion < 39 {
		t.Errorf("schemaVersion %d; want 39 or later", d.SchemaVersion)
	}
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name)
	}
	for _, want := range []string{"datasource", "job", "instance"} {
		if !slices.Contains(vars, want) {
			t.Errorf("no template variable %q (have %v)", want, vars)
		}
	}
	ids := map[int]bool{}
	var exprs []string
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d is used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource uid %q; want ${datasource}, so the dashboard follows the variable", p.Title, p.Datasource.UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if !strings.Contains(tg.Expr, `job=~"$job"`) || !strings.Contains(tg.Expr, `instance=~"$instance"`) {
				t.Errorf("panel %q: %s does not select $job and $instance", p.Title, tg.Expr)
			}
			exprs = append(exprs, tg.Expr)
		}
	}
	if len(exprs) == 0 {
		t.Fatal("the dashboard has no panels with queries")
	}
	for i, a := range d.Panels {
		for _, b := range d.Panels[i+1:] {
			if overlap(a, b) {
				t.Errorf("panels %q and %q overlap", a.Title, b.Title)
			}
		}
	}

	t.Run("queries parse", func(t *testing.T) {
		promtool := findTool(t, "promtool", promtoolInstall)
		checkPromQL(t, promtool, exprs)
	})
}

func overlap(a, b panel) bool {
	pa, pb := a.GridPos, b.GridPos
	return pa.X < pb.X+pb.W && pb.X < pa.X+pa.W && pa.Y < pb.Y+pb.H && pb.Y < pa.Y+pa.H
}

// grafanaRange stands for Grafana's range variables, which PromQL must see
// as a duration.
var grafanaRange = regexp.MustCompile(`\$__(rate_interval|interval|range)\b`)

// checkPromQL parses exprs with Prometheus's own parser, by handing them to
// promtool as recording rules: the prometheus module stays out of go.mod.
func checkPromQL(t *testing.T, promtool string, exprs []string) {
	t.Helper()
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for i, e := range exprs {
		rules = append(rules, rule{Record: fmt.Sprintf("dashboard:query_%d", i), Expr: grafanaRange.ReplaceAllString(e, "5m")})
	}
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "dashboard-rules.yaml")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	runTool(t, promtool, "check", "rules", f)
}

// exportedMetrics returns every metric name hookmail exposes, as PromQL
// sees them (histograms also as _bucket, _sum and _count): hookmail serve
// runs, on a registry that records what is registered, until it listens.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	cfg := configtest.Default(t)
	cfg.Listen, cfg.Admin.Listen = "127.0.0.1:0", "off"
	cfg.Spool.Dir = t.TempDir()
	cfg.Webhook.Secrets = []config.Secret{"deploy-test-secret-0123456789"}
	cfg.SMTP.Host = "127.0.0.1" // the SMTP metrics; starting dials nothing
	cfg.Shutdown.Drain = 0      // stop at once once the metrics are read
	// A digest route, so the per-route digest series exist.
	cfg.Routes = append(cfg.Routes, config.Route{Name: "digest", To: []string{"a@example.com"},
		Digest: &config.Digest{Every: time.Hour, MaxEvents: 10}})
	reg := &describingRegistry{Registry: prometheus.NewRegistry()}
	logs := &relaytest.LogBuffer{}
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- app.Serve(ctx, app.Options{Config: cfg, Log: slog.New(slog.NewTextHandler(logs, nil)), Registry: reg})
	}()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "hookmail listening"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("hookmail did not start:\n%s", logs)
		}
	}
	families, err := reg.Gather()
	stop()
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
		if f.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[f.GetName()+s] = true
			}
		}
	}
	// A vector with no label values yet (hookmail_smtp_replies_total: the
	// reply codes are not known in advance) gathers nothing, but is
	// described.
	for _, n := range reg.described {
		names[n] = true
	}
	if len(names) < 10 {
		t.Fatalf("found only %d metric names in hookmail's registry: %v", len(names), names)
	}
	return names
}

// describingRegistry records the name of every metric registered on it.
type describingRegistry struct {
	*prometheus.Registry
	described []string
}

var descName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *describingRegistry) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := descName.FindStringSubmatch(d.String()); m != nil {
			r.described = append(r.described, m[1])
		}
	}
	return r.Registry.Register(c)
}

func (r *describingRegistry) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// metricName finds hookmail's metric names in any text: PromQL, YAML, JSON
// or Markdown. Other metrics (up, go_*, process_*) are not matched, so they
// are allowed.
var metricName = regexp.MustCompile(`\bhookmail_[a-z0-9_]*[a-z0-9]`)

func TestMetricNamesExist(t *testing.T) {
	exported := exportedMetrics(t)
	for _, file := range []string{
		"prometheus/hookmail-rules.yaml",
		"prometheus/hookmail-rules_test.yaml",
		"grafana/hookmail.json",
		"README.md",
		"../README.md",
	} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, name := range metricName.FindAllString(string(b), -1) {
			if !exported[name] && !seen[name] {
				t.Errorf("%s names %s, which hookmail does not export", file, name)
			}
			seen[name] = true
		}
		if len(seen) == 0 && file != "README.md" {
			t.Errorf("%s names no hookmail metric; is the pattern still right?", file)
		}
	}
}

// knownEnv returns the HOOKMAIL_* variables hookmail reads: one per config
// key (routes has none) and HOOKMAIL_CONFIG. A variable not in it would be
// ignored without a word, so the artefacts may set only these.
func knownEnv(t *testing.T) map[string]bool {
	t.Helper()
	var tree map[string]any
	if err := yaml.Unmarshal([]byte(configtest.Default(t).YAML()), &tree); err != nil {
		t.Fatal(err)
	}
	env := map[string]bool{"HOOKMAIL_CONFIG": true}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			key := prefix + k
			if sub, ok := v.(map[string]any); ok {
				walk(key+".", sub)
				continue
			}
			if key != "routes" {
				env[config.EnvName(key)] = true
			}
		}
	}
	walk("", tree)
	if !env["HOOKMAIL_SPOOL_DIR"] || !env["HOOKMAIL_SMTP_PASSWORD"] {
		t.Fatalf("config keys not found in the default config: %v", env)
	}
	return env
}

// checkEnv reports every HOOKMAIL_* name in vars that hookmail does not read.
func checkEnv(t *testing.T, where string, vars map[string]string) {
	t.Helper()
	known := knownEnv(t)
	for name := range vars {
		if strings.HasPrefix(name, config.EnvPrefix) && !known[name] {
			t.Errorf("%s sets %s, which is no config key (hookmail would ignore it)", where, name)
		}
	}
}

// loadConfig loads and validates the config file at path the way serve
// does, with env as the whole environment.
func loadConfig(t *testing.T, where, path string, env map[string]string) *config.Config {
	t.Helper()
	cfg, err := config.LoadValid(path, func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("%s: hookmail would not start:\n%v", where, err)
	}
	return cfg
}

// buildHookmail builds hookmail with deploy/build.sh, stamped with version
// and commit, and returns the binary.
func buildHookmail(t *testing.T, version, commit string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds hookmail")
	}
	bin := filepath.Join(t.TempDir(), "hookmail")
	cmd := exec.Command("bash", "build.sh", "-o", bin)
	cmd.Env = append(os.Environ(), "VERSION="+version, "COMMIT="+commit)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("deploy/build.sh: %v\n%s", err, out.String())
	}
	return bin
}

// readFile returns the file's text, failing the test when it cannot.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
