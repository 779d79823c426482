package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// podDisruptionBudget is the part of a PodDisruptionBudget the test reads.
type podDisruptionBudget struct {
	APIVersion string `yaml:"apiVersion"`
	Spec       struct {
		MinAvailable   any `yaml:"minAvailable"`
		MaxUnavailable any `yaml:"maxUnavailable"`
		Selector       struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
	} `yaml:"spec"`
}

// intOrPercent reads an int-or-string field: 1, "1" or "25%".
func intOrPercent(v any) (n int, percent bool, ok bool) {
	s := strings.TrimSpace(fmt.Sprint(v))
	if v == nil || s == "" {
		return 0, false, false
	}
	s, percent = strings.CutSuffix(s, "%")
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil {
		return 0, false, false
	}
	return n, percent, true
}

// TestKubernetesPostgres checks the variant for the Postgres queue: several
// replicas that no state of their own ties down (no PVC), replaced one at a
// time without ever being fewer (maxUnavailable 0), evicted one at a time
// (a PodDisruptionBudget), each taken out of the Service by /readyz within
// its drain, and given the time to drain and stop before SIGKILL.
func TestKubernetesPostgres(t *testing.T) {
	const dir = "kubernetes-postgres"
	var d deployment
	readManifest(t, dir, "deployment.yaml", "Deployment", &d)
	spec := d.Spec
	if spec.Replicas < 2 {
		t.Errorf("replicas %d; want several, so one stopping (an update, a node drain) leaves others taking webhooks", spec.Replicas)
	}
	ru := spec.Strategy.RollingUpdate
	unavailable, _, okU := intOrPercent(ru.MaxUnavailable)
	surge, _, okS := intOrPercent(ru.MaxSurge)
	if spec.Strategy.Type != "RollingUpdate" || !okU || unavailable != 0 || !okS || surge < 1 {
		t.Errorf("strategy %s, maxUnavailable %v, maxSurge %v; want RollingUpdate, 0 and at least 1: a new pod is ready before an old one stops",
			spec.Strategy.Type, ru.MaxUnavailable, ru.MaxSurge)
	}
	pod := spec.Template.Spec
	c, ports := checkPod(t, d)
	env := containerEnv(t, c)

	// No PVC: the queue is in Postgres. The spool directory holds the admin
	// socket only, on a scratch volume, since the root is read-only.
	if _, err := os.Stat(filepath.Join(dir, "pvc.yaml")); err == nil {
		t.Error("pvc.yaml: the replicas keep no state of their own")
	}
	mounts := containerMounts(c)
	scratch := false
	for _, v := range pod.Volumes {
		if v.PersistentVolumeClaim != nil {
			t.Errorf("volume %s is a PVC; the replicas keep no state of their own", v.Name)
		}
		if v.EmptyDir != nil && mounts[v.Name] == env["HOOKMAIL_SPOOL_DIR"] {
			scratch = true
		}
	}
	if !scratch {
		t.Errorf("HOOKMAIL_SPOOL_DIR %q is on no emptyDir; the admin socket needs a writable directory on the read-only root", env["HOOKMAIL_SPOOL_DIR"])
	}

	// The queue is Postgres, its URL from the Secret.
	var configMap struct {
		Data map[string]string `yaml:"data"`
	}
	readManifest(t, dir, "configmap.yaml", "ConfigMap", &configMap)
	var file struct {
		Queue struct {
			Backend string `yaml:"backend"`
		} `yaml:"queue"`
	}
	if err := yaml.Unmarshal([]byte(configMap.Data["hookmail.yaml"]), &file); err != nil {
		t.Fatal(err)
	}
	if file.Queue.Backend != "postgres" {
		t.Errorf("the ConfigMap's queue.backend is %q; want postgres", file.Queue.Backend)
	}
	cfg, secret := podConfig(t, dir, d, env,
		"HOOKMAIL_QUEUE_POSTGRES_URL", "postgres://hookmail:value-an-operator-set@postgres.example.com:5432/hookmail?sslmode=verify-full")
	if url := secret["HOOKMAIL_QUEUE_POSTGRES_URL"]; !strings.HasPrefix(url, "postgres://") {
		t.Errorf("the Secret's HOOKMAIL_QUEUE_POSTGRES_URL is %q; want a postgres:// URL", url)
	}
	checkListenPort(t, cfg, ports)

	// The stop: the readiness probe sees /readyz's 503 well within the
	// drain, and Kubernetes waits for the whole stop before SIGKILL.
	if cfg.Shutdown.Drain <= 0 {
		t.Error("shutdown.drain is 0: a pod would close its port while endpoints still send to it")
	}
	rp := c.ReadinessProbe
	if rp != nil {
		failAfter := time.Duration(max(rp.PeriodSeconds, 1)*max(rp.FailureThreshold, 1)) * time.Second
		if rp.PeriodSeconds == 0 || rp.FailureThreshold == 0 || failAfter >= cfg.Shutdown.Drain {
			t.Errorf("the readiness probe fails a draining pod after %s (periodSeconds %d x failureThreshold %d); want it well within shutdown.drain %s",
				failAfter, rp.PeriodSeconds, rp.FailureThreshold, cfg.Shutdown.Drain)
		}
	}
	checkGracePeriod(t, d, cfg)

	// Evictions take one pod at a time, and can proceed.
	var pdb podDisruptionBudget
	readManifest(t, dir, "poddisruptionbudget.yaml", "PodDisruptionBudget", &pdb)
	if pdb.APIVersion != "policy/v1" {
		t.Errorf("PodDisruptionBudget apiVersion %s; want policy/v1", pdb.APIVersion)
	}
	if !labelsMatch(pdb.Spec.Selector.MatchLabels, spec.Template.Metadata.Labels) {
		t.Errorf("the PodDisruptionBudget selects %v, not the pods (%v)", pdb.Spec.Selector.MatchLabels, spec.Template.Metadata.Labels)
	}
	maxU, pctU, okMaxU := intOrPercent(pdb.Spec.MaxUnavailable)
	minA, pctA, okMinA := intOrPercent(pdb.Spec.MinAvailable)
	switch {
	case okMaxU == okMinA:
		t.Errorf("the PodDisruptionBudget sets maxUnavailable %v and minAvailable %v; want exactly one", pdb.Spec.MaxUnavailable, pdb.Spec.MinAvailable)
	case okMaxU && (pctU || maxU < 1 || maxU >= spec.Replicas):
		t.Errorf("maxUnavailable %v; want a count from 1 to replicas-1, so evictions proceed and others stay", pdb.Spec.MaxUnavailable)
	case okMinA && (pctA || minA < 1 || minA >= spec.Replicas):
		t.Errorf("minAvailable %v; want a count from 1 to replicas-1, so evictions proceed and others stay", pdb.Spec.MinAvailable)
	}

	checkServices(t, dir, d)
}
