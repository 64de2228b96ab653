package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"relabel.dev/relabel/rules"
)

// runReady runs the app with stdin, as `relabel ready ...` would run.
func runReady(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := NewApp("relabel", BuildInfo{Version: "v1.2.3"}, strings.NewReader(stdin), &out, &errOut)
	err = app.Run(append([]string{"relabel", "ready"}, args...))
	return out.String(), errOut.String(), err
}

// writeFile writes content to name in a fresh directory and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Fixtures whose verdict does not depend on the details of a kind's rule.
const (
	readyDeployment = "../../testdata/objects/deployment.yaml"  // shop/web, fully rolled out
	readySts        = "../../testdata/objects/statefulset.yaml" // shop/db, fully rolled out
	newDeployment   = `apiVersion: apps/v1
kind: Deployment
metadata: {name: fresh, namespace: shop, generation: 1}
spec:
  replicas: 2
  selector: {matchLabels: {app: fresh}}
  template:
    metadata: {labels: {app: fresh}}
    spec: {containers: [{name: c, image: nginx}]}
`
	// A kind relabel has no rule for, and a rules file that gives it a CEL one.
	widget = `apiVersion: example.com/v1
kind: Widget
metadata: {name: w, namespace: shop, generation: 2}
spec: {replicas: 2}
status: {observedGeneration: 2, readyReplicas: %d, phase: Running}
`
	widgetRules = `apiVersion: relabel.dev/v1
kind: Rules
kinds:
- group: example.com
  version: v1
  kind: Widget
  resource: widgets
  selectorPath: spec.selector
  templateLabelsPath: spec.template.metadata.labels
  readiness: %s
`
)

func readReport(t *testing.T, out string) ReadinessReport {
	t.Helper()
	var r ReadinessReport
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("decoding the report: %v\n%s", err, out)
	}
	return r
}

func TestReadyJSONShape(t *testing.T) {
	notReady := writeFile(t, "fresh.yaml", newDeployment)
	out, _, err := runReady(t, "", "-f", readyDeployment, "-f", notReady, "-o", "json")
	if !errors.Is(err, ErrNotReady) {
		t.Fatalf("err = %v, want ErrNotReady", err)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got, want := sortedKeys(doc), []string{"apiVersion", "items", "kind"}; !reflect.DeepEqual(got, want) {
		t.Errorf("top-level keys %v, want %v", got, want)
	}
	if doc["apiVersion"] != "relabel.dev/v1" || doc["kind"] != "ReadinessReport" {
		t.Errorf("apiVersion %v, kind %v", doc["apiVersion"], doc["kind"])
	}
	items, _ := doc["items"].([]any)
	if len(items) != 2 {
		t.Fatalf("items %v, want 2", doc["items"])
	}
	want := []map[string]any{
		{"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "web", "ready": true},
		{"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "fresh", "ready": false},
	}
	for i, it := range items {
		item := it.(map[string]any)
		if got, wantKeys := sortedKeys(item), []string{"apiVersion", "kind", "name", "namespace", "ready", "reason"}; !reflect.DeepEqual(got, wantKeys) {
			t.Errorf("items[%d] keys %v, want %v", i, got, wantKeys)
		}
		for k, v := range want[i] {
			if item[k] != v {
				t.Errorf("items[%d].%s = %v, want %v", i, k, item[k], v)
			}
		}
		if reason, ok := item["reason"].(string); !ok || reason == "" {
			t.Errorf("items[%d].reason = %v, want a non-empty string", i, item["reason"])
		}
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestReadyTable(t *testing.T) {
	kruise := writeFile(t, "kruise.yaml", `apiVersion: apps.kruise.io/v1beta1
kind: StatefulSet
metadata: {name: db, namespace: shop}
`)
	rulesFile := writeFile(t, "rules.yaml", `apiVersion: relabel.dev/v1
kind: Rules
kinds:
- {group: apps.kruise.io, version: v1beta1, kind: StatefulSet, resource: statefulsets, selectorPath: spec.selector, templateLabelsPath: spec.template.metadata.labels, readiness: "self.metadata.name == 'db'"}
`)
	out, _, err := runReady(t, "", "-f", readyDeployment, "-f", readySts, "-f", kruise, "--rules", rulesFile)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 4 || strings.Join(strings.Fields(lines[0]), " ") != "KIND NAMESPACE/NAME READY REASON" {
		t.Fatalf("want a header and 3 rows:\n%s", out)
	}
	for i, want := range [][]string{
		{"Deployment", "shop/web", "true"},
		{"StatefulSet.apps", "shop/db", "true"}, // two groups have a StatefulSet here
		{"StatefulSet.apps.kruise.io", "shop/db", "true", "readiness"},
	} {
		if got := strings.Fields(lines[i+1]); len(got) < len(want) || !reflect.DeepEqual(got[:len(want)], want) {
			t.Errorf("row %d = %q, want it to start with %q", i+1, lines[i+1], want)
		}
	}
	// The columns line up, as kubectl's do.
	col := strings.Index(lines[0], "READY")
	for _, l := range lines[1:] {
		if l[col:col+4] != "true" {
			t.Errorf("READY column misaligned:\n%s", out)
		}
	}
}

func TestReadyInput(t *testing.T) {
	multi := writeFile(t, "multi.yaml", "# comments first\n---\n"+newDeployment+"---\n---\n"+
		`apiVersion: v1
kind: List
items:
- apiVersion: apps/v1
  kind: StatefulSet
  metadata: {name: a, namespace: one}
- apiVersion: apps/v1
  kind: DaemonSet
  metadata: {name: b, namespace: two}
---
`)
	typedList := writeFile(t, "list.json", `{"apiVersion": "apps/v1", "kind": "DeploymentList", "metadata": {},
  "items": [{"metadata": {"name": "x", "namespace": "n"}, "spec": {}}]}`)
	concatenated := writeFile(t, "two.json", `{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "j1"}}
{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "j2"}}`)
	emptyList := writeFile(t, "empty-list.yaml", "apiVersion: v1\nkind: List\nitems: []\n")
	ready, err := os.ReadFile(readyDeployment)
	if err != nil {
		t.Fatal(err)
	}
	type ref struct{ kind, ns, name string }
	for _, tc := range []struct {
		name    string
		stdin   string
		args    []string
		want    []ref
		wantErr error
	}{
		{name: "multi-document file with a List", args: []string{"-f", multi}, wantErr: ErrNotReady,
			want: []ref{{"Deployment", "shop", "fresh"}, {"StatefulSet", "one", "a"}, {"DaemonSet", "two", "b"}}},
		{name: "typed list without item kinds", args: []string{"-f", typedList}, wantErr: ErrNotReady,
			want: []ref{{"Deployment", "n", "x"}}},
		{name: "concatenated JSON objects", args: []string{"-f", concatenated}, wantErr: ErrNotReady,
			want: []ref{{"Deployment", "", "j1"}, {"Deployment", "", "j2"}}},
		{name: "stdin", stdin: string(ready), args: []string{"-f", "-"},
			want: []ref{{"Deployment", "shop", "web"}}},
		{name: "stdin between files, in order", stdin: newDeployment, args: []string{"-f", readyDeployment, "-f", "-", "-f", readySts}, wantErr: ErrNotReady,
			want: []ref{{"Deployment", "shop", "web"}, {"Deployment", "shop", "fresh"}, {"StatefulSet", "shop", "db"}}},
		{name: "comma-separated, as kubectl takes -f", args: []string{"-f", readyDeployment + "," + readySts},
			want: []ref{{"Deployment", "shop", "web"}, {"StatefulSet", "shop", "db"}}},
		{name: "empty List: nothing to wait for", args: []string{"-f", emptyList}, want: []ref{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := runReady(t, tc.stdin, append(tc.args, "-o", "json")...)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			r := readReport(t, out)
			got := []ref{}
			for _, it := range r.Items {
				got = append(got, ref{it.Kind, it.Namespace, it.Name})
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("objects %v, want %v", got, tc.want)
			}
		})
	}
}

func TestReadyBadInput(t *testing.T) {
	dir := t.TempDir()
	unreadable := filepath.Join(dir, "unreadable.yaml")
	if err := os.WriteFile(unreadable, []byte(newDeployment), 0o000); err != nil {
		t.Fatal(err)
	}
	if f, err := os.Open(unreadable); err == nil { // running as root
		f.Close()
		unreadable = dir // a directory cannot be read as a file either
	}
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		// want are parts of the message.
		want []string
	}{
		{name: "no files", want: []string{"-f FILE"}},
		{name: "missing file", args: []string{"-f", filepath.Join(dir, "nope.yaml")}, want: []string{"reading", "nope.yaml"}},
		{name: "unreadable file", args: []string{"-f", unreadable}, want: []string{"reading"}},
		{name: "empty file", args: []string{"-f", writeFile(t, "empty.yaml", "# nothing\n---\n")}, want: []string{"holds no Kubernetes objects"}},
		{name: "empty stdin", args: []string{"-f", "-"}, want: []string{"standard input holds no Kubernetes objects"}},
		{name: "stdin twice", args: []string{"-f", "-", "-f", "-"}, want: []string{"once"}},
		{name: "not YAML", args: []string{"-f", writeFile(t, "bad.yaml", "a: [b\n")}, want: []string{"bad.yaml: document 1"}},
		{name: "a scalar", args: []string{"-f", writeFile(t, "scalar.yaml", "hello\n")}, want: []string{"document 1 is not a Kubernetes object"}},
		{name: "a YAML list", args: []string{"-f", writeFile(t, "seq.yaml", "- a\n- b\n")}, want: []string{"is not a Kubernetes object"}},
		{name: "no kind", args: []string{"-f", writeFile(t, "nokind.yaml", "apiVersion: v1\nmetadata: {name: x}\n")}, want: []string{"no apiVersion or no kind"}},
		{name: "no name", stdin: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {}\n", args: []string{"-f", "-"}, want: []string{"standard input: document 1: Deployment has no metadata.name"}},
		{name: "bad list item", args: []string{"-f", writeFile(t, "list.yaml", "apiVersion: v1\nkind: List\nitems: [3]\n")}, want: []string{"document 1, items[0] is not a Kubernetes object"}},
		{name: "second document bad", args: []string{"-f", writeFile(t, "two.yaml", newDeployment+"---\nkind: Deployment\n")}, want: []string{"document 2"}},
		{name: "bad output", args: []string{"-f", readyDeployment, "-o", "yaml"}, want: []string{"--output", "table or json"}},
		{name: "stray argument", args: []string{readyDeployment}, want: []string{"unexpected argument"}},
		{name: "bad rules file", args: []string{"-f", readyDeployment, "--rules", writeFile(t, "rules.yaml", "apiVersion: relabel.dev/v1\nkind: Nope\n")}, want: []string{"--rules"}},
		{name: "unknown kind", args: []string{"-f", writeFile(t, "widget.yaml", fmt.Sprintf(widget, 2))},
			want: []string{"no readiness rule for example.com/Widget", "widget.yaml: document 1, shop/w", "--rules FILE", "kinds:", "readiness:", "CEL"}},
		{name: "unknown kind, rules file for others", args: []string{"-f", writeFile(t, "widget.yaml", fmt.Sprintf(widget, 2)),
			"--rules", writeFile(t, "rules.yaml", strings.ReplaceAll(fmt.Sprintf(widgetRules, `"true"`), "Widget", "Gadget"))},
			want: []string{"no readiness rule for example.com/Widget", "the rules file", "rules.yaml"}},
		{name: "skipped kind", args: []string{"-f", writeFile(t, "rs.yaml", "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: r}\n")},
			want: []string{"apps/ReplicaSet", "owned by Deployments"}},
		{name: "core kind", args: []string{"-f", writeFile(t, "pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n")},
			want: []string{"no readiness rule for Pod", `group: ""`, "version: v1", "resource: pods"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := runReady(t, tc.stdin, tc.args...)
			var usage UsageError
			if !errors.As(err, &usage) {
				t.Fatalf("err = %v, want a UsageError (exit 2)", err)
			}
			if errors.Is(err, ErrNotReady) {
				t.Errorf("err %v is also ErrNotReady", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if out != "" {
				t.Errorf("bad input printed a report:\n%s", out)
			}
		})
	}
}

// The unknown kind's message shows a rules file; it loads, and with it the
// object is judged.
func TestReadyUnknownKindExample(t *testing.T) {
	obj := writeFile(t, "widget.yaml", fmt.Sprintf(widget, 2))
	_, _, err := runReady(t, "", "-f", obj)
	if err == nil {
		t.Fatal("no error for a kind without a rule")
	}
	_, example, ok := strings.Cut(err.Error(), "\n")
	if !ok || strings.Count(example, "\n") != 2 {
		t.Fatalf("want a 3-line example after the first line:\n%s", err)
	}
	file, err := rules.ParseFile("example.yaml", []byte(example))
	if err != nil {
		t.Fatalf("the example does not load: %v\n%s", err, example)
	}
	if len(file.Kinds) != 1 || file.Kinds[0].GroupKind() != (schema.GroupKind{Group: "example.com", Kind: "Widget"}) || file.Kinds[0].Resource != "widgets" {
		t.Errorf("example kinds %+v", file.Kinds)
	}
	rulesFile := writeFile(t, "rules.yaml", example)
	out, _, err := runReady(t, "", "-f", obj, "--rules", rulesFile, "-o", "json")
	if err != nil {
		t.Fatalf("with the example rules: %v\n%s", err, out)
	}
	if r := readReport(t, out); len(r.Items) != 1 || !r.Items[0].Ready {
		t.Errorf("with the example rules: %+v", r.Items)
	}
}

func TestReadyRulesKind(t *testing.T) {
	for _, tc := range []struct {
		name       string
		readiness  string
		ready      int64 // the Widget's readyReplicas
		wantReady  bool
		wantReason string
	}{
		{name: "CEL true", readiness: `"self.status.readyReplicas == self.spec.replicas"`, ready: 2, wantReady: true, wantReason: "is true"},
		{name: "CEL false", readiness: `"self.status.readyReplicas == self.spec.replicas"`, ready: 1, wantReason: "is false"},
		{name: "CEL reads a missing field", readiness: `"self.status.availableReplicas == self.spec.replicas"`, ready: 2, wantReason: "no such key"},
		// An error judging is not bad input: the object is not ready, and the error says why.
		{name: "CEL error", readiness: `"self.status.phase > 3"`, ready: 2, wantReason: "no such overload"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := writeFile(t, "widget.yaml", fmt.Sprintf(widget, tc.ready))
			rulesFile := writeFile(t, "rules.yaml", fmt.Sprintf(widgetRules, tc.readiness))
			out, _, err := runReady(t, "", "-f", obj, "--rules", rulesFile, "-o", "json")
			if tc.wantReady && err != nil || !tc.wantReady && !errors.Is(err, ErrNotReady) {
				t.Fatalf("err = %v, ready %v", err, tc.wantReady)
			}
			r := readReport(t, out)
			if len(r.Items) != 1 || r.Items[0].Ready != tc.wantReady || !strings.Contains(r.Items[0].Reason, tc.wantReason) {
				t.Errorf("items %+v, want ready %v, reason with %q", r.Items, tc.wantReady, tc.wantReason)
			}
		})
	}
	t.Run("rules kind wins over the built-in", func(t *testing.T) {
		// A Deployment without any status, ready by the rules file's say-so.
		obj := writeFile(t, "fresh.yaml", newDeployment)
		rulesFile := writeFile(t, "rules.yaml", `apiVersion: relabel.dev/v1
kind: Rules
kinds:
- {group: apps, version: v1, kind: Deployment, resource: deployments, selectorPath: spec.selector, templateLabelsPath: spec.template.metadata.labels, readiness: "self.metadata.name == 'fresh'"}
`)
		if _, _, err := runReady(t, "", "-f", obj); !errors.Is(err, ErrNotReady) {
			t.Fatalf("built-in rule: err = %v, want ErrNotReady", err)
		}
		out, _, err := runReady(t, "", "-f", obj, "--rules", rulesFile, "-o", "json")
		if err != nil {
			t.Fatalf("rules file's rule: %v\n%s", err, out)
		}
		if r := readReport(t, out); len(r.Items) != 1 || !r.Items[0].Ready || !strings.Contains(r.Items[0].Reason, "self.metadata.name") {
			t.Errorf("items %+v", r.Items)
		}
	})
}

func TestReadyCompletion(t *testing.T) {
	out, err := runApp(t, "relabel", "completion", "fish")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"-a 'ready'", "-l filename -s f -r", "-l rules -r"} {
		if !strings.Contains(out, want) {
			t.Errorf("fish completion lacks %q", want)
		}
	}
}

// Argo CD's health fixtures, copied into testdata/argocd (see its README),
// judged by `relabel ready`. Argo CD's Healthy means ready; Progressing,
// Degraded, Suspended, Missing and Unknown mean not ready.
const argoCDFixtures = "../../testdata/argocd"

// knownDisagreements are fixtures on which relabel deliberately differs
// from Argo CD, by path under testdata/argocd. Most make relabel stricter
// (Argo CD Healthy, relabel not ready): a migration that waits too long is
// safe, one that trusts a copy too early is not. A looser entry (relabel
// ready, Argo CD not Healthy) must say why waiting would be wrong: where the
// object will never progress further by design and serves as its owner asked.
// An entry that agrees again (the rules changed) is reported in the log.
var knownDisagreements = map[string]knownDisagreement{
	// Argo Rollouts before v1.0 wrote a pod-template hash into
	// status.observedGeneration ("abc123", "77646c9d4c"); Argo CD's health.lua
	// recognises the legacy form and judges by replica counts. A hash says
	// nothing about which generation the controller has seen, so relabel
	// does not trust the rest of the status.
	"argoproj.io/Rollout/testdata/healthy_legacy_v0.9_observedGeneration.yaml": {Why: "legacy observedGeneration hash"},
	"argoproj.io/Rollout/testdata/bluegreen/healthy_servingActiveService.yaml": {Why: "legacy observedGeneration hash"},
	"argoproj.io/Rollout/testdata/canary/healthy_executedAllStepsPreV0.8.yaml": {Why: "legacy observedGeneration hash"},
	"argoproj.io/Rollout/testdata/canary/healthy_executedAllSteps.yaml":        {Why: "legacy observedGeneration hash"},
	"argoproj.io/Rollout/testdata/canary/healthy_noSteps.yaml":                 {Why: "legacy observedGeneration hash"},
	"argoproj.io/Rollout/testdata/canary/healthy_emptyStepsList.yaml":          {Why: "legacy observedGeneration hash"},
	// The same legacy hash, all digits ("8575574967"), and no status.phase:
	// relabel takes readiness from the controller's own phase (Argo Rollouts
	// v1.0 and later), not from replica counts of a legacy status.
	"argoproj.io/Rollout/testdata/healthy_legacy_v0.9_observedGeneration_numeric.yaml": {Why: "legacy status without status.phase"},

	// status.replicas 2 for spec.replicas 1: a pod is still to be deleted
	// (a scale-down in progress). Argo CD's health.lua does not compare them;
	// relabel waits until only the wanted pods are left.
	"apps.kruise.io/CloneSet/testdata/healthy.yaml": {Why: "a surplus replica pending deletion"},

	// Looser. A partition keeps that many pods at the old revision on
	// purpose; Argo CD calls a rollout held there Suspended ("needs manual
	// intervention"). Every pod is ready and available and the update went
	// as far as the partition lets it: it will go no further by itself, so
	// waiting for more would never end. relabel's rule says ready, as
	// `kubectl rollout status` does for a partitioned StatefulSet.
	"apps.kruise.io/StatefulSet/testdata/partition_suspended.yaml": {Looser: true, Why: "partitioned update complete"},
	"apps.kruise.io/DaemonSet/testdata/partition_suspended.yaml":   {Looser: true, Why: "partitioned update complete"},
	// Looser. desiredNumberScheduled 0, observed by the controller: no node
	// should run a pod, so there is nothing to wait for. Argo CD's health.lua
	// reads the missing numberAvailable (OpenKruise omits zero counts) as not
	// equal to 0 and answers Progressing.
	"apps.kruise.io/DaemonSet/testdata/no-update-strategy-partition.yaml": {Looser: true, Why: "no node should run a pod"},
}

// knownDisagreement is why relabel deliberately differs from Argo CD on a fixture.
type knownDisagreement struct {
	// Looser: relabel says ready where Argo CD does not.
	Looser bool
	Why    string
}

// argoHealthTests is Argo CD's health_test.yaml. Like Argo CD, it is
// decoded case-insensitively: CloneSet's file spells inputPath "inputpath".
type argoHealthTests struct {
	Tests []struct {
		HealthStatus struct {
			Status  string `json:"status"`
			Message string `json:"message"`
		} `json:"healthStatus"`
		InputPath string `json:"inputPath"`
	} `json:"tests"`
}

func TestArgoCDFixtures(t *testing.T) {
	var dirs []string
	err := filepath.WalkDir(argoCDFixtures, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "health_test.yaml" {
			dirs = append(dirs, filepath.Dir(path))
		}
		return err
	})
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no fixtures in %s: %v", argoCDFixtures, err)
	}
	sort.Strings(dirs)
	listed := map[string]bool{} // fixtures judged, to find stale knownDisagreements
	var summary, stale []string
	for _, dir := range dirs {
		rel, _ := filepath.Rel(argoCDFixtures, dir)
		group, kind := filepath.Split(filepath.ToSlash(rel))
		gk := schema.GroupKind{Group: strings.TrimSuffix(group, "/"), Kind: kind}
		name := gk.Group + "/" + gk.Kind
		t.Run(name, func(t *testing.T) {
			var tests argoHealthTests
			data, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
			if err == nil {
				err = yaml.Unmarshal(data, &tests)
			}
			if err != nil || len(tests.Tests) == 0 {
				t.Fatalf("%s/health_test.yaml: %v, %d tests", rel, err, len(tests.Tests))
			}
			checkAllListed(t, dir, tests)
			if _, ok := rules.Builtin(gk); !ok {
				summary = append(summary, name+": skipped: no built-in kind in rules/ yet")
				t.Skipf("rules.Builtin has no %s yet", name)
			}
			agree := 0
			var disagree []string
			for _, tc := range tests.Tests {
				fixture := filepath.ToSlash(filepath.Join(rel, tc.InputPath))
				listed[fixture] = true
				argoHealthy := tc.HealthStatus.Status == "Healthy"
				out, _, err := runReady(t, "", "-f", filepath.Join(dir, tc.InputPath), "-o", "json")
				if err != nil && !errors.Is(err, ErrNotReady) {
					t.Errorf("%s: %v", fixture, err)
					continue
				}
				r := readReport(t, out)
				if len(r.Items) != 1 {
					t.Errorf("%s: %d objects, want 1", fixture, len(r.Items))
					continue
				}
				item := r.Items[0]
				why, known := knownDisagreements[fixture]
				if item.Ready == argoHealthy {
					agree++
					if known {
						stale = append(stale, fmt.Sprintf("%s (agrees now: argocd %s; listed as %q)", fixture, tc.HealthStatus.Status, why.Why))
					}
					continue
				}
				verdict := "ready"
				if !item.Ready {
					verdict = "not ready"
				}
				line := fmt.Sprintf("%s (argocd %s, relabel %s: %s)", tc.InputPath, tc.HealthStatus.Status, verdict, item.Reason)
				switch {
				case known && why.Looser != item.Ready:
					t.Errorf("%s: knownDisagreements expects relabel to be %s", line, map[bool]string{true: "looser", false: "stricter"}[why.Looser])
				case known && why.Looser:
					line += " [known, looser: " + why.Why + "]"
				case known:
					line += " [known, stricter: " + why.Why + "]"
				case item.Ready:
					t.Errorf("%s: relabel is looser than Argo CD: fix the rule, or add it to knownDisagreements with why waiting would be wrong", line)
				default:
					t.Errorf("%s: add it to knownDisagreements with why, if relabel is deliberately stricter; else fix the rule", line)
				}
				disagree = append(disagree, line)
			}
			s := fmt.Sprintf("%s: %d/%d agree", name, agree, len(tests.Tests))
			if len(disagree) > 0 {
				s += "; disagree: " + strings.Join(disagree, "; ")
			}
			summary = append(summary, s)
			t.Log(s)
		})
	}
	for fixture := range knownDisagreements {
		if !listed[fixture] && !skippedKind(fixture) {
			t.Errorf("knownDisagreements names %s, which is no fixture", fixture)
		}
	}
	t.Logf("Argo CD health fixtures judged by relabel ready:\n%s", strings.Join(summary, "\n"))
	if len(stale) > 0 {
		t.Logf("knownDisagreements entries that agree with Argo CD now; remove them:\n%s", strings.Join(stale, "\n"))
	}
}

// skippedKind says whether the fixture's kind has no built-in rule yet.
func skippedKind(fixture string) bool {
	parts := strings.SplitN(fixture, "/", 3)
	if len(parts) < 3 {
		return false
	}
	_, ok := rules.Builtin(schema.GroupKind{Group: parts[0], Kind: parts[1]})
	return !ok
}

// checkAllListed fails when a fixture file has no expectation, or an
// expectation no file: the copy from Argo CD is complete.
func checkAllListed(t *testing.T, dir string, tests argoHealthTests) {
	t.Helper()
	want := map[string]bool{}
	for _, tc := range tests.Tests {
		if tc.InputPath == "" || tc.HealthStatus.Status == "" {
			t.Errorf("%s/health_test.yaml: a test without inputPath or status", dir)
			continue
		}
		want[filepath.ToSlash(filepath.Clean(tc.InputPath))] = true
		if _, err := os.Stat(filepath.Join(dir, tc.InputPath)); err != nil {
			t.Errorf("%s/health_test.yaml: %v", dir, err)
		}
	}
	_ = filepath.WalkDir(filepath.Join(dir, "testdata"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".yaml") {
			rel, _ := filepath.Rel(dir, path)
			if !want[filepath.ToSlash(rel)] {
				t.Errorf("%s has no expectation in health_test.yaml", path)
			}
		}
		return err
	})
}
