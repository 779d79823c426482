package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
		PeriodSeconds    int `yaml:"periodSeconds"`
		FailureThreshold int `yaml:"failureThreshold"`
	}
	container struct {
		Args      []string `yaml:"args"`
		Lifecycle struct {
			PreStop *struct {
				Exec  *struct{} `yaml:"exec"`
				Sleep *struct {
					Seconds int `yaml:"seconds"`
				} `yaml:"sleep"`
			} `yaml:"preStop"`
		} `yaml:"lifecycle"`
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
				Type          string `yaml:"type"`
				RollingUpdate struct {
					// An int or a percentage.
					MaxUnavailable any `yaml:"maxUnavailable"`
					MaxSurge       any `yaml:"maxSurge"`
				} `yaml:"rollingUpdate"`
			} `yaml:"strategy"`
			Selector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
			Template struct {
				Metadata meta `yaml:"metadata"`
				Spec     struct {
					TerminationGracePeriodSeconds *int `yaml:"terminationGracePeriodSeconds"`
					SecurityContext               struct {
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
						EmptyDir *struct{} `yaml:"emptyDir"`
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

// readManifest decodes the file of the given kind in dir (kubernetes or
// kubernetes-postgres) into v, and returns its metadata.
func readManifest(t *testing.T, dir, file, kind string, v any) meta {
	t.Helper()
	b := []byte(readFile(t, filepath.Join(dir, file)))
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

// kustomizations are the Kubernetes variants: one replica with its spool
// on a volume, and several sharing a queue in Postgres.
var kustomizations = []string{"kubernetes", "kubernetes-postgres"}

func TestKubernetesKustomization(t *testing.T) {
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) { checkKustomization(t, dir) })
	}
}

// checkKustomization checks that dir's kustomization.yaml lists every
// manifest beside it and nothing else, and that kubectl kustomize builds it.
func checkKustomization(t *testing.T, dir string) {
	var k struct {
		Resources []string `yaml:"resources"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, filepath.Join(dir, "kustomization.yaml"))), &k); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if name := filepath.Base(f); name != "kustomization.yaml" && !slices.Contains(k.Resources, name) {
			t.Errorf("kustomization.yaml does not list %s", name)
		}
	}
	for _, r := range k.Resources {
		if _, err := os.Stat(filepath.Join(dir, r)); err != nil {
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
		cmd := exec.Command(kubectl, "kustomize", dir)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kubectl kustomize: %v\n%s", err, out)
		}
	})
}

func TestKubernetesDeployment(t *testing.T) {
	const dir = "kubernetes"
	var d deployment
	readManifest(t, dir, "deployment.yaml", "Deployment", &d)
	spec := d.Spec
	if spec.Replicas != 1 || spec.Strategy.Type != "Recreate" {
		t.Errorf("replicas %d, strategy %q; want 1 and Recreate: one process locks the bbolt spool", spec.Replicas, spec.Strategy.Type)
	}
	pod := spec.Template.Spec
	c, ports := checkPod(t, d)
	env := containerEnv(t, c)

	// The volumes: the spool on the PVC, the config from the ConfigMap.
	pvc := readManifest(t, dir, "pvc.yaml", "PersistentVolumeClaim", nil)
	mounts := containerMounts(c)
	found := false
	for _, v := range pod.Volumes {
		if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == pvc.Name {
			found = true
			if mounts[v.Name] != env["HOOKMAIL_SPOOL_DIR"] {
				t.Errorf("the PVC is mounted at %q but HOOKMAIL_SPOOL_DIR is %q", mounts[v.Name], env["HOOKMAIL_SPOOL_DIR"])
			}
			if !strings.HasPrefix(env["HOOKMAIL_OUTBOX_DIR"], mounts[v.Name]+"/") {
				t.Errorf("HOOKMAIL_OUTBOX_DIR %q is not on the PVC; the root filesystem is read-only", env["HOOKMAIL_OUTBOX_DIR"])
			}
		}
	}
	if !found {
		t.Errorf("no volume holds the PVC %s", pvc.Name)
	}

	cfg, _ := podConfig(t, dir, d, env)
	checkListenPort(t, cfg, ports)
	checkGracePeriod(t, d, cfg)
	checkServices(t, dir, d)
}
