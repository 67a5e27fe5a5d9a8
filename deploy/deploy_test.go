// Package deploy_test checks the Kubernetes base in this directory against
// the code it deploys: every manifest decodes strictly into the Kubernetes
// API types, every flag and environment variable a container sets is one
// its binary has, probes and ports agree, what refers to a Secret,
// ConfigMap or Deployment finds it, and every metric the dashboard charts
// is one the services export.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/anomalyd/anomalyd/internal/baseline"
	"github.com/anomalyd/anomalyd/internal/detector"
	"github.com/anomalyd/anomalyd/internal/policy"
	"github.com/anomalyd/anomalyd/internal/publisher"
	"github.com/anomalyd/anomalyd/internal/service"
)

// kustomization is what the test reads of kustomization.yaml; strict
// decoding refuses any field it does not name.
type kustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Labels     []struct {
		Pairs map[string]string `json:"pairs"`
	} `json:"labels"`
	Resources []string `json:"resources"`
	Images    []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
	ConfigMapGenerator []struct {
		Name    string   `json:"name"`
		Files   []string `json:"files"`
		Options struct {
			DisableNameSuffixHash bool              `json:"disableNameSuffixHash"`
			Labels                map[string]string `json:"labels"`
		} `json:"options"`
	} `json:"configMapGenerator"`
}

// objects are the base's manifests, decoded.
type objects struct {
	deployments []appsv1.Deployment
	services    []corev1.Service
	pdbs        []policyv1.PodDisruptionBudget
	secrets     []corev1.Secret
	configMaps  map[string]map[string]string // name: file name: contents, generated ones too
}

func load(t *testing.T) objects {
	t.Helper()
	var k kustomization
	if err := yaml.UnmarshalStrict(read(t, "kustomization.yaml"), &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if k.Kind != "Kustomization" || len(k.Resources) == 0 {
		t.Fatalf("kustomization.yaml: kind %q, %d resources", k.Kind, len(k.Resources))
	}
	o := objects{configMaps: make(map[string]map[string]string)}
	for _, g := range k.ConfigMapGenerator {
		files := make(map[string]string)
		for _, f := range g.Files {
			files[filepath.Base(f)] = string(read(t, f))
		}
		o.configMaps[g.Name] = files
	}
	for _, res := range k.Resources {
		for i, doc := range bytes.Split(read(t, res), []byte("\n---\n")) {
			var meta struct {
				Kind string `json:"kind"`
			}
			if err := yaml.Unmarshal(doc, &meta); err != nil {
				t.Fatalf("%s, document %d: %v", res, i+1, err)
			}
			var err error
			switch meta.Kind {
			case "Deployment":
				var d appsv1.Deployment
				err = yaml.UnmarshalStrict(doc, &d)
				o.deployments = append(o.deployments, d)
			case "Service":
				var s corev1.Service
				err = yaml.UnmarshalStrict(doc, &s)
				o.services = append(o.services, s)
			case "PodDisruptionBudget":
				var p policyv1.PodDisruptionBudget
				err = yaml.UnmarshalStrict(doc, &p)
				o.pdbs = append(o.pdbs, p)
			case "Secret":
				var s corev1.Secret
				err = yaml.UnmarshalStrict(doc, &s)
				o.secrets = append(o.secrets, s)
			case "ConfigMap":
				var c corev1.ConfigMap
				err = yaml.UnmarshalStrict(doc, &c)
				o.configMaps[c.Name] = c.Data
			default:
				t.Fatalf("%s, document %d: kind %q is not one the test knows", res, i+1, meta.Kind)
			}
			if err != nil {
				t.Fatalf("%s, document %d (%s): %v", res, i+1, meta.Kind, err)
			}
		}
	}
	return o
}

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// binaryFlags builds the services and returns, per binary, its flags and
// their environment variables, as its -h lists them.
func binaryFlags(t *testing.T) map[string]map[string]bool {
	t.Helper()
	dir := t.TempDir()
	names := []string{"baseline", "detector", "publisher"}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, n := range names {
		args = append(args, "github.com/anomalyd/anomalyd/cmd/"+n)
	}
	if out, err := exec.CommandContext(t.Context(), "go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	flagLine := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)
	envName := regexp.MustCompile(`\(env (ANOMALYD_[A-Z0-9_]+)\)`)
	out := make(map[string]map[string]bool)
	for _, n := range names {
		cmd := exec.CommandContext(t.Context(), filepath.Join(dir, n), "-h")
		help, _ := cmd.CombinedOutput() // -h exits 0; the listing is what counts
		known := make(map[string]bool)
		for _, m := range flagLine.FindAllStringSubmatch(string(help), -1) {
			known["-"+m[1]] = true
		}
		for _, m := range envName.FindAllStringSubmatch(string(help), -1) {
			known[m[1]] = true
		}
		if !known["-listen"] || !known["ANOMALYD_LISTEN"] {
			t.Fatalf("%s -h lists no -listen: %s", n, help)
		}
		out[n] = known
	}
	return out
}

// runtimeEnv are the variables of the Go runtime a container may set.
var runtimeEnv = []string{"GOMEMLIMIT", "GOMAXPROCS", "GOGC"}

func TestManifests(t *testing.T) {
	o := load(t)
	flags := binaryFlags(t)
	secretKeys := make(map[string]map[string]bool)
	for _, s := range o.secrets {
		keys := make(map[string]bool)
		for k := range s.StringData {
			keys[k] = true
		}
		for k := range s.Data {
			keys[k] = true
		}
		secretKeys[s.Name] = keys
	}
	// The image puts every command, static, in /usr/local/bin, where the
	// containers run them, and runs as a user without privileges.
	docker := string(read(t, "../Dockerfile"))
	for _, want := range []string{"CGO_ENABLED=0", "./cmd/...", "COPY --from=build /out/ /usr/local/bin/", "USER nonroot"} {
		if !strings.Contains(docker, want) {
			t.Errorf("the Dockerfile lacks %q", want)
		}
	}
	if len(o.deployments) != 3 {
		t.Fatalf("%d Deployments, want the three services'", len(o.deployments))
	}
	for _, d := range o.deployments {
		t.Run(d.Name, func(t *testing.T) {
			pod := d.Spec.Template
			if d.Spec.Selector == nil || !matches(d.Spec.Selector.MatchLabels, pod.Labels) {
				t.Errorf("the selector %v does not select the pods %v", d.Spec.Selector, pod.Labels)
			}
			if len(pod.Spec.Containers) != 1 {
				t.Fatalf("%d containers", len(pod.Spec.Containers))
			}
			c := pod.Spec.Containers[0]
			if len(c.Command) != 1 {
				t.Fatalf("command %q: want the binary alone", c.Command)
			}
			bin := filepath.Base(c.Command[0])
			known := flags[bin]
			if known == nil || c.Command[0] != "/usr/local/bin/"+bin {
				t.Fatalf("command %q is not a service of the image (/usr/local/bin/baseline, detector or publisher)", c.Command)
			}
			for _, a := range c.Args {
				if strings.HasPrefix(a, "-") && !known[strings.SplitN(a, "=", 2)[0]] {
					t.Errorf("argument %s: %s has no such flag", a, bin)
				}
			}
			listen := ""
			for _, e := range c.Env {
				switch {
				case slices.Contains(runtimeEnv, e.Name):
				case !known[e.Name]:
					t.Errorf("env %s: %s reads no such variable", e.Name, bin)
				}
				if e.Name == "ANOMALYD_LISTEN" {
					listen = e.Value
				}
				if ref := e.ValueFrom; ref != nil && ref.SecretKeyRef != nil {
					if !secretKeys[ref.SecretKeyRef.Name][ref.SecretKeyRef.Key] {
						t.Errorf("env %s: no key %q in a Secret %q of the base", e.Name, ref.SecretKeyRef.Key, ref.SecretKeyRef.Name)
					}
				}
			}
			if !known["-token"] || !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == service.EnvName("token") }) {
				t.Error("no token: /metrics and the APIs would be open")
			}
			// Probes and ports: the port named http is the one -listen
			// binds, the probes ask it for the health paths, and
			// Prometheus's annotation names it.
			var port int32
			for _, p := range c.Ports {
				if p.Name == "http" {
					port = p.ContainerPort
				}
			}
			if _, lp, _ := strings.Cut(listen, ":"); port == 0 || lp != strconv.Itoa(int(port)) {
				t.Errorf("-listen %q (ANOMALYD_LISTEN) and the port named http, %d, differ", listen, port)
			}
			for _, p := range []struct {
				probe *corev1.Probe
				path  string
			}{{c.LivenessProbe, "/healthz"}, {c.ReadinessProbe, "/readyz"}} {
				if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "http" {
					t.Errorf("want a probe of %s on the port http, got %+v", p.path, p.probe)
				}
			}
			if pod.Annotations["prometheus.io/port"] != strconv.Itoa(int(port)) || pod.Annotations["prometheus.io/path"] != "/metrics" {
				t.Errorf("Prometheus annotations %v for the port %d", pod.Annotations, port)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("resources %+v: want CPU and memory requests and a memory limit", c.Resources)
			}
			if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				pod.Spec.SecurityContext == nil || pod.Spec.SecurityContext.RunAsNonRoot == nil || !*pod.Spec.SecurityContext.RunAsNonRoot {
				t.Error("want a non-root pod and a read-only root file system")
			}
			// The policy: the flag names the file of the mounted ConfigMap,
			// which is a policy the services accept.
			i := slices.Index(c.Args, "-policy")
			if i < 0 || i+1 == len(c.Args) {
				t.Fatal("no -policy")
			}
			found := false
			for _, m := range c.VolumeMounts {
				rel, err := filepath.Rel(m.MountPath, c.Args[i+1])
				if err != nil || strings.HasPrefix(rel, "..") {
					continue
				}
				for _, v := range pod.Spec.Volumes {
					if v.Name == m.Name && v.ConfigMap != nil {
						text, ok := o.configMaps[v.ConfigMap.Name][rel]
						if !ok {
							t.Errorf("-policy %s: the ConfigMap %q has no %s", c.Args[i+1], v.ConfigMap.Name, rel)
						} else if _, err := policy.Parse([]byte(text), rel); err != nil {
							t.Errorf("the policy: %v", err)
						}
						found = true
					}
				}
			}
			if !found {
				t.Errorf("-policy %s is in no ConfigMap volume", c.Args[i+1])
			}
			// A Service and a PodDisruptionBudget select its pods.
			if !slices.ContainsFunc(o.services, func(s corev1.Service) bool {
				return matches(s.Spec.Selector, pod.Labels) && len(s.Spec.Ports) > 0 && s.Spec.Ports[0].TargetPort.String() == "http"
			}) {
				t.Error("no Service selects its pods on the port http")
			}
			if !slices.ContainsFunc(o.pdbs, func(p policyv1.PodDisruptionBudget) bool {
				return p.Spec.Selector != nil && matches(p.Spec.Selector.MatchLabels, pod.Labels)
			}) {
				t.Error("no PodDisruptionBudget selects its pods")
			}
		})
	}
	// Prometheus keeps the port named http and reads the token the
	// Secret holds.
	var scrape struct {
		ScrapeConfigs []struct {
			Authorization struct {
				CredentialsFile string `json:"credentials_file"`
			} `json:"authorization"`
			RelabelConfigs []struct {
				SourceLabels []string `json:"source_labels"`
				Regex        string   `json:"regex"`
				Action       string   `json:"action"`
			} `json:"relabel_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal([]byte(o.configMaps["anomalyd-prometheus"]["scrape.yml"]), &scrape); err != nil || len(scrape.ScrapeConfigs) != 1 {
		t.Fatalf("the Prometheus scrape job: %v, %+v", err, scrape)
	}
	job := scrape.ScrapeConfigs[0]
	if key := filepath.Base(job.Authorization.CredentialsFile); !secretKeys["anomalyd-secrets"][key] {
		t.Errorf("Prometheus reads the token from %s: no such key in anomalyd-secrets", job.Authorization.CredentialsFile)
	}
	if !slices.ContainsFunc(job.RelabelConfigs, func(r struct {
		SourceLabels []string `json:"source_labels"`
		Regex        string   `json:"regex"`
		Action       string   `json:"action"`
	}) bool {
		return slices.Equal(r.SourceLabels, []string{"__meta_kubernetes_pod_container_port_name"}) && r.Regex == "http" && r.Action == "keep"
	}) {
		t.Error("the Prometheus job does not keep the port named http")
	}
}

// matches reports whether labels has every pair of selector, which is
// not empty.
func matches(selector, labels map[string]string) bool {
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

// TestDashboard checks that every metric the dashboard charts is one the
// services register.
func TestDashboard(t *testing.T) {
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(read(t, "grafana-dashboard.json"), &dash); err != nil {
		t.Fatal(err)
	}
	known := exported(t)
	metric := regexp.MustCompile(`\b(anomalyd_[a-z0-9_]+|process_[a-z0-9_]+|go_[a-z0-9_]+)\b`)
	charted := 0
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q charts nothing", p.Title)
		}
		for _, tg := range p.Targets {
			names := metric.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: %q names no metric", p.Title, tg.Expr)
			}
			for _, n := range names {
				charted++
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")
				if !known[n] && !known[base] {
					t.Errorf("panel %q: no service exports %s", p.Title, n)
				}
			}
		}
	}
	t.Logf("%d panels chart %d metrics, of %d exported", len(dash.Panels), charted, len(known))
}

// exported returns the names of the metrics the services register: their
// own, the policy's and the runtime's.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	rec := &recorder{names: make(map[string]bool)}
	detector.NewMetrics(rec)
	publisher.NewMetrics(rec)
	baseline.NewMetrics(rec)
	if _, err := policy.NewWatcher("", rec, nil); err != nil {
		t.Fatal(err)
	}
	families, err := service.NewRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		rec.names[f.GetName()] = true
	}
	return rec.names
}

// recorder is a Registerer that keeps the names of the metrics registered
// with it, whether or not they have a series yet.
type recorder struct{ names map[string]bool }

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *recorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			r.names[m[1]] = true
		}
	}
	return nil
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		r.Register(c)
	}
}

func (r *recorder) Unregister(prometheus.Collector) bool { return true }
