package unstructured

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"relabel.dev/relabel/internal/testutil"
	"relabel.dev/relabel/rules"
)

// stage is the label most tests add.
var stage = Label{Key: "stage", Value: "production"}

// fixture reads testdata/objects/NAME.yaml.
func fixture(t testing.TB, name string, mutators ...testutil.Mutator) *unstructured.Unstructured {
	t.Helper()
	return testutil.Unstructured(t, "testdata/objects/"+name+".yaml", mutators...)
}

// set returns a mutator that sets the field at fields to value, which must be
// a JSON value (map[string]interface{}, []interface{}, string, int64, ...).
func set(value interface{}, fields ...string) testutil.Mutator {
	return func(u *unstructured.Unstructured) {
		if err := unstructured.SetNestedField(u.Object, value, fields...); err != nil {
			panic(err)
		}
	}
}

// remove returns a mutator that removes the field at fields.
func remove(fields ...string) testutil.Mutator {
	return func(u *unstructured.Unstructured) { unstructured.RemoveNestedField(u.Object, fields...) }
}

func builtinKind(t testing.TB, kind string) rules.Kind {
	t.Helper()
	k, ok := rules.Builtin(schema.GroupKind{Group: "apps", Kind: kind})
	if !ok {
		t.Fatalf("no built-in rules for apps %s", kind)
	}
	return k
}

// rolloutKind is what discovery makes of testdata/crd-rollout.yaml.
var rolloutKind = rules.Kind{
	Group: "demo.relabel.dev", Version: "v1alpha1", Kind: "Rollout", Resource: "rollouts", Namespaced: true,
	SelectorPath: rules.StandardSelectorPath, TemplateLabelsPath: rules.StandardTemplateLabelsPath,
	Strategy: rules.TempCopy, MaxNameLength: 63, Readiness: rules.ReadinessKstatus, Source: rules.SourceCRD,
}

// kindFor picks the rules for a fixture by its kind.
func kindFor(t testing.TB, obj *unstructured.Unstructured) rules.Kind {
	t.Helper()
	if obj.GetKind() == "Rollout" {
		return rolloutKind
	}
	return builtinKind(t, obj.GetKind())
}

// allFixtures are the workload fixtures under testdata/objects.
var allFixtures = []string{
	"deployment", "deployment-labelled", "deployment-other-value", "deployment-match-expressions",
	"statefulset", "daemonset", "rollout", "rollout-not-ready",
}

func stringMapAt(t testing.TB, obj *unstructured.Unstructured, fields ...string) map[string]string {
	t.Helper()
	m, _, err := unstructured.NestedStringMap(obj.Object, fields...)
	if err != nil {
		t.Fatalf("reading %v: %v", fields, err)
	}
	return m
}

func selectorLabels(t testing.TB, obj *unstructured.Unstructured) map[string]string {
	t.Helper()
	return stringMapAt(t, obj, "spec", "selector", "matchLabels")
}

func templateLabels(t testing.TB, obj *unstructured.Unstructured) map[string]string {
	t.Helper()
	return stringMapAt(t, obj, "spec", "template", "metadata", "labels")
}

// with returns a copy of m with the extra key and value.
func with(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for key, val := range m {
		out[key] = val
	}
	out[k] = v
	return out
}
