package deploy

import (
	"bufio"
	"encoding/json"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/hookmail/hookmail/config/configtest"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ENV, ...
	args string
}

// dockerStage is one FROM and the instructions after it.
type dockerStage struct {
	from  string
	instr []instruction
}

func parseDockerfile(t *testing.T, path string) []dockerStage {
	t.Helper()
	var stages []dockerStage
	var pending string
	sc := bufio.NewScanner(strings.NewReader(readFile(t, path)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && pending == "") {
			continue
		}
		if rest, ok := strings.CutSuffix(line, `\`); ok {
			pending += rest + " "
			continue
		}
		line, pending = pending+line, ""
		cmd, args, _ := strings.Cut(line, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		switch {
		case in.cmd == "FROM":
			stages = append(stages, dockerStage{from: strings.Fields(strings.ReplaceAll(in.args, "--platform=$BUILDPLATFORM", ""))[0]})
		case len(stages) == 0 && in.cmd != "ARG":
			t.Fatalf("%s: %s before the first FROM", path, in.cmd)
		case len(stages) > 0:
			stages[len(stages)-1].instr = append(stages[len(stages)-1].instr, in)
		}
	}
	return stages
}

// args returns the arguments of every cmd instruction in the stage.
func (s dockerStage) args(cmd string) []string {
	var out []string
	for _, in := range s.instr {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

// imageEnv is the final stage's ENV, as key=value pairs.
func (s dockerStage) env() map[string]string {
	env := map[string]string{}
	for _, a := range s.args("ENV") {
		for _, kv := range strings.Fields(a) {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
	}
	return env
}

func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, "Dockerfile")
	if len(stages) < 2 {
		t.Fatalf("%d stages; want a build stage and a runtime stage", len(stages))
	}
	final := stages[len(stages)-1]
	if final.from != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("runtime image %s; want gcr.io/distroless/static-debian12:nonroot (CA certificates, tzdata, no shell)", final.from)
	}
	if !slices.ContainsFunc(stages[0].args("RUN"), func(a string) bool { return strings.Contains(a, "deploy/build.sh") }) {
		t.Error("the build stage does not build with deploy/build.sh, so its -ldflags may drift from a hand build")
	}

	users := final.args("USER")
	if len(users) == 0 {
		t.Fatal("no USER: the image would run as root")
	}
	uid, _, _ := strings.Cut(users[len(users)-1], ":")
	if !regexp.MustCompile(`^[1-9][0-9]*$`).MatchString(uid) {
		t.Errorf("USER %s: want a numeric non-root uid, which Kubernetes' runAsNonRoot can check", users[len(users)-1])
	}
	if hc := final.args("HEALTHCHECK"); len(hc) != 1 || hc[0] != "NONE" {
		t.Errorf("HEALTHCHECK %v; want NONE (distroless has no curl, hookmail no health-check command)", hc)
	}

	env := final.env()
	checkEnv(t, "Dockerfile", env)
	volumes := final.args("VOLUME")
	spool := env["HOOKMAIL_SPOOL_DIR"]
	if len(volumes) != 1 || spool == "" || !strings.Contains(volumes[0], `"`+spool+`"`) {
		t.Errorf("VOLUME %v and HOOKMAIL_SPOOL_DIR=%q: the spool must be on the volume", volumes, spool)
	}
	if outbox := env["HOOKMAIL_OUTBOX_DIR"]; !strings.HasPrefix(outbox, spool+"/") {
		t.Errorf("HOOKMAIL_OUTBOX_DIR=%q is not on the spool volume %s, where the non-root user can write", outbox, spool)
	}

	entry := final.args("ENTRYPOINT")
	var argv []string
	if len(entry) != 1 || json.Unmarshal([]byte(entry[0]), &argv) != nil || len(argv) == 0 {
		t.Fatalf("ENTRYPOINT %v: want the exec (JSON) form; there is no shell to run the other", entry)
	}
	if !slices.ContainsFunc(final.args("COPY"), func(a string) bool { return strings.HasSuffix(a, " "+argv[0]) }) {
		t.Errorf("ENTRYPOINT runs %s, which no COPY puts there", argv[0])
	}
	_, port, _ := net.SplitHostPort(configtest.Default(t).Listen)
	if expose := final.args("EXPOSE"); !slices.Contains(expose, port) {
		t.Errorf("EXPOSE %v; want hookmail's default port %s", expose, port)
	}
}

// TestDockerignore checks that the build context keeps every file the build
// reads: the main package's Go and embedded files, go.mod, go.sum and
// deploy/build.sh. The files come from go list, so a new package is covered.
func TestDockerignore(t *testing.T) {
	var patterns []string
	for line := range strings.Lines(readFile(t, "Dockerfile.dockerignore")) {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, line)
		}
	}
	cmd := exec.Command("go", "list", "-deps", "-f",
		`{{if and .Module .Module.Main}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}
{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}
{{end}}{{end}}`, ".")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	needed := []string{"go.mod", "go.sum", "deploy/build.sh"}
	for _, f := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, f)
		if err != nil {
			t.Fatal(err)
		}
		needed = append(needed, filepath.ToSlash(rel))
	}
	if len(needed) < 10 {
		t.Fatalf("go list found only %v", needed)
	}
	for _, f := range needed {
		if dockerIgnored(patterns, f) {
			t.Errorf("Dockerfile.dockerignore leaves %s out of the build context, but the build needs it", f)
		}
	}
	if !dockerIgnored(patterns, ".git/HEAD") {
		t.Error(".git is in the build context; the version comes in as build arguments instead")
	}
}

// dockerIgnored applies .dockerignore rules to path: a pattern matches the
// path or a directory above it, a leading ! keeps what it matches, and the
// last matching pattern wins.
func dockerIgnored(patterns []string, path string) bool {
	ignored := false
	for _, p := range patterns {
		keep := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(filepath.Clean(strings.TrimPrefix(p, "!")), "/")
		for dir := path; dir != "."; dir = filepath.Dir(dir) {
			if ok, _ := filepath.Match(p, dir); ok {
				ignored = !keep
				break
			}
		}
	}
	return ignored
}

// composeFile is the part of compose.yaml the test reads.
type composeFile struct {
	Services map[string]struct {
		Build struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
		Image       string            `yaml:"image"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
		Ports       []string          `yaml:"ports"`
	} `yaml:"services"`
}

// composeDefault resolves ${VAR:-default} to its default, as compose does
// with VAR unset.
var composeDefault = regexp.MustCompile(`\$\{[A-Z0-9_]+:-([^}]*)\}`)

func TestCompose(t *testing.T) {
	var c composeFile
	if err := yaml.Unmarshal([]byte(readFile(t, "compose.yaml")), &c); err != nil {
		t.Fatal(err)
	}
	hm, ok := c.Services["hookmail"]
	if !ok {
		t.Fatal("no hookmail service")
	}
	if mp := c.Services["mailpit"]; !strings.HasPrefix(mp.Image, "axllent/mailpit:") {
		t.Errorf("mailpit image %q; want a pinned axllent/mailpit", mp.Image)
	}
	if _, err := os.Stat(filepath.Join(hm.Build.Context, hm.Build.Dockerfile)); err != nil {
		t.Errorf("hookmail build: %v", err)
	}
	for name, s := range c.Services {
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("%s publishes %s beyond localhost; a trial should not be reachable from the network", name, p)
			}
		}
	}

	i := slices.Index(hm.Command, "--config")
	if i < 0 || i+1 >= len(hm.Command) {
		t.Fatalf("hookmail command %v has no --config FILE", hm.Command)
	}
	configPath := hm.Command[i+1]
	mounts := map[string]string{} // container path: host path
	for _, v := range hm.Volumes {
		parts := strings.Split(v, ":")
		mounts[parts[1]] = parts[0]
	}
	hostConfig, ok := mounts[configPath]
	if !ok {
		t.Fatalf("--config %s is not mounted (volumes %v)", configPath, hm.Volumes)
	}
	final := parseDockerfile(t, "Dockerfile")
	env := final[len(final)-1].env()
	if _, ok := mounts[env["HOOKMAIL_SPOOL_DIR"]]; !ok {
		t.Errorf("no volume at the spool %s: the queue would not survive the container", env["HOOKMAIL_SPOOL_DIR"])
	}
	for k, v := range hm.Environment {
		env[k] = composeDefault.ReplaceAllString(v, "$1")
	}
	checkEnv(t, "compose.yaml", hm.Environment)
	cfg := loadConfig(t, "compose.yaml's hookmail", hostConfig, env)
	if _, ok := c.Services[cfg.SMTP.Host]; !ok {
		t.Errorf("smtp.host %q is no service of the compose file", cfg.SMTP.Host)
	}
}

// composePostgresFile is the part of compose-postgres.yaml the test reads.
type composePostgresFile struct {
	Services map[string]struct {
		Build struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
		Image       string            `yaml:"image"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
		Ports       []string          `yaml:"ports"`
		DependsOn   map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
		Healthcheck *struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
}

// TestComposePostgres: two hookmail instances, each on its own localhost
// port, share the Postgres service's database as their queue (the URL
// names its host, user, password and database), start once it is healthy,
// and deliver to Mailpit.
func TestComposePostgres(t *testing.T) {
	var c composePostgresFile
	if err := yaml.Unmarshal([]byte(readFile(t, "compose-postgres.yaml")), &c); err != nil {
		t.Fatal(err)
	}
	pg, ok := c.Services["postgres"]
	if !ok || pg.Image != "postgres:15" {
		t.Fatalf("postgres service %+v; want image postgres:15", pg)
	}
	if pg.Healthcheck == nil || !strings.Contains(strings.Join(pg.Healthcheck.Test, " "), "pg_isready") {
		t.Error("postgres has no pg_isready healthcheck, so hookmail cannot wait until it takes connections")
	}
	pgEnv := map[string]string{}
	for k, v := range pg.Environment {
		pgEnv[k] = composeDefault.ReplaceAllString(v, "$1")
	}
	if mp := c.Services["mailpit"]; !strings.HasPrefix(mp.Image, "axllent/mailpit:") {
		t.Errorf("mailpit image %q; want a pinned axllent/mailpit", mp.Image)
	}
	final := parseDockerfile(t, "Dockerfile")
	imageEnv := final[len(final)-1].env()
	hostPorts := map[string]string{}
	var instances []string
	for name, s := range c.Services {
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("%s publishes %s beyond localhost; a trial should not be reachable from the network", name, p)
			}
		}
		if !strings.HasPrefix(name, "hookmail") {
			continue
		}
		instances = append(instances, name)
		if _, err := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile)); err != nil {
			t.Errorf("%s build: %v", name, err)
		}
		if dep := s.DependsOn["postgres"]; dep.Condition != "service_healthy" {
			t.Errorf("%s depends on postgres with condition %q; want service_healthy", name, dep.Condition)
		}
		checkEnv(t, "compose-postgres.yaml's "+name, s.Environment)
		env := maps.Clone(imageEnv)
		for k, v := range s.Environment {
			env[k] = composeDefault.ReplaceAllString(v, "$1")
		}
		u, err := url.Parse(env["HOOKMAIL_QUEUE_POSTGRES_URL"])
		if err != nil || u.Scheme != "postgres" {
			t.Fatalf("%s: HOOKMAIL_QUEUE_POSTGRES_URL %q is not a postgres:// URL (%v)", name, env["HOOKMAIL_QUEUE_POSTGRES_URL"], err)
		}
		password, _ := u.User.Password()
		if u.Hostname() != "postgres" || u.User.Username() != pgEnv["POSTGRES_USER"] || password != pgEnv["POSTGRES_PASSWORD"] || strings.TrimPrefix(u.Path, "/") != pgEnv["POSTGRES_DB"] {
			t.Errorf("%s: the queue URL names host %s, user %s, database %s, which the postgres service (user %s, database %s) does not have, or another password",
				name, u.Hostname(), u.User.Username(), u.Path, pgEnv["POSTGRES_USER"], pgEnv["POSTGRES_DB"])
		}

		i := slices.Index(s.Command, "--config")
		if i < 0 || i+1 >= len(s.Command) {
			t.Fatalf("%s command %v has no --config FILE", name, s.Command)
		}
		hostConfig := ""
		for _, v := range s.Volumes {
			if parts := strings.Split(v, ":"); len(parts) >= 2 && parts[1] == s.Command[i+1] {
				hostConfig = parts[0]
			}
		}
		if hostConfig == "" {
			t.Fatalf("%s: --config %s is not mounted (volumes %v)", name, s.Command[i+1], s.Volumes)
		}
		var file struct {
			Queue struct {
				Backend string `yaml:"backend"`
			} `yaml:"queue"`
		}
		if err := yaml.Unmarshal([]byte(readFile(t, hostConfig)), &file); err != nil || file.Queue.Backend != "postgres" {
			t.Errorf("%s: %s's queue.backend is %q (%v); want postgres", name, hostConfig, file.Queue.Backend, err)
		}
		cfg := loadConfig(t, "compose-postgres.yaml's "+name, hostConfig, env)
		if _, ok := c.Services[cfg.SMTP.Host]; !ok {
			t.Errorf("%s: smtp.host %q is no service of the compose file", name, cfg.SMTP.Host)
		}
		_, port, _ := net.SplitHostPort(cfg.Listen)
		if len(s.Ports) != 1 || !strings.HasSuffix(s.Ports[0], ":"+port) {
			t.Errorf("%s publishes %v; want one port, to hookmail's %s", name, s.Ports, port)
			continue
		}
		host := strings.TrimSuffix(s.Ports[0], ":"+port)
		if other, taken := hostPorts[host]; taken {
			t.Errorf("%s and %s both publish %s", name, other, host)
		}
		hostPorts[host] = name
	}
	if len(instances) < 2 {
		t.Errorf("hookmail instances %v; want two sharing the queue", instances)
	}
}
