package deploy

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "regenerate kubernetes/prometheusrule.yaml from the rules file")

const (
	k8sDir         = "kubernetes"
	rulesFile      = "prometheus/ctwatch-rules.yml"
	prometheusRule = "kubernetes/prometheusrule.yaml"
)

// object is the part of a Kubernetes object every manifest has.
type object struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace"`
		Labels    map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
}

// daemonSet holds the DaemonSet fields the tests check.
type daemonSet struct {
	object `yaml:",inline"`
	Spec   struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				ServiceAccountName string      `yaml:"serviceAccountName"`
				HostNetwork        bool        `yaml:"hostNetwork"`
				HostPID            bool        `yaml:"hostPID"`
				Containers         []container `yaml:"containers"`
				Volumes            []any       `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type container struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		Privileged               *bool `yaml:"privileged"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		Capabilities             struct {
			Add  []string `yaml:"add"`
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
}

type podMonitor struct {
	object `yaml:",inline"`
	Spec   struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		PodMetricsEndpoints []struct {
			Port string `yaml:"port"`
			Path string `yaml:"path"`
		} `yaml:"podMetricsEndpoints"`
	} `yaml:"spec"`
}

// manifests decodes every document of every YAML file in the kubernetes
// directory into raw nodes, by kind.
func manifests(t *testing.T) map[string][]*yaml.Node {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]*yaml.Node{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var n yaml.Node
			err := dec.Decode(&n)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			var o object
			if err := n.Decode(&o); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if o.Kind == "" || o.APIVersion == "" {
				t.Fatalf("%s: a document without kind or apiVersion", f)
			}
			out[o.Kind] = append(out[o.Kind], &n)
		}
	}
	return out
}

// only decodes the single object of a kind into v.
func only(t *testing.T, m map[string][]*yaml.Node, kind string, v any) {
	t.Helper()
	if len(m[kind]) != 1 {
		t.Fatalf("%d %s objects, want 1", len(m[kind]), kind)
	}
	if err := m[kind][0].Decode(v); err != nil {
		t.Fatalf("%s: %v", kind, err)
	}
}

// TestDaemonSet checks what the README promises for the pod: the host's
// network namespace, CAP_NET_ADMIN as the only capability, not
// privileged, no escalation, a read-only root, and resource bounds.
func TestDaemonSet(t *testing.T) {
	m := manifests(t)
	var ds daemonSet
	only(t, m, "DaemonSet", &ds)
	pod := ds.Spec.Template.Spec
	if !pod.HostNetwork {
		t.Error("hostNetwork is not true: ctwatch would watch the pod's empty namespace")
	}
	if pod.HostPID || len(pod.Volumes) > 0 {
		t.Errorf("hostPID %v, volumes %v: ctwatch needs neither", pod.HostPID, pod.Volumes)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	for _, tc := range []struct {
		name string
		got  *bool
		want bool
	}{
		{"privileged", sc.Privileged, false},
		{"allowPrivilegeEscalation", sc.AllowPrivilegeEscalation, false},
		{"readOnlyRootFilesystem", sc.ReadOnlyRootFilesystem, true},
	} {
		if tc.got == nil || *tc.got != tc.want {
			t.Errorf("securityContext.%s is not set to %v", tc.name, tc.want)
		}
	}
	if !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) ||
		!slices.Equal(sc.Capabilities.Add, []string{"NET_ADMIN"}) {
		t.Errorf("capabilities drop %q add %q, want drop [ALL] add [NET_ADMIN]",
			sc.Capabilities.Drop, sc.Capabilities.Add)
	}
	for _, kind := range []string{"cpu", "memory"} {
		if c.Resources.Requests[kind] == "" || c.Resources.Limits[kind] == "" {
			t.Errorf("resources: no %s request and limit", kind)
		}
	}
	if !slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--nflog-group=") }) {
		t.Errorf("args %q give no drop source", c.Args)
	}

	// Labels, service account and the metrics port hang together.
	for k, v := range ds.Spec.Selector.MatchLabels {
		if ds.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the pod labels", k, v)
		}
	}
	var sa object
	only(t, m, "ServiceAccount", &sa)
	if pod.ServiceAccountName != sa.Metadata.Name {
		t.Errorf("serviceAccountName %q, ServiceAccount %q", pod.ServiceAccountName, sa.Metadata.Name)
	}
	listen := ""
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--web.listen-address="); ok {
			listen = v
		}
	}
	var pm podMonitor
	only(t, m, "PodMonitor", &pm)
	for k, v := range pm.Spec.Selector.MatchLabels {
		if ds.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("PodMonitor selector %s=%s matches no ctwatch pod", k, v)
		}
	}
	if len(pm.Spec.PodMetricsEndpoints) != 1 {
		t.Fatalf("%d PodMonitor endpoints, want 1", len(pm.Spec.PodMetricsEndpoints))
	}
	ep := pm.Spec.PodMetricsEndpoints[0]
	found := false
	for _, p := range c.Ports {
		if p.Name == ep.Port {
			found = true
			if want := fmt.Sprintf(":%d", p.ContainerPort); listen != want {
				t.Errorf("port %s is %d but ctwatch listens on %q", p.Name, p.ContainerPort, listen)
			}
		}
	}
	if !found || ep.Path != "/metrics" {
		t.Errorf("PodMonitor scrapes port %q path %q: no such container port, or not /metrics",
			ep.Port, ep.Path)
	}
}

// TestManifestsHangTogether checks that every object lives in the
// namespace the manifests create and that kustomization.yaml lists
// every manifest.
func TestManifestsHangTogether(t *testing.T) {
	m := manifests(t)
	var ns object
	only(t, m, "Namespace", &ns)
	for kind, nodes := range m {
		for _, n := range nodes {
			var o object
			if err := n.Decode(&o); err != nil {
				t.Fatal(err)
			}
			if kind != "Namespace" && kind != "Kustomization" && o.Metadata.Namespace != ns.Metadata.Name {
				t.Errorf("%s %s is in namespace %q, want %q", kind, o.Metadata.Name,
					o.Metadata.Namespace, ns.Metadata.Name)
			}
		}
	}

	var k struct {
		Resources []string `yaml:"resources"`
	}
	only(t, m, "Kustomization", &k)
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" {
			want = append(want, base)
		}
	}
	got := slices.Sorted(slices.Values(k.Resources))
	if !slices.Equal(got, want) {
		t.Errorf("kustomization resources %q, want every manifest %q", got, want)
	}
}

// renderPrometheusRule wraps the groups of the Prometheus rules file in
// a PrometheusRule object for the Prometheus Operator. The groups are
// copied as YAML nodes, so their order and comments survive.
func renderPrometheusRule() ([]byte, error) {
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", rulesFile, err)
	}
	var groups *yaml.Node
	if root := doc.Content; len(root) == 1 && root[0].Kind == yaml.MappingNode {
		for i := 0; i+1 < len(root[0].Content); i += 2 {
			if root[0].Content[i].Value == "groups" {
				groups = root[0].Content[i+1]
			}
		}
	}
	if groups == nil {
		return nil, fmt.Errorf("%s: no groups", rulesFile)
	}

	str := func(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: s} }
	mapping := func(kv ...*yaml.Node) *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode, Content: kv} }
	obj := mapping(
		str("apiVersion"), str("monitoring.coreos.com/v1"),
		str("kind"), str("PrometheusRule"),
		str("metadata"), mapping(
			str("name"), str("ctwatch"),
			str("namespace"), str("ctwatch"),
			str("labels"), mapping(str("app.kubernetes.io/name"), str("ctwatch")),
		),
		str("spec"), mapping(str("groups"), groups),
	)
	var out bytes.Buffer
	out.WriteString("# Generated from deploy/" + rulesFile + " by `go test ./deploy -update`.\n" +
		"# Do not edit: change the rules file and regenerate.\n")
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(obj); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// TestPrometheusRule keeps kubernetes/prometheusrule.yaml equal to what
// renderPrometheusRule makes of the rules file, and checks its groups
// mean the same as the file's.
func TestPrometheusRule(t *testing.T) {
	want, err := renderPrometheusRule()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(prometheusRule, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(prometheusRule)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale: run go test ./deploy -update", prometheusRule)
	}

	var rules, pr struct {
		Groups any `yaml:"groups"`
		Spec   struct {
			Groups any `yaml:"groups"`
		} `yaml:"spec"`
	}
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(got, &pr); err != nil {
		t.Fatal(err)
	}
	if rules.Groups == nil || !reflect.DeepEqual(pr.Spec.Groups, rules.Groups) {
		t.Errorf("PrometheusRule groups differ from %s", rulesFile)
	}
}
