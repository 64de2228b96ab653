package rules

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

func ptr[T any](v T) *T { return &v }

// workloadKind is the kind testdata/rules/example.yaml describes.
var workloadKind = Kind{
	Group: "example.com", Version: "v1", Kind: "Workload", Resource: "workloads", Namespaced: true,
	SelectorPath: "spec.workload.selector", TemplateLabelsPath: "spec.workload.template.metadata.labels",
	ExtraLabelPaths: []Path{"spec.serviceSelector"},
	Readiness:       "self.status.observedGeneration >= self.metadata.generation && self.status.readyReplicas == self.spec.replicas",
	Strategy:        TempCopy, MaxNameLength: 63, Source: SourceRules,
}

func TestParseFileTestdata(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		check func(t *testing.T, f *File)
	}{
		{name: "complete example", file: "example.yaml", check: func(t *testing.T, f *File) {
			if len(f.Kinds) != 1 || !reflect.DeepEqual(f.Kinds[0], workloadKind) {
				t.Errorf("kinds = %+v, want [%+v]", f.Kinds, workloadKind)
			}
			if len(f.Rules) != 2 {
				t.Fatalf("%d rules, want 2", len(f.Rules))
			}
			r := f.Rules[0]
			if r.Name != "payments-team" || !reflect.DeepEqual(r.GVRs, []string{"apps/v1/deployments", "example.com/v1/workloads"}) ||
				!reflect.DeepEqual(r.Namespaces, []string{"payments", "billing"}) || r.Selector != "app in (api,worker)" ||
				r.Label.Key != "team" || r.Label.Value == nil || *r.Label.Value != "payments" || r.Strategy != Adopt {
				t.Errorf("rules[0] = %+v", r)
			}
			if r := f.Rules[1]; r.Label.Key != "app.kubernetes.io/name" || r.Label.ValueFrom != "app" || r.Label.Value != nil {
				t.Errorf("rules[1] = %+v", r)
			}
		}},
		{name: "relabel kinds -o yaml", file: "kinds.yaml", check: func(t *testing.T, f *File) {
			var gvrs []string
			for _, k := range f.Kinds {
				gvrs = append(gvrs, k.GVRString())
				if k.Source != SourceRules {
					t.Errorf("%s: source %q, want %q", k.GVRString(), k.Source, SourceRules)
				}
			}
			want := []string{"apps/v1/daemonsets", "apps/v1/deployments", "apps/v1/statefulsets", "demo.relabel.dev/v1alpha1/rollouts"}
			if !reflect.DeepEqual(gvrs, want) {
				t.Errorf("kinds %v, want %v", gvrs, want)
			}
			if len(f.Rules) != 0 {
				t.Errorf("rules = %+v, want none", f.Rules)
			}
		}},
		{name: "json", file: "minimal.json", check: func(t *testing.T, f *File) {
			if len(f.Kinds) != 0 || len(f.Rules) != 1 || f.Rules[0].Label.Key != "stage" || *f.Rules[0].Label.Value != "production" {
				t.Errorf("file = %+v", f)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join("..", "testdata", "rules", tc.file)
			f, err := LoadFile(path)
			if err != nil {
				t.Fatalf("LoadFile: %v", err)
			}
			if f.Name != path {
				t.Errorf("Name = %q, want %q", f.Name, path)
			}
			tc.check(t, f)
		})
	}
}

func TestLoadFileMissing(t *testing.T) {
	_, err := LoadFile(filepath.Join(t.TempDir(), "none.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadFile of a missing file: %v, want ErrNotExist", err)
	}
}

// kindsDocument has the shape of internal/cli's KindsDocument.
type kindsDocument struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Kinds      []Kind `json:"kinds"`
	Skipped    []struct {
		GVR    string `json:"gvr"`
		Kind   string `json:"kind"`
		Reason string `json:"reason"`
	} `json:"skipped"`
	Warnings []string `json:"warnings,omitempty"`
}

// The output of `relabel kinds -o yaml|json` loads as a rules file and
// gives back the same kinds, with source "rules".
func TestParseFileKindsDocument(t *testing.T) {
	doc := kindsDocument{APIVersion: "relabel.dev/v1", Kind: "Kinds", Warnings: []string{"metrics.k8s.io/v1beta1: unavailable"}}
	for _, kind := range []string{"Deployment", "StatefulSet", "DaemonSet"} {
		k, _ := Builtin(schema.GroupKind{Group: "apps", Kind: kind})
		doc.Kinds = append(doc.Kinds, k)
	}
	doc.Kinds = append(doc.Kinds, Kind{Group: "demo.relabel.dev", Version: "v1alpha1", Kind: "Rollout", Resource: "rollouts", Namespaced: true,
		SelectorPath: StandardSelectorPath, TemplateLabelsPath: StandardTemplateLabelsPath,
		Strategy: TempCopy, MaxNameLength: 63, Readiness: ReadinessKstatus, Source: SourceCRD})
	doc.Skipped = append(doc.Skipped, struct {
		GVR    string `json:"gvr"`
		Kind   string `json:"kind"`
		Reason string `json:"reason"`
	}{"batch/v1/jobs", "Job", "runs to completion; its pods are not replaced"})
	tests := []struct {
		name    string
		marshal func(any) ([]byte, error)
	}{
		{name: "yaml", marshal: func(v any) ([]byte, error) { return yaml.Marshal(v) }},
		{name: "json", marshal: func(v any) ([]byte, error) { return json.MarshalIndent(v, "", "  ") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := tc.marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			f, err := ParseFile("kinds.out", data)
			if err != nil {
				t.Fatalf("ParseFile:\n%v\n%s", err, data)
			}
			if len(f.Kinds) != len(doc.Kinds) {
				t.Fatalf("%d kinds, want %d", len(f.Kinds), len(doc.Kinds))
			}
			for i, want := range doc.Kinds {
				want.Source = SourceRules
				if got := f.Kinds[i]; !reflect.DeepEqual(got, want) {
					t.Errorf("kinds[%d] =\n%+v\nwant\n%+v", i, got, want)
				}
			}
		})
	}
}

func TestParseFileDocumentMarkers(t *testing.T) {
	tests := []struct{ name, data string }{
		{name: "leading ---", data: "---\n" + header},
		{name: "trailing ---", data: header + "---\n"},
		{name: "trailing --- and a comment", data: header + "---\n# the end\n---\n"},
		{name: "document end", data: header + "...\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseFile("rules.yaml", []byte(tc.data)); err != nil {
				t.Errorf("ParseFile: %v", err)
			}
		})
	}
}

func TestParseFileDefaults(t *testing.T) {
	f, err := ParseFile("rules.yaml", []byte(`apiVersion: relabel.dev/v1
kind: Rules
kinds:
- {group: "", version: v1, kind: Thing, resource: things, selectorPath: spec.selector, templateLabelsPath: spec.template.metadata.labels}
- {group: example.com, version: v1, kind: Other, resource: others, selectorPath: spec.selector, templateLabelsPath: spec.template.metadata.labels,
   readiness: kstatus, strategy: temp-copy, maxNameLength: null}
`))
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range f.Kinds {
		if k.Strategy != TempCopy || k.MaxNameLength != DefaultMaxNameLength || k.Readiness != ReadinessKstatus || k.Source != SourceRules {
			t.Errorf("kinds[%d]: strategy %q, maxNameLength %d, readiness %q, source %q", i, k.Strategy, k.MaxNameLength, k.Readiness, k.Source)
		}
		if err := k.Validate(); err != nil {
			t.Errorf("kinds[%d]: Validate: %v", i, err)
		}
	}
}

const header = "apiVersion: relabel.dev/v1\nkind: Rules\n"

// goodKind is a valid kind item, at line 4 of header+goodKind and following.
const goodKind = `kinds:
- group: example.com
  version: v1
  kind: Workload
  resource: workloads
  selectorPath: spec.workload.selector
  templateLabelsPath: spec.workload.template.metadata.labels
`

// parseErrorTests are files ParseFile refuses; they seed FuzzParseFile too.
var parseErrorTests = []struct {
	name string
	data string
	// want are the error's lines; each line must start with its entry.
	want []string
}{
	{name: "unknown field in a kind", data: header + goodKind + "  selectorpath: spec.selector\n",
		want: []string{"rules.yaml:10: kinds[0].selectorpath: unknown field"}},
	{name: "unknown field at the top", data: header + "labels: {}\n",
		want: []string{"rules.yaml:3: labels: unknown field"}},
	{name: "unknown field nested in a rule", data: header + "rules:\n- label:\n    key: team\n    value: a\n    vaule: b\n",
		want: []string{"rules.yaml:7: rules[0].label.vaule: unknown field"}},
	{name: "field names are case-sensitive", data: "apiversion: relabel.dev/v1\nkind: Rules\n",
		want: []string{"rules.yaml:1: apiversion: unknown field", `rules.yaml:1: apiVersion: must be relabel.dev/v1, not ""`}},
	{name: "unknown field in json", data: "{\n\t\"apiVersion\": \"relabel.dev/v1\",\n\t\"kind\": \"Rules\",\n\t\"rules\": [{\"label\": {\"key\": \"a\", \"value\": \"b\"},\n\t\t\"namespace\": [\"x\"]}]\n}\n",
		want: []string{"rules.yaml:5: rules[0].namespace: unknown field"}},
	{name: "duplicate key", data: header + "rules:\n- label: {key: a, value: b}\n  name: x\n  name: y\n",
		want: []string{`rules.yaml:6: key "name" already set in map`}},
	{name: "wrong type", data: header + goodKind + "  maxNameLength: many\n",
		want: []string{"rules.yaml:10: kinds[0].maxNameLength: must be an integer, not string"}},
	{name: "list instead of a string", data: header + "rules:\n- label: {key: a, value: b}\n  selector: [a, b]\n",
		want: []string{"rules.yaml:5: rules[0].selector: must be a string, not array"}},
	{name: "rules not a list", data: header + "rules: 5\n",
		want: []string{"rules.yaml:3: rules: must be a list, not number"}},
	{name: "bad kind strategy", data: header + goodKind + "  strategy: rolling\n",
		want: []string{`rules.yaml:10: kinds[0].strategy: must be temp-copy or adopt, not "rolling"`}},
	{name: "auto is not a kind strategy", data: header + goodKind + "  strategy: auto\n",
		want: []string{`rules.yaml:10: kinds[0].strategy: must be temp-copy or adopt, not "auto"`}},
	{name: "adopt without owned", data: header + goodKind + "  strategy: adopt\n",
		want: []string{"rules.yaml:10: kinds[0].strategy: adopt needs owned"}},
	{name: "bad owned action", data: header + goodKind + "  strategy: adopt\n  owned: [{version: v1, resource: pods, action: delete}]\n",
		want: []string{`rules.yaml:11: kinds[0].owned[0].action: must be relabel or delete-orphans, not "delete"`}},
	{name: "bad rule strategy", data: header + "rules:\n- label: {key: a, value: b}\n  strategy: rolling\n",
		want: []string{`rules.yaml:5: rules[0].strategy: must be auto, temp-copy or adopt, not "rolling"`}},
	{name: "empty and missing paths", data: header + "kinds:\n- group: example.com\n  version: v1\n  kind: Workload\n  resource: workloads\n  selectorPath: \"\"\n",
		want: []string{
			"rules.yaml:4: kinds[0].templateLabelsPath: must not be empty",
			"rules.yaml:8: kinds[0].selectorPath: must not be empty",
		}},
	{name: "malformed paths", data: header + goodKind + "  extraLabelPaths: [spec..selector, 'spec.selector[0]', .spec, '']\n",
		want: []string{
			`rules.yaml:10: kinds[0].extraLabelPaths[0]: "spec..selector" is not a dotted field path`,
			`rules.yaml:10: kinds[0].extraLabelPaths[1]: "spec.selector[0]" is not a dotted field path`,
			`rules.yaml:10: kinds[0].extraLabelPaths[2]: ".spec" is not a dotted field path`,
			`rules.yaml:10: kinds[0].extraLabelPaths[3]: must not be empty`,
		}},
	{name: "missing names", data: header + "kinds:\n- {}\n",
		want: []string{
			"rules.yaml:4: kinds[0].version: must not be empty",
			"rules.yaml:4: kinds[0].kind: must not be empty",
			"rules.yaml:4: kinds[0].resource: must not be empty",
			"rules.yaml:4: kinds[0].selectorPath: must not be empty",
			"rules.yaml:4: kinds[0].templateLabelsPath: must not be empty",
		}},
	{name: "bad group", data: strings.Replace(header+goodKind, "example.com", "Example_com", 1),
		want: []string{`rules.yaml:4: kinds[0].group: "Example_com": a lowercase RFC 1123 subdomain`}},
	{name: "name length zero", data: header + goodKind + "  maxNameLength: 0\n",
		want: []string{"rules.yaml:10: kinds[0].maxNameLength: must be between 1 and 253, not 0"}},
	{name: "name length too long", data: header + goodKind + "  maxNameLength: 254\n",
		want: []string{"rules.yaml:10: kinds[0].maxNameLength: must be between 1 and 253, not 254"}},
	{name: "CEL syntax error", data: header + goodKind + "  readiness: self.status.\n",
		want: []string{"rules.yaml:10: kinds[0].readiness: invalid CEL at 1:13: Syntax error:"}},
	{name: "CEL returns int", data: header + goodKind + "  readiness: self.spec.replicas + 1\n",
		want: []string{"rules.yaml:10: kinds[0].readiness: CEL expression returns int, not bool"}},
	{name: "CEL returns string", data: header + goodKind + "  readiness: '\"ready\"'\n",
		want: []string{"rules.yaml:10: kinds[0].readiness: CEL expression returns string, not bool"}},
	{name: "CEL undeclared variable", data: header + goodKind + "  readiness: object.status.ready\n",
		want: []string{"rules.yaml:10: kinds[0].readiness: invalid CEL at 1:1: undeclared reference to 'object'"}},
	{name: "CEL error in a block scalar", data: header + goodKind + "  readiness: |-\n    self.status.ready &&\n    self.status.\n",
		want: []string{"rules.yaml:10: kinds[0].readiness: invalid CEL at 2:13: Syntax error:"}},
	{name: "same kind twice", data: header + goodKind + strings.TrimPrefix(goodKind, "kinds:\n"),
		want: []string{"rules.yaml:10: kinds[1]: example.com/v1/workloads is already described by kinds[0]"}},
	{name: "bad label key", data: header + "rules:\n- label: {key: 'bad key', value: a}\n",
		want: []string{`rules.yaml:4: rules[0].label.key: invalid label key "bad key": name part must consist of`}},
	{name: "reserved label key", data: header + "rules:\n- label: {key: kubernetes.io/team, value: a}\n",
		want: []string{`rules.yaml:4: rules[0].label.key: invalid label key "kubernetes.io/team": the prefix kubernetes.io/ is reserved`}},
	{name: "relabel's own key", data: header + "rules:\n- label: {key: relabel.dev/temp, value: a}\n",
		want: []string{`rules.yaml:4: rules[0].label.key: invalid label key "relabel.dev/temp": relabel uses it`}},
	{name: "empty label key", data: header + "rules:\n- label: {value: a}\n",
		want: []string{`rules.yaml:4: rules[0].label.key: must not be empty`}},
	{name: "bad label value", data: header + "rules:\n- label:\n    key: team\n    value: a b\n",
		want: []string{`rules.yaml:6: rules[0].label.value: invalid label value "a b" for key "team"`}},
	{name: "both value and valueFrom", data: header + "rules:\n- name: x\n  label: {key: team, value: a, valueFrom: app}\n",
		want: []string{"rules.yaml:5: rules[0].label: has both value and valueFrom; want one"}},
	{name: "neither value nor valueFrom", data: header + "rules:\n- name: x\n  label: {key: team}\n",
		want: []string{"rules.yaml:5: rules[0].label: has neither value nor valueFrom; want one"}},
	{name: "bad valueFrom", data: header + "rules:\n- label: {key: team, valueFrom: 'a/b/c'}\n",
		want: []string{`rules.yaml:4: rules[0].label.valueFrom: "a/b/c" is not a label key`}},
	{name: "bad selector", data: header + "rules:\n- label: {key: team, value: a}\n  selector: 'app in ('\n",
		want: []string{"rules.yaml:5: rules[0].selector: unable to parse requirement"}},
	{name: "bad gvrs", data: header + "rules:\n- label: {key: team, value: a}\n  gvrs:\n  - apps/v1/deployments\n  - deployments\n  - a/b/c/d\n  - /v1/pods\n",
		want: []string{
			`rules.yaml:7: rules[0].gvrs[1]: "deployments" is not group/version/resource (apps/v1/deployments) or version/resource (v1/pods)`,
			`rules.yaml:8: rules[0].gvrs[2]: "a/b/c/d" is not group/version/resource`,
			`rules.yaml:9: rules[0].gvrs[3]: "/v1/pods" is not group/version/resource`,
		}},
	{name: "bad namespace", data: header + "rules:\n- label: {key: team, value: a}\n  namespaces: [Shop]\n",
		want: []string{`rules.yaml:5: rules[0].namespaces[0]: "Shop": a lowercase RFC 1123 label`}},
	{name: "same rule name twice", data: header + "rules:\n- {name: a, label: {key: team, value: a}}\n- {name: a, label: {key: team, value: b}}\n",
		want: []string{`rules.yaml:5: rules[1].name: "a" is already the name of rules[0]`}},
	{name: "wrong apiVersion and kind", data: "apiVersion: v1\nkind: ConfigMap\n",
		want: []string{
			`rules.yaml:1: apiVersion: must be relabel.dev/v1, not "v1"`,
			`rules.yaml:2: kind: must be Rules (or Kinds, as ` + "`relabel kinds -o yaml`" + ` prints), not "ConfigMap"`,
		}},
	{name: "no apiVersion", data: "kind: Rules\nrules: []\n",
		want: []string{`rules.yaml:1: apiVersion: must be relabel.dev/v1, not ""`}},
	{name: "empty file", data: "",
		want: []string{"rules.yaml:1: empty document; want apiVersion: relabel.dev/v1 and kind: Rules"}},
	{name: "comments only", data: "# nothing\n",
		want: []string{"rules.yaml:1: empty document"}},
	{name: "null", data: "null\n",
		want: []string{"rules.yaml:1: want a mapping with apiVersion: relabel.dev/v1 and kind: Rules"}},
	{name: "a list", data: "- a\n- b\n",
		want: []string{"rules.yaml:1: want a mapping"}},
	{name: "two documents", data: header + "---\n" + header,
		want: []string{"rules.yaml:3: more than one YAML document; want one"}},
	{name: "unclosed flow mapping", data: header + "rules:\n- label: {key: a\n",
		want: []string{"rules.yaml:4: did not find expected ',' or '}'"}},
	{name: "mapping in a scalar", data: header + "rules:\n- label: {key: a, value: b}\n  name: a: b\n",
		want: []string{"rules.yaml:5: mapping values are not allowed in this context"}},
	{name: "tab indentation", data: header + "rules:\n- label: {key: a, value: b}\n\tname: a\n",
		want: []string{"rules.yaml:5: found character that cannot start any token"}},
	{name: "indentation makes another field", data: header + "rules:\n  - label:\n     key: x\n    value: y\n",
		want: []string{"rules.yaml:6: rules[0].value: unknown field"}},
	{name: "several problems, in line order", data: header + "rules:\n- label: {key: a, value: b}\n  strategy: x\n" + strings.Replace(goodKind, "v1", "V 1", 1),
		want: []string{
			`rules.yaml:5: rules[0].strategy: must be auto, temp-copy or adopt, not "x"`,
			`rules.yaml:8: kinds[0].version: "V 1": a DNS-1035 label`,
		}},
}

func TestParseFileErrors(t *testing.T) {
	for _, tc := range parseErrorTests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseFile("rules.yaml", []byte(tc.data))
			if err == nil {
				t.Fatalf("ParseFile accepted the file: %+v", f)
			}
			if f != nil {
				t.Errorf("ParseFile returned a file with its error")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("error has %d lines, want %d:\n%v", len(lines), len(tc.want), err)
			}
			for i, want := range tc.want {
				if !strings.HasPrefix(lines[i], want) {
					t.Errorf("line %d of the error:\n%s\nwant it to start with\n%s", i, lines[i], want)
				}
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.File != "rules.yaml" || fe.Line < 1 {
				t.Errorf("error %v is not a FieldError with file and line", err)
			}
		})
	}
}

func newObj(gvk, namespace, name string, labels map[string]string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]interface{}{}}
	gv, kind, _ := strings.Cut(gvk, ",")
	u.SetAPIVersion(gv)
	u.SetKind(kind)
	u.SetNamespace(namespace)
	u.SetName(name)
	if labels != nil {
		u.SetLabels(labels)
	}
	return u
}

func TestMatch(t *testing.T) {
	f, err := ParseFile("rules.yaml", []byte(header+`rules:
- name: payments-api
  gvrs: [apps/v1/deployments]
  namespaces: [payments, billing]
  selector: "app in (api,worker)"
  label: {key: team, value: payments}
- name: payments
  namespaces: [payments]
  label: {key: team, value: payments-other}
- name: web-workloads
  gvrs: [example.com/v1/workloads, v1/replicationcontrollers]
  selector: tier=web,!legacy
  label: {key: team, value: web}
- name: everything-else
  label: {key: app.kubernetes.io/name, valueFrom: app}
`))
	if err != nil {
		t.Fatal(err)
	}
	deployment, _ := Builtin(schema.GroupKind{Group: "apps", Kind: "Deployment"})
	statefulset, _ := Builtin(schema.GroupKind{Group: "apps", Kind: "StatefulSet"})
	rc := Kind{Version: "v1", Kind: "ReplicationController", Resource: "replicationcontrollers"}
	workloadV2 := workloadKind
	workloadV2.Version = "v2"
	tests := []struct {
		name string
		kind Kind
		obj  *unstructured.Unstructured
		want string // the rule's name; empty when none matches
	}{
		{name: "first rule", kind: deployment, obj: newObj("apps/v1,Deployment", "payments", "api", map[string]string{"app": "api"}), want: "payments-api"},
		{name: "first rule in its other namespace", kind: deployment, obj: newObj("apps/v1,Deployment", "billing", "w", map[string]string{"app": "worker", "x": "y"}), want: "payments-api"},
		{name: "selector does not match", kind: deployment, obj: newObj("apps/v1,Deployment", "payments", "web", map[string]string{"app": "web"}), want: "payments"},
		{name: "no labels", kind: deployment, obj: newObj("apps/v1,Deployment", "payments", "web", nil), want: "payments"},
		{name: "other kind", kind: statefulset, obj: newObj("apps/v1,StatefulSet", "payments", "db", map[string]string{"app": "api"}), want: "payments"},
		{name: "other namespace", kind: deployment, obj: newObj("apps/v1,Deployment", "shop", "api", map[string]string{"app": "api"}), want: "everything-else"},
		{name: "custom resource", kind: workloadKind, obj: newObj("example.com/v1,Workload", "shop", "w", map[string]string{"tier": "web"}), want: "web-workloads"},
		{name: "core group", kind: rc, obj: newObj("v1,ReplicationController", "shop", "r", map[string]string{"tier": "web"}), want: "web-workloads"},
		{name: "excluded by the selector", kind: workloadKind, obj: newObj("example.com/v1,Workload", "shop", "w", map[string]string{"tier": "web", "legacy": ""}), want: "everything-else"},
		{name: "other version", kind: workloadV2, obj: newObj("example.com/v2,Workload", "shop", "w", map[string]string{"tier": "web"}), want: "everything-else"},
		{name: "cluster-scoped", kind: rc, obj: newObj("v1,ReplicationController", "", "r", nil), want: "everything-else"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := f.Match(tc.kind, tc.obj)
			if !ok || r == nil || r.Name != tc.want {
				t.Fatalf("Match = %+v, %v; want rule %q", r, ok, tc.want)
			}
			if r != &f.Rules[indexOf(f, tc.want)] {
				t.Errorf("Match returned a copy, not the file's rule")
			}
		})
	}
	t.Run("no rule matches", func(t *testing.T) {
		g := &File{Rules: f.Rules[:1]}
		if r, ok := g.Match(deployment, newObj("apps/v1,Deployment", "shop", "api", nil)); ok || r != nil {
			t.Errorf("Match = %+v, %v; want none", r, ok)
		}
	})
	t.Run("no rules", func(t *testing.T) {
		if r, ok := (&File{}).Match(deployment, newObj("apps/v1,Deployment", "shop", "api", nil)); ok || r != nil {
			t.Errorf("Match = %+v, %v; want none", r, ok)
		}
	})
	t.Run("rules built by hand", func(t *testing.T) {
		g := &File{Rules: []Rule{
			{Name: "bad selector", Selector: "app in (", Label: RuleLabel{Key: "team", Value: ptr("x")}},
			{Name: "deployments", GVRs: []string{"apps/v1/deployments"}, Selector: "app=api", Label: RuleLabel{Key: "team", Value: ptr("x")}},
		}}
		if r, ok := g.Match(deployment, newObj("apps/v1,Deployment", "shop", "api", map[string]string{"app": "api"})); !ok || r.Name != "deployments" {
			t.Errorf("Match = %+v, %v; want rule deployments", r, ok)
		}
		if r, ok := g.Match(statefulset, newObj("apps/v1,StatefulSet", "shop", "api", map[string]string{"app": "api"})); ok {
			t.Errorf("Match = %+v; want none", r)
		}
	})
}

func indexOf(f *File, name string) int {
	for i, r := range f.Rules {
		if r.Name == name {
			return i
		}
	}
	return -1
}

func TestLabelFor(t *testing.T) {
	web := newObj("apps/v1,Deployment", "shop", "web", map[string]string{"app": "web", "bad": "a b"})
	tests := []struct {
		name    string
		rule    Rule
		obj     *unstructured.Unstructured
		want    Label
		wantErr []string // parts of the message
	}{
		{name: "fixed value", rule: Rule{Label: RuleLabel{Key: "team", Value: ptr("payments")}}, obj: web,
			want: Label{Key: "team", Value: "payments"}},
		{name: "empty fixed value", rule: Rule{Label: RuleLabel{Key: "team", Value: ptr("")}}, obj: web,
			want: Label{Key: "team"}},
		{name: "value from another label", rule: Rule{Label: RuleLabel{Key: "app.kubernetes.io/name", ValueFrom: "app"}}, obj: web,
			want: Label{Key: "app.kubernetes.io/name", Value: "web"}},
		{name: "value from a missing label", rule: Rule{Label: RuleLabel{Key: "app.kubernetes.io/name", ValueFrom: "component"}}, obj: web,
			wantErr: []string{"Deployment shop/web", "no label component", "app.kubernetes.io/name"}},
		{name: "value from an object without labels", rule: Rule{Label: RuleLabel{Key: "team", ValueFrom: "app"}}, obj: newObj("apps/v1,Deployment", "shop", "bare", nil),
			wantErr: []string{"Deployment shop/bare", "no label app"}},
		{name: "value from a label with an invalid value", rule: Rule{Label: RuleLabel{Key: "team", ValueFrom: "bad"}}, obj: web,
			wantErr: []string{"Deployment shop/web", "from label bad", `invalid label value "a b"`}},
		{name: "invalid fixed value", rule: Rule{Label: RuleLabel{Key: "team", Value: ptr("a b")}}, obj: web,
			wantErr: []string{`invalid label value "a b"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.rule.LabelFor(tc.obj)
			if len(tc.wantErr) == 0 {
				if err != nil || got != tc.want {
					t.Fatalf("LabelFor = %+v, %v; want %+v", got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("LabelFor = %+v, want an error", got)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if tc.rule.Label.ValueFrom != "" && !errors.Is(err, ErrNoLabelValue) {
				t.Errorf("error %v does not wrap ErrNoLabelValue", err)
			}
		})
	}
}

var errorLine = regexp.MustCompile(`^fuzz\.yaml:[1-9][0-9]*: `)

func FuzzParseFile(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("..", "testdata", "rules", "*"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seeds in testdata/rules: %v", err)
	}
	for _, path := range seeds {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, tc := range parseErrorTests {
		f.Add([]byte(tc.data))
	}
	f.Add([]byte(header + goodKind + "  readiness: self.status.ready\n"))
	f.Add([]byte(header + "rules:\n- label: {key: a, valueFrom: b}\n  gvrs: [v1/pods]\n  selector: x!=y\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := ParseFile("fuzz.yaml", data)
		if err != nil {
			if file != nil {
				t.Fatalf("a file and an error")
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !errorLine.MatchString(line) {
					t.Fatalf("error line %q does not name the file and line", line)
				}
			}
			return
		}
		for _, k := range file.Kinds {
			if err := k.Validate(); err != nil {
				t.Fatalf("ParseFile accepted a kind Validate refuses: %v", err)
			}
			if k.Source != SourceRules {
				t.Fatalf("source %q", k.Source)
			}
		}
		u := newObj("apps/v1,Deployment", "ns", "n", map[string]string{"app": "web"})
		for _, r := range file.Rules {
			if _, err := r.LabelFor(u); err != nil && r.Label.ValueFrom == "" {
				t.Fatalf("ParseFile accepted a rule whose fixed label is invalid: %v", err)
			}
		}
		if len(file.Kinds) > 0 {
			file.Match(file.Kinds[0], u)
		}
	})
}
