package deploy

import (
	"maps"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay/app"
)

// Checks that every Kubernetes variant's manifests must pass.

// checkPod checks what every hookmail Deployment's pod must be: hookmail
// alone, as non-root, read-only and without capabilities, with resources,
// and probed on /readyz (readiness) and /healthz (liveness) at named ports.
// It returns the container and its ports by name.
func checkPod(t *testing.T, d deployment) (container, map[string]int) {
	t.Helper()
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers; want hookmail alone", len(pod.Containers))
	}
	c := pod.Containers[0]
	if !pod.SecurityContext.RunAsNonRoot || pod.SecurityContext.RunAsUser == 0 {
		t.Error("the pod may run as root: want runAsNonRoot and a non-zero runAsUser")
	}
	sc := c.SecurityContext
	if !sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) {
		t.Errorf("container securityContext %+v; want a read-only root, no privilege escalation, every capability dropped", sc)
	}
	for _, r := range []string{"cpu", "memory"} {
		if c.Resources.Requests[r] == "" || c.Resources.Limits[r] == "" {
			t.Errorf("no %s request or limit", r)
		}
	}
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for name, want := range map[string]struct {
		probe *probe
		path  string
	}{"readiness": {c.ReadinessProbe, "/readyz"}, "liveness": {c.LivenessProbe, "/healthz"}} {
		switch {
		case want.probe == nil:
			t.Errorf("no %s probe", name)
		case want.probe.HTTPGet.Path != want.path || ports[want.probe.HTTPGet.Port] == 0:
			t.Errorf("%s probe GET %s on port %q; want %s on a named container port", name, want.probe.HTTPGet.Path, want.probe.HTTPGet.Port, want.path)
		}
	}
	if ps := c.Lifecycle.PreStop; ps != nil && ps.Exec != nil {
		t.Error("a preStop exec hook: the image has no shell or sleep to run; hookmail drains by itself (shutdown.drain)")
	}
	return c, ports
}

// containerEnv is the container's env by name, each a known variable.
func containerEnv(t *testing.T, c container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	checkEnv(t, "deployment.yaml", env)
	return env
}

// containerMounts maps each volume the container mounts to its path.
func containerMounts(c container) map[string]string {
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	return mounts
}

// podConfig loads the config the pod's hookmail would start with: the file
// --config names in the ConfigMap's mount, with the Secret (envFrom, its
// placeholders replaced by values an operator would set, or by
// operatorValues) and env (the Deployment's own) as the environment. It
// returns the config and the Secret's variables.
func podConfig(t *testing.T, dir string, d deployment, env map[string]string, operatorValues ...string) (*config.Config, map[string]string) {
	t.Helper()
	c := d.Spec.Template.Spec.Containers[0]
	cm := readManifest(t, dir, "configmap.yaml", "ConfigMap", nil)
	mounts := containerMounts(c)
	var configDir string
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == cm.Name {
			configDir = mounts[v.Name]
		}
	}
	i := slices.Index(c.Args, "--config")
	if i < 0 || i+1 >= len(c.Args) || configDir == "" || path.Dir(c.Args[i+1]) != configDir {
		t.Fatalf("args %v: want --config FILE in the ConfigMap's mount %q", c.Args, configDir)
	}
	var configMap struct {
		Data map[string]string `yaml:"data"`
	}
	readManifest(t, dir, "configmap.yaml", "ConfigMap", &configMap)
	body, ok := configMap.Data[path.Base(c.Args[i+1])]
	if !ok {
		t.Fatalf("the ConfigMap has no key %s (has %v)", path.Base(c.Args[i+1]), slices.Collect(maps.Keys(configMap.Data)))
	}
	var secret struct {
		StringData map[string]string `yaml:"stringData"`
	}
	secretMeta := readManifest(t, dir, "secret.yaml", "Secret", &secret)
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].SecretRef.Name != secretMeta.Name {
		t.Errorf("envFrom %+v; want the Secret %s", c.EnvFrom, secretMeta.Name)
	}
	checkEnv(t, "secret.yaml", secret.StringData)
	for _, k := range []string{"HOOKMAIL_WEBHOOK_SECRETS", "HOOKMAIL_SMTP_PASSWORD"} {
		if secret.StringData[k] == "" {
			t.Errorf("the Secret has no %s", k)
		}
	}
	// The Secret ships placeholders, which hookmail refuses until the
	// operator replaces them (config's TestPlaceholderCredentialsAreRefused);
	// the ConfigMap is checked with values an operator would set.
	env = maps.Clone(env)
	for k := range secret.StringData {
		env[k] = "value-an-operator-set-for-" + strings.ToLower(k)
	}
	for i := 0; i+1 < len(operatorValues); i += 2 {
		env[operatorValues[i]] = operatorValues[i+1]
	}
	file := filepath.Join(t.TempDir(), "hookmail.yaml")
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return loadConfig(t, dir+"'s ConfigMap hookmail.yaml", file, env), secret.StringData
}

// checkListenPort checks that the container port named http is the one
// hookmail listens on.
func checkListenPort(t *testing.T, cfg *config.Config, ports map[string]int) {
	t.Helper()
	_, listenPort, _ := net.SplitHostPort(cfg.Listen)
	if strconv.Itoa(ports["http"]) != listenPort {
		t.Errorf("container port http is %d but hookmail listens on %s", ports["http"], cfg.Listen)
	}
}

// checkGracePeriod checks that Kubernetes waits for the whole stop before
// it sends SIGKILL: a preStop sleep, the drain, the webhooks in flight and
// the email in hand.
func checkGracePeriod(t *testing.T, d deployment, cfg *config.Config) {
	t.Helper()
	grace := d.Spec.Template.Spec.TerminationGracePeriodSeconds
	if grace == nil {
		t.Error("no terminationGracePeriodSeconds; Kubernetes' 30 s default is shorter than hookmail's stop")
		return
	}
	var preStop time.Duration
	if ps := d.Spec.Template.Spec.Containers[0].Lifecycle.PreStop; ps != nil && ps.Sleep != nil {
		preStop = time.Duration(ps.Sleep.Seconds) * time.Second
	}
	need := preStop + cfg.Shutdown.Drain + app.ShutdownTimeout + cfg.SMTP.Timeout
	if got := time.Duration(*grace) * time.Second; got < need {
		t.Errorf("terminationGracePeriodSeconds %d; want at least %s (preStop %s + shutdown.drain %s + %s + smtp.timeout %s)",
			*grace, need, preStop, cfg.Shutdown.Drain, app.ShutdownTimeout, cfg.SMTP.Timeout)
	}
}

// checkServices checks that the Service selects the Deployment's pods on a
// named port, and that the ServiceMonitor scrapes the Service as job
// hookmail, which the alert rules select.
func checkServices(t *testing.T, dir string, d deployment) {
	t.Helper()
	spec := d.Spec
	ports := map[string]int{}
	for _, p := range spec.Template.Spec.Containers[0].Ports {
		ports[p.Name] = p.ContainerPort
	}
	if !labelsMatch(spec.Selector.MatchLabels, spec.Template.Metadata.Labels) {
		t.Errorf("the selector %v does not select the pod's labels %v", spec.Selector.MatchLabels, spec.Template.Metadata.Labels)
	}
	var svc service
	readManifest(t, dir, "service.yaml", "Service", &svc)
	if !labelsMatch(svc.Spec.Selector, spec.Template.Metadata.Labels) {
		t.Errorf("the Service selects %v, not the pod (%v)", svc.Spec.Selector, spec.Template.Metadata.Labels)
	}
	if len(svc.Spec.Ports) != 1 || ports[svc.Spec.Ports[0].TargetPort] == 0 {
		t.Fatalf("the Service's ports %+v do not target a named container port", svc.Spec.Ports)
	}
	var sm serviceMonitor
	readManifest(t, dir, "servicemonitor.yaml", "ServiceMonitor", &sm)
	if !labelsMatch(sm.Spec.Selector.MatchLabels, svc.Metadata.Labels) {
		t.Errorf("the ServiceMonitor selects %v, not the Service (%v)", sm.Spec.Selector.MatchLabels, svc.Metadata.Labels)
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != svc.Spec.Ports[0].Name || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("the ServiceMonitor's endpoints %+v; want /metrics on the Service's port", sm.Spec.Endpoints)
	}
	// Prometheus names the job after the Service; the alert rules expect
	// job="hookmail".
	if svc.Metadata.Name != "hookmail" || sm.Spec.JobLabel != "" {
		t.Errorf("the scrape job would not be named hookmail (Service %q, jobLabel %q), which the alert rules select", svc.Metadata.Name, sm.Spec.JobLabel)
	}
}

// labelsMatch reports whether every selector label is among labels.
func labelsMatch(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}
