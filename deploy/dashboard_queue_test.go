package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// queueGauge finds the gauges that describe the queue, which a shared
// (Postgres) queue's instances all report alike.
var queueGauge = regexp.MustCompile(`\bhookmail_(queue_depth|queue_oldest_age_seconds|dead_letters|digest_pending_events)\b`)

// TestGrafanaQueueCountedOnce: promtool evaluates every dashboard query on
// the queue gauges against three instances of one shared queue and two
// spools: the shared queue counts once, each spool by itself. A new panel
// on those gauges must say here what it shows.
func TestGrafanaQueueCountedOnce(t *testing.T) {
	// By panel type and title: depth 20, oldest 300 s and 4 dead on the
	// shared queue; 5 and 7, 100 and 200 s, 1 and 2 dead on the spools.
	want := map[string][]promSample{
		"stat Queue depth":                   {{`{}`, 20 + 5 + 7}},
		"stat Oldest queued event":           {{`{}`, 300}},
		"stat Dead letters":                  {{`{}`, 4 + 1 + 2}},
		"timeseries Queue depth":             perQueue("hookmail_queue_depth", 20, 5, 7),
		"timeseries Dead letters":            perQueue("hookmail_dead_letters", 4, 1, 2),
		"timeseries Oldest queued event age": perQueue("hookmail_queue_oldest_age_seconds", 300, 100, 200),
	}
	var series []map[string]string
	for _, g := range []struct {
		name                   string
		shared, spoolA, spoolB float64
	}{
		{"hookmail_queue_depth", 20, 5, 7},
		{"hookmail_queue_oldest_age_seconds", 300, 100, 200},
		{"hookmail_dead_letters", 4, 1, 2},
	} {
		for _, pod := range []string{"a", "b", "c"} {
			series = append(series, map[string]string{
				"series": fmt.Sprintf(`%s{job="hookmail", instance="hookmail-%s:8080", pod="hookmail-%s", queue="shared"}`, g.name, pod, pod),
				"values": fmt.Sprintf("%gx10", g.shared)})
		}
		for host, v := range map[string]float64{"hm-a": g.spoolA, "hm-b": g.spoolB} {
			series = append(series, map[string]string{
				"series": fmt.Sprintf(`%s{job="spool", instance="%s:8080", queue="local"}`, g.name, host),
				"values": fmt.Sprintf("%gx10", v)})
		}
	}
	type exprTest struct {
		Expr       string       `yaml:"expr"`
		EvalTime   string       `yaml:"eval_time"`
		ExpSamples []promSample `yaml:"exp_samples"`
	}
	var tests []exprTest
	for _, p := range readDashboard(t).Panels {
		for _, tg := range p.Targets {
			if !queueGauge.MatchString(tg.Expr) {
				continue
			}
			key := p.Type + " " + p.Title
			samples, ok := want[key]
			if !ok {
				t.Errorf("panel %q queries the queue gauges (%s); say here what it should show", key, tg.Expr)
				continue
			}
			delete(want, key)
			expr := strings.NewReplacer(`$job`, `hookmail|spool`, `$instance`, `.*`).Replace(grafanaRange.ReplaceAllString(tg.Expr, "5m"))
			tests = append(tests, exprTest{Expr: expr, EvalTime: "5m", ExpSamples: samples})
		}
	}
	for key := range want {
		t.Errorf("no panel %q querying the queue gauges", key)
	}
	promtool := findTool(t, "promtool", promtoolInstall)
	b, err := yaml.Marshal(map[string]any{
		"rule_files": []string{},
		"tests": []any{map[string]any{
			"interval":         "1m",
			"input_series":     series,
			"promql_expr_test": tests,
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "dashboard_test.yaml")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	runTool(t, promtool, "test", "rules", f)
}

// promSample is one sample promtool expects.
type promSample struct {
	Labels string  `yaml:"labels"`
	Value  float64 `yaml:"value"`
}

// perQueue is what a per-queue panel on gauge name shows: one series for
// the shared queue, one for each of the two spools.
func perQueue(name string, shared, spoolA, spoolB float64) []promSample {
	return []promSample{
		{`{job="hookmail", queue="shared"}`, shared},
		{name + `{job="spool", instance="hm-a:8080", queue="local"}`, spoolA},
		{name + `{job="spool", instance="hm-b:8080", queue="local"}`, spoolB},
	}
}
