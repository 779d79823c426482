package deploy

import (
	"maps"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The parts of the manifests the test reads.
type (
	meta struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	}
	probe struct {
		HTTPGet struct {
			Path string `yaml:"path"`
			Port string `yaml:"port"`
		} `yaml:"httpGet"`
	}
	container struct {
		Args  []string `yaml:"args"`
		Ports []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		EnvFrom []struct {
			SecretRef struct {
				Name string `yaml:"name"`
			} `yaml:"secretRef"`
		} `yaml:"envFrom"`
		Env []struct {
			Name  string `yaml:"name"`
			Value string `yaml:"value"`
		} `yaml:"env"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
		} `yaml:"volumeMounts"`
		ReadinessProbe *probe `yaml:"readinessProbe"`
		LivenessProbe  *probe `yaml:"livenessProbe"`
		Resources      struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		SecurityContext struct {
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
			ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
			Capabilities             struct {
				Drop []string `yaml:"drop"`
			} `yaml:"capabilities"`
		} `yaml:"securityContext"`
	}
	deployment struct {
		Spec struct {
			Replicas int `yaml:"replicas"`
			Strategy struct {
				Type string `yaml:"type"`
			} `yaml:"strategy"`
			Selector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
			Template struct {
				Metadata meta `yaml:"metadata"`
				Spec     struct {
					SecurityContext struct {
						RunAsNonRoot bool `yaml:"runAsNonRoot"`
						RunAsUser    int  `yaml:"runAsUser"`
					} `yaml:"securityContext"`
					Containers []container `yaml:"containers"`
					Volumes    []struct {
						Name      string `yaml:"name"`
						ConfigMap *struct {
							Name string `yaml:"name"`
						} `yaml:"configMap"`
						PersistentVolumeClaim *struct {
							ClaimName string `yaml:"claimName"`
						} `yaml:"persistentVolumeClaim"`
					} `yaml:"volumes"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	service struct {
		Metadata meta `yaml:"metadata"`
		Spec     struct {
			Selector map[string]string `yaml:"selector"`
			Ports    []struct {
				Name       string `yaml:"name"`
				TargetPort string `yaml:"targetPort"`
			} `yaml:"ports"`
		} `yaml:"spec"`
	}
	serviceMonitor struct {
		Spec struct {
			Selector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
			JobLabel  string `yaml:"jobLabel"`
			Endpoints []struct {
				Port string `yaml:"port"`
				Path string `yaml:"path"`
			} `yaml:"endpoints"`
		} `yaml:"spec"`
	}
)

// readManifest decodes a kubernetes/ file of the given kind into v, and
// returns its metadata.
func readManifest(t *testing.T, file, kind string, v any) meta {
	t.Helper()
	b := []byte(readFile(t, filepath.Join("kubernetes", file)))
	var head struct {
		Kind     string `yaml:"kind"`
		Metadata meta   `yaml:"metadata"`
	}
	if err := yaml.Unmarshal(b, &head); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if head.Kind != kind {
		t.Fatalf("%s holds a %s; want a %s", file, head.Kind, kind)
	}
	if v != nil {
		if err := yaml.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
	return head.Metadata
}

const noCluster = `apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
contexts: [{name: none, context: {cluster: none}}]
current-context: none
`

func TestKubernetesKustomization(t *testing.T) {
	var k struct {
		Resources []string `yaml:"resources"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, "kubernetes/kustomization.yaml")), &k); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if name := filepath.Base(f); name != "kustomization.yaml" && !slices.Contains(k.Resources, name) {
			t.Errorf("kustomization.yaml does not list %s", name)
		}
	}
	for _, r := range k.Resources {
		if _, err := os.Stat(filepath.Join("kubernetes", r)); err != nil {
			t.Errorf("kustomization.yaml lists %s: %v", r, err)
		}
	}
	t.Run("kubectl kustomize", func(t *testing.T) {
		kubectl := findTool(t, "kubectl", "")
		// kustomize needs no cluster, but some kubectl builds (gcloud's
		// dispatcher) ask the configured server for its version first: give
		// them one on a loopback port where nothing listens.
		kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
		if err := os.WriteFile(kubeconfig, []byte(noCluster), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(kubectl, "kustomize", "kubernetes")
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kubectl kustomize: %v\n%s", err, out)
		}
	})
}

func TestKubernetesDeployment(t *testing.T) {
	var d deployment
	readManifest(t, "deployment.yaml", "Deployment", &d)
	spec := d.Spec
	if spec.Replicas != 1 || spec.Strategy.Type != "Recreate" {
		t.Errorf("replicas %d, strategy %q; want 1 and Recreate: one process locks the bbolt spool", spec.Replicas, spec.Strategy.Type)
	}
	pod := spec.Template.Spec
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

	// The volumes: the spool on the PVC, the config from the ConfigMap.
	mounts := map[string]string{} // volume: path
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	checkEnv(t, "deployment.yaml", env)
	pvc := readManifest(t, "pvc.yaml", "PersistentVolumeClaim", nil)
	cm := readManifest(t, "configmap.yaml", "ConfigMap", nil)
	var configDir string
	for _, v := range pod.Volumes {
		switch {
		case v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == pvc.Name:
			if mounts[v.Name] != env["HOOKMAIL_SPOOL_DIR"] {
				t.Errorf("the PVC is mounted at %q but HOOKMAIL_SPOOL_DIR is %q", mounts[v.Name], env["HOOKMAIL_SPOOL_DIR"])
			}
			if !strings.HasPrefix(env["HOOKMAIL_OUTBOX_DIR"], mounts[v.Name]+"/") {
				t.Errorf("HOOKMAIL_OUTBOX_DIR %q is not on the PVC; the root filesystem is read-only", env["HOOKMAIL_OUTBOX_DIR"])
			}
		case v.ConfigMap != nil && v.ConfigMap.Name == cm.Name:
			configDir = mounts[v.Name]
		}
	}
	i := slices.Index(c.Args, "--config")
	if i < 0 || i+1 >= len(c.Args) || configDir == "" || path.Dir(c.Args[i+1]) != configDir {
		t.Fatalf("args %v: want --config FILE in the ConfigMap's mount %q", c.Args, configDir)
	}

	// The config hookmail would start with: the ConfigMap's file, the
	// Secret's and the Deployment's env.
	var configMap struct {
		Data map[string]string `yaml:"data"`
	}
	readManifest(t, "configmap.yaml", "ConfigMap", &configMap)
	body, ok := configMap.Data[path.Base(c.Args[i+1])]
	if !ok {
		t.Fatalf("the ConfigMap has no key %s (has %v)", path.Base(c.Args[i+1]), slices.Collect(maps.Keys(configMap.Data)))
	}
	var secret struct {
		StringData map[string]string `yaml:"stringData"`
	}
	secretMeta := readManifest(t, "secret.yaml", "Secret", &secret)
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
	for k := range secret.StringData {
		env[k] = "value-an-operator-set-for-" + strings.ToLower(k)
	}
	file := filepath.Join(t.TempDir(), "hookmail.yaml")
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := loadConfig(t, "the ConfigMap's hookmail.yaml", file, env)
	_, listenPort, _ := net.SplitHostPort(cfg.Listen)
	if strconv.Itoa(ports["http"]) != listenPort {
		t.Errorf("container port http is %d but hookmail listens on %s", ports["http"], cfg.Listen)
	}

	// The Service selects the pod, and the ServiceMonitor the Service.
	if !labelsMatch(spec.Selector.MatchLabels, spec.Template.Metadata.Labels) {
		t.Errorf("the selector %v does not select the pod's labels %v", spec.Selector.MatchLabels, spec.Template.Metadata.Labels)
	}
	var svc service
	readManifest(t, "service.yaml", "Service", &svc)
	if !labelsMatch(svc.Spec.Selector, spec.Template.Metadata.Labels) {
		t.Errorf("the Service selects %v, not the pod (%v)", svc.Spec.Selector, spec.Template.Metadata.Labels)
	}
	if len(svc.Spec.Ports) != 1 || ports[svc.Spec.Ports[0].TargetPort] == 0 {
		t.Errorf("the Service's ports %+v do not target a named container port", svc.Spec.Ports)
	}
	var sm serviceMonitor
	readManifest(t, "servicemonitor.yaml", "ServiceMonitor", &sm)
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
