package unstructured

import (
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
)

// exprs builds a matchExpressions list; each item is key, operator, values...
func exprs(items ...[]string) []interface{} {
	var out []interface{}
	for _, it := range items {
		e := map[string]interface{}{"key": it[0], "operator": it[1]}
		if len(it) > 2 {
			var values []interface{}
			for _, v := range it[2:] {
				values = append(values, v)
			}
			e["values"] = values
		}
		out = append(out, e)
	}
	return out
}

func labelMap(kv ...string) map[string]interface{} {
	m := map[string]interface{}{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func TestCheck(t *testing.T) {
	anyStage := Label{Key: "stage", AnyValue: true}
	tests := []struct {
		name    string
		obj     *unstructured.Unstructured
		label   Label
		want    Report
		wantErr string
	}{
		{name: "missing everywhere", obj: fixture(t, "deployment"), label: stage,
			want: Report{Selector: Missing, Template: Missing, Metadata: Missing}},
		{name: "present everywhere", obj: fixture(t, "deployment-labelled"), label: stage,
			want: Report{Selector: Present, Template: Present, Metadata: Present}},
		{name: "different everywhere", obj: fixture(t, "deployment-other-value"), label: stage,
			want: Report{Selector: Different, Template: Different, Metadata: Different}},
		{name: "present in metadata only", obj: fixture(t, "daemonset"), label: stage,
			want: Report{Selector: Missing, Template: Missing, Metadata: Present}},
		{name: "present in selector only",
			obj:   fixture(t, "deployment", set(labelMap("app", "web", "stage", "production"), "spec", "selector", "matchLabels")),
			label: stage, want: Report{Selector: Present, Template: Missing, Metadata: Missing}},
		{name: "present in template only",
			obj:   fixture(t, "deployment", set(labelMap("app", "web", "stage", "production"), "spec", "template", "metadata", "labels")),
			label: stage, want: Report{Selector: Missing, Template: Present, Metadata: Missing}},
		{name: "different in selector only",
			obj:   fixture(t, "deployment-labelled", set(labelMap("app", "api", "stage", "staging"), "spec", "selector", "matchLabels")),
			label: stage, want: Report{Selector: Different, Template: Present, Metadata: Present}},
		{name: "different in template only",
			obj:   fixture(t, "deployment-labelled", set(labelMap("app", "api", "stage", "staging"), "spec", "template", "metadata", "labels")),
			label: stage, want: Report{Selector: Present, Template: Different, Metadata: Present}},
		{name: "different in metadata only",
			obj:   fixture(t, "deployment-labelled", set(labelMap("app", "api", "stage", "staging"), "metadata", "labels")),
			label: stage, want: Report{Selector: Present, Template: Present, Metadata: Different}},
		{name: "any value matches another value", obj: fixture(t, "deployment-other-value"), label: anyStage,
			want: Report{Selector: Present, Template: Present, Metadata: Present}},
		{name: "any value missing", obj: fixture(t, "deployment"), label: anyStage,
			want: Report{Selector: Missing, Template: Missing, Metadata: Missing}},
		{name: "any value in metadata only", obj: fixture(t, "daemonset"), label: anyStage,
			want: Report{Selector: Missing, Template: Missing, Metadata: Present}},
		{name: "empty value is a value of its own", obj: fixture(t, "deployment-labelled"), label: Label{Key: "stage"},
			want: Report{Selector: Different, Template: Different, Metadata: Different}},
		{name: "selector with matchExpressions only", obj: fixture(t, "deployment-match-expressions"), label: stage,
			want: Report{Selector: Missing, Template: Missing, Metadata: Missing}},
		{name: "no labels anywhere",
			obj:   fixture(t, "deployment", remove("metadata", "labels"), remove("spec", "template", "metadata"), remove("spec", "selector", "matchLabels")),
			label: stage, want: Report{Selector: Missing, Template: Missing, Metadata: Missing}},
		{name: "custom resource", obj: fixture(t, "rollout-not-ready"), label: stage,
			want: Report{Selector: Present, Template: Present, Metadata: Present}},
		{name: "statefulset", obj: fixture(t, "statefulset"), label: stage,
			want: Report{Selector: Missing, Template: Missing, Metadata: Missing}},

		{name: "matchLabels is not a map", obj: fixture(t, "deployment", set("app=web", "spec", "selector", "matchLabels")),
			label: stage, wantErr: "spec.selector.matchLabels"},
		{name: "template label is not a string", obj: fixture(t, "deployment", set(map[string]interface{}{"app": int64(1)}, "spec", "template", "metadata", "labels")),
			label: stage, wantErr: "spec.template.metadata.labels"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Check(tc.obj, kindFor(t, tc.obj), tc.label)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Check = %+v, %v; want an error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if got != tc.want {
				t.Errorf("Check = %+v, want %+v", got, tc.want)
			}
			if got.Complete() != (tc.want == Report{Selector: Present, Template: Present, Metadata: Present}) {
				t.Errorf("Complete() = %v for %+v", got.Complete(), got)
			}
		})
	}
}

// A Report is written as names, and read back from them, whatever its size
// in memory.
func TestReportJSON(t *testing.T) {
	r := Report{Selector: Missing, Template: Present, Metadata: Different}
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"selector":"missing","template":"present","metadata":"different"}`; string(out) != want {
		t.Errorf("Marshal = %s, want %s", out, want)
	}
	var back Report
	if err := json.Unmarshal(out, &back); err != nil || back != r {
		t.Errorf("Unmarshal = %+v, %v; want %+v", back, err, r)
	}
	if err := json.Unmarshal([]byte(`{"selector":"maybe"}`), &back); err == nil || !strings.Contains(err.Error(), `"maybe"`) {
		t.Errorf("Unmarshal of an unknown presence: %v, want an error naming it", err)
	}
	if _, err := json.Marshal(Report{Selector: 9}); err == nil {
		t.Error("Marshal of an unknown presence: no error")
	}
}

func TestAddLabel(t *testing.T) {
	tests := []struct {
		name  string
		obj   *unstructured.Unstructured
		label Label
		// wantErr is the sentinel the error must wrap; wantErrText a part of its message.
		wantErr     error
		wantErrText string
	}{
		{name: "deployment", obj: fixture(t, "deployment"), label: stage},
		{name: "already labelled", obj: fixture(t, "deployment-labelled"), label: stage},
		{name: "statefulset", obj: fixture(t, "statefulset"), label: stage},
		{name: "daemonset labelled in metadata only", obj: fixture(t, "daemonset"), label: stage},
		{name: "custom resource", obj: fixture(t, "rollout"), label: stage},
		{name: "selector with matchExpressions only", obj: fixture(t, "deployment-match-expressions"), label: stage},
		{name: "prefixed key", obj: fixture(t, "deployment"), label: Label{Key: "example.com/stage", Value: "production"}},
		{name: "template has another value", label: stage,
			obj: fixture(t, "deployment-labelled", set(labelMap("app", "api", "stage", "staging"), "spec", "template", "metadata", "labels"))},
		{name: "metadata has another value", label: stage,
			obj: fixture(t, "deployment-labelled", set(labelMap("stage", "staging"), "metadata", "labels"))},
		{name: "no template labels", obj: fixture(t, "deployment", remove("spec", "template", "metadata", "labels")), label: stage},
		{name: "no metadata labels", obj: fixture(t, "deployment", remove("metadata", "labels")), label: stage},
		{name: "matchExpressions In the value", label: stage,
			obj: fixture(t, "deployment-match-expressions", set(exprs([]string{"app", "In", "search"}, []string{"stage", "In", "production", "staging"}), "spec", "selector", "matchExpressions"))},
		{name: "matchExpressions Exists", label: stage,
			obj: fixture(t, "deployment-match-expressions", set(exprs([]string{"app", "In", "search"}, []string{"stage", "Exists"}), "spec", "selector", "matchExpressions"))},
		{name: "matchExpressions NotIn other values", label: stage,
			obj: fixture(t, "deployment-match-expressions", set(exprs([]string{"app", "In", "search"}, []string{"stage", "NotIn", "staging"}), "spec", "selector", "matchExpressions"))},
		{name: "matchExpressions DoesNotExist on another key", label: stage,
			obj: fixture(t, "deployment-match-expressions", set(exprs([]string{"app", "In", "search"}, []string{"canary", "DoesNotExist"}), "spec", "selector", "matchExpressions"))},

		{name: "selector has another value", obj: fixture(t, "deployment-other-value"), label: stage, wantErr: ErrSelectorConflict,
			wantErrText: "stage=staging, not production"},
		{name: "empty value against a set one", obj: fixture(t, "deployment-labelled"), label: Label{Key: "stage"}, wantErr: ErrSelectorConflict},
		{name: "matchExpressions DoesNotExist on the key", label: stage, wantErr: ErrSelectorConflict,
			obj: fixture(t, "deployment-match-expressions", set(exprs([]string{"app", "In", "search"}, []string{"stage", "DoesNotExist"}), "spec", "selector", "matchExpressions"))},
		{name: "matchExpressions NotIn the value", label: stage, wantErr: ErrSelectorConflict,
			obj: fixture(t, "deployment-match-expressions", set(exprs([]string{"app", "In", "search"}, []string{"stage", "NotIn", "production"}), "spec", "selector", "matchExpressions"))},
		{name: "matchExpressions In other values", label: stage, wantErr: ErrSelectorConflict,
			obj: fixture(t, "deployment-match-expressions", set(exprs([]string{"app", "In", "search"}, []string{"stage", "In", "staging", "qa"}), "spec", "selector", "matchExpressions"))},
		{name: "no selector", obj: fixture(t, "deployment", remove("spec", "selector")), label: stage, wantErrText: "no selector at spec.selector"},
		{name: "no spec", obj: fixture(t, "deployment", remove("spec")), label: stage, wantErrText: "no selector at spec.selector"},
		{name: "null selector", obj: fixture(t, "deployment", set(nil, "spec", "selector")), label: stage, wantErrText: "spec.selector"},
		{name: "matchLabels is not a map", obj: fixture(t, "deployment", set("app=web", "spec", "selector", "matchLabels")), label: stage,
			wantErrText: "spec.selector.matchLabels"},
		{name: "template labels are not a map", obj: fixture(t, "deployment", set("app=web", "spec", "template", "metadata", "labels")), label: stage,
			wantErrText: "spec.template.metadata.labels"},
		{name: "template is not a map", obj: fixture(t, "deployment", set("x", "spec", "template")), label: stage,
			wantErrText: "spec.template"},
		{name: "matchExpressions malformed", label: stage, wantErrText: "matchExpressions",
			obj: fixture(t, "deployment-match-expressions", set("stage", "spec", "selector", "matchExpressions"))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kind := kindFor(t, tc.obj)
			before := tc.obj.DeepCopy()
			matchedBefore, _ := SelectorMatchesTemplate(before, kind)

			err := AddLabel(tc.obj, kind, tc.label)
			if tc.wantErr != nil || tc.wantErrText != "" {
				if err == nil {
					t.Fatal("AddLabel succeeded, want an error")
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Errorf("error %v does not wrap %v", err, tc.wantErr)
				}
				if tc.wantErr == nil && errors.Is(err, ErrSelectorConflict) {
					t.Errorf("error %v wraps ErrSelectorConflict, want another error", err)
				}
				if !strings.Contains(err.Error(), tc.wantErrText) {
					t.Errorf("error %q does not contain %q", err, tc.wantErrText)
				}
				if !reflect.DeepEqual(before.Object, tc.obj.Object) {
					t.Errorf("the object changed although AddLabel failed:\n%v\nwas\n%v", tc.obj.Object, before.Object)
				}
				return
			}
			if err != nil {
				t.Fatalf("AddLabel: %v", err)
			}

			// Exactly the three label maps changed, by the label alone.
			want := before.DeepCopy()
			for _, path := range [][]string{{"spec", "selector", "matchLabels"}, {"spec", "template", "metadata", "labels"}, {"metadata", "labels"}} {
				m := with(stringMapAt(t, before, path...), tc.label.Key, tc.label.Value)
				if err := unstructured.SetNestedStringMap(want.Object, m, path...); err != nil {
					t.Fatal(err)
				}
			}
			if !reflect.DeepEqual(want.Object, tc.obj.Object) {
				t.Errorf("AddLabel made\n%v\nwant\n%v", tc.obj.Object, want.Object)
			}

			report, err := Check(tc.obj, kind, tc.label)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if !report.Complete() {
				t.Errorf("Check after AddLabel = %+v, want complete", report)
			}
			matched, err := SelectorMatchesTemplate(tc.obj, kind)
			if err != nil {
				t.Fatalf("SelectorMatchesTemplate: %v", err)
			}
			if matchedBefore && !matched {
				t.Error("the selector matched the template before AddLabel and no longer does")
			}

			// A second time changes nothing.
			again := tc.obj.DeepCopy()
			if err := AddLabel(again, kind, tc.label); err != nil {
				t.Fatalf("AddLabel again: %v", err)
			}
			if !reflect.DeepEqual(again.Object, tc.obj.Object) {
				t.Error("AddLabel is not idempotent")
			}
		})
	}
}

func TestSelectorMatchesTemplate(t *testing.T) {
	tests := []struct {
		name    string
		obj     *unstructured.Unstructured
		want    bool
		wantErr string
	}{
		{name: "deployment", obj: fixture(t, "deployment"), want: true},
		{name: "labelled deployment", obj: fixture(t, "deployment-labelled"), want: true},
		{name: "other value", obj: fixture(t, "deployment-other-value"), want: true},
		{name: "matchExpressions", obj: fixture(t, "deployment-match-expressions"), want: true},
		{name: "statefulset", obj: fixture(t, "statefulset"), want: true},
		{name: "daemonset", obj: fixture(t, "daemonset"), want: true},
		{name: "custom resource", obj: fixture(t, "rollout"), want: true},
		{name: "template lacks a selector label", want: false,
			obj: fixture(t, "deployment", set(labelMap("tier", "frontend"), "spec", "template", "metadata", "labels"))},
		{name: "template has another value", want: false,
			obj: fixture(t, "deployment", set(labelMap("app", "api"), "spec", "template", "metadata", "labels"))},
		{name: "no template labels", want: false, obj: fixture(t, "deployment", remove("spec", "template", "metadata", "labels"))},
		{name: "matchExpressions NotIn not satisfied", want: false,
			obj: fixture(t, "deployment-match-expressions", set(labelMap("app", "search", "track", "canary"), "spec", "template", "metadata", "labels"))},
		{name: "matchExpressions and matchLabels both", want: true,
			obj: fixture(t, "deployment-match-expressions", set(labelMap("app", "search"), "spec", "selector", "matchLabels"))},
		{name: "matchExpressions and matchLabels, labels unmet", want: false,
			obj: fixture(t, "deployment-match-expressions", set(labelMap("stage", "production"), "spec", "selector", "matchLabels"))},
		{name: "empty selector selects nothing", want: false, obj: fixture(t, "deployment", set(map[string]interface{}{}, "spec", "selector"))},
		{name: "empty matchLabels selects nothing", want: false, obj: fixture(t, "deployment", set(map[string]interface{}{}, "spec", "selector", "matchLabels"))},

		{name: "no selector", obj: fixture(t, "deployment", remove("spec", "selector")), wantErr: "spec.selector"},
		{name: "unknown operator", wantErr: "spec.selector",
			obj: fixture(t, "deployment-match-expressions", set(exprs([]string{"app", "Like", "search"}), "spec", "selector", "matchExpressions"))},
		{name: "In without values", wantErr: "spec.selector",
			obj: fixture(t, "deployment-match-expressions", set(exprs([]string{"app", "In"}), "spec", "selector", "matchExpressions"))},
		{name: "invalid key", wantErr: "spec.selector",
			obj: fixture(t, "deployment", set(labelMap("not a key", "web"), "spec", "selector", "matchLabels"))},
		{name: "template labels are not a map", wantErr: "spec.template.metadata.labels",
			obj: fixture(t, "deployment", set("app=web", "spec", "template", "metadata", "labels"))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kind := kindFor(t, tc.obj)
			got, err := SelectorMatchesTemplate(tc.obj, kind)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("SelectorMatchesTemplate = %v, %v; want an error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("SelectorMatchesTemplate: %v", err)
			}
			if got != tc.want {
				t.Fatalf("SelectorMatchesTemplate = %v, want %v", got, tc.want)
			}
			if !got {
				return
			}
			if err := AddLabel(tc.obj, kind, Label{Key: "relabel-test", Value: "x"}); err != nil {
				t.Fatalf("AddLabel: %v", err)
			}
			if after, err := SelectorMatchesTemplate(tc.obj, kind); err != nil || !after {
				t.Errorf("after AddLabel: SelectorMatchesTemplate = %v, %v; want true", after, err)
			}
		})
	}
}

func TestForCreate(t *testing.T) {
	obj := fixture(t, "deployment",
		set("2024-06-01T00:00:00Z", "metadata", "deletionTimestamp"),
		set(int64(30), "metadata", "deletionGracePeriodSeconds"),
		set("/apis/apps/v1/namespaces/shop/deployments/web", "metadata", "selfLink"))
	pristine := obj.DeepCopy()

	out := ForCreate(obj)

	if !reflect.DeepEqual(obj.Object, pristine.Object) {
		t.Error("ForCreate changed its argument")
	}
	for _, f := range []string{"uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
		"deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"} {
		if _, found, _ := unstructured.NestedFieldNoCopy(out.Object, "metadata", f); found {
			t.Errorf("metadata.%s is kept", f)
		}
	}
	if _, found := out.Object["status"]; found {
		t.Error("status is kept")
	}
	checks := []struct {
		name string
		got  interface{}
		want interface{}
	}{
		{"apiVersion", out.GetAPIVersion(), obj.GetAPIVersion()},
		{"kind", out.GetKind(), obj.GetKind()},
		{"name", out.GetName(), obj.GetName()},
		{"namespace", out.GetNamespace(), obj.GetNamespace()},
		{"labels", out.GetLabels(), obj.GetLabels()},
		{"annotations", out.GetAnnotations(), obj.GetAnnotations()},
		{"ownerReferences", out.GetOwnerReferences(), obj.GetOwnerReferences()},
		{"finalizers", out.GetFinalizers(), obj.GetFinalizers()},
		{"spec", out.Object["spec"], obj.Object["spec"]},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !reflect.DeepEqual(c.got, c.want) {
				t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
			}
		})
	}

	// The copy is deep.
	if err := unstructured.SetNestedField(out.Object, int64(9), "spec", "replicas"); err != nil {
		t.Fatal(err)
	}
	unstructured.RemoveNestedField(out.Object, "spec", "template", "metadata", "labels", "app")
	if !reflect.DeepEqual(obj.Object, pristine.Object) {
		t.Error("changing ForCreate's result changed its argument")
	}
}

func TestTempCopy(t *testing.T) {
	for _, name := range []string{"deployment", "deployment-other-value", "deployment-match-expressions", "statefulset", "daemonset", "rollout"} {
		t.Run(name, func(t *testing.T) {
			original := fixture(t, name)
			pristine := original.DeepCopy()
			kind := kindFor(t, original)
			uid := string(original.GetUID())
			tempName := TempName(original.GetName(), "-temp", kind.MaxNameLength)

			temp, err := TempCopy(original, kind, tempName, stage)
			if err != nil {
				t.Fatalf("TempCopy: %v", err)
			}
			if !reflect.DeepEqual(original.Object, pristine.Object) {
				t.Error("TempCopy changed the original")
			}
			if temp.GetName() != tempName || temp.GetNamespace() != original.GetNamespace() {
				t.Errorf("temp is %s/%s, want %s/%s", temp.GetNamespace(), temp.GetName(), original.GetNamespace(), tempName)
			}
			if temp.GetUID() != "" || temp.GetResourceVersion() != "" || temp.GetGeneration() != 0 {
				t.Errorf("temp keeps server fields: uid=%q resourceVersion=%q generation=%d", temp.GetUID(), temp.GetResourceVersion(), temp.GetGeneration())
			}
			if _, found := temp.Object["status"]; found {
				t.Error("temp keeps the status")
			}
			if refs := temp.GetOwnerReferences(); len(refs) != 0 {
				t.Errorf("temp has ownerReferences %v", refs)
			}
			if f := temp.GetFinalizers(); len(f) != 0 {
				t.Errorf("temp has finalizers %v", f)
			}

			if got, want := selectorLabels(t, temp), with(selectorLabels(t, original), TempLabelKey, uid); !maps.Equal(got, want) {
				t.Errorf("selector = %v, want %v", got, want)
			}
			if got, want := templateLabels(t, temp), with(templateLabels(t, original), TempLabelKey, uid); !maps.Equal(got, want) {
				t.Errorf("template labels = %v, want %v", got, want)
			}
			wantLabels := with(original.GetLabels(), TempLabelKey, uid)
			for _, k := range trackingLabels {
				delete(wantLabels, k)
			}
			if got := temp.GetLabels(); !maps.Equal(got, wantLabels) {
				t.Errorf("labels = %v, want %v", got, wantLabels)
			}
			wantAnn := with(with(with(original.GetAnnotations(), OriginNameAnnotation, original.GetName()), OriginUIDAnnotation, uid), TargetAnnotation, "stage=production")
			for _, k := range trackingAnnotations {
				delete(wantAnn, k)
			}
			gotAnn := maps.Clone(temp.GetAnnotations())
			delete(gotAnn, OriginMetadataAnnotation)
			if !maps.Equal(gotAnn, wantAnn) {
				t.Errorf("annotations = %v, want %v", gotAnn, wantAnn)
			}
			if !IsTemp(temp) || IsTemp(original) {
				t.Errorf("IsTemp(temp) = %v, IsTemp(original) = %v", IsTemp(temp), IsTemp(original))
			}
			if ok, err := SelectorMatchesTemplate(temp, kind); err != nil || !ok {
				t.Errorf("the temp's selector does not match its template: %v, %v", ok, err)
			}
			// The copy's selector must not select the original's pods.
			if ok, err := SelectorMatchesTemplate(withTemplateOf(t, temp, original), kind); err != nil || ok {
				t.Errorf("the temp's selector matches the original's pods: %v, %v", ok, err)
			}
			// The temp differs from the original only where TempCopy said.
			if !reflect.DeepEqual(stripped(temp).Object, stripped(ForCreate(original)).Object) {
				t.Errorf("temp differs from the original beyond names, labels and annotations:\n%v\n%v", stripped(temp).Object, stripped(ForCreate(original)).Object)
			}
		})
	}

	t.Run("no selector", func(t *testing.T) {
		original := fixture(t, "deployment", remove("spec", "selector"))
		if _, err := TempCopy(original, builtinKind(t, "Deployment"), "web-temp", stage); err == nil {
			t.Error("TempCopy succeeded without a selector")
		}
	})
	t.Run("original already has the temp key", func(t *testing.T) {
		original := fixture(t, "deployment", set(labelMap("app", "web", TempLabelKey, "other"), "spec", "selector", "matchLabels"))
		_, err := TempCopy(original, builtinKind(t, "Deployment"), "web-temp", stage)
		if !errors.Is(err, ErrSelectorConflict) {
			t.Errorf("TempCopy: %v, want ErrSelectorConflict", err)
		}
	})
}

// withTemplateOf returns a copy of obj with the pod template labels of other.
func withTemplateOf(t testing.TB, obj, other *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	out := obj.DeepCopy()
	if err := unstructured.SetNestedStringMap(out.Object, templateLabels(t, other), "spec", "template", "metadata", "labels"); err != nil {
		t.Fatal(err)
	}
	return out
}

// stripped is obj without the fields TempCopy and OriginalFromCopy change.
func stripped(obj *unstructured.Unstructured) *unstructured.Unstructured {
	out := obj.DeepCopy()
	for _, f := range [][]string{
		{"metadata", "name"}, {"metadata", "labels"}, {"metadata", "annotations"}, {"metadata", "ownerReferences"},
		{"metadata", "finalizers"}, {"spec", "selector", "matchLabels"}, {"spec", "template", "metadata", "labels"},
	} {
		unstructured.RemoveNestedField(out.Object, f...)
	}
	return out
}

// A copy carries no GitOps tracking metadata of its own (a tool pruning
// what is not in Git would delete it while the original is gone); its
// selector and template keep every label, and the original rebuilt from the
// copy gets the metadata back.
func TestTempCopyIsNotTracked(t *testing.T) {
	original := fixture(t, "deployment",
		set(labelMap("app", "web", "app.kubernetes.io/instance", "shop", "kapp.k14s.io/app", "123"), "metadata", "labels"),
		set(labelMap("argocd.argoproj.io/tracking-id", "shop:apps/Deployment:shop/web", "team", "storefront"), "metadata", "annotations"),
		set(labelMap("app", "web", "app.kubernetes.io/instance", "shop"), "spec", "template", "metadata", "labels"))
	kind := kindFor(t, original)
	temp, err := TempCopy(original, kind, "web-temp", stage)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"app.kubernetes.io/instance", "kapp.k14s.io/app"} {
		if _, ok := temp.GetLabels()[k]; ok {
			t.Errorf("the copy keeps the tracking label %s", k)
		}
	}
	if _, ok := temp.GetAnnotations()["argocd.argoproj.io/tracking-id"]; ok {
		t.Error("the copy keeps Argo CD's tracking annotation")
	}
	if temp.GetAnnotations()["team"] != "storefront" {
		t.Error("the copy lost an ordinary annotation")
	}
	if templateLabels(t, temp)["app.kubernetes.io/instance"] != "shop" {
		t.Error("the copy's pod template lost a label")
	}
	back, err := OriginalFromCopy(temp, kind)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(back.GetLabels(), original.GetLabels()) || !maps.Equal(back.GetAnnotations(), original.GetAnnotations()) {
		t.Errorf("rebuilt labels %v annotations %v, want %v %v", back.GetLabels(), back.GetAnnotations(), original.GetLabels(), original.GetAnnotations())
	}
}

func TestOriginalFromCopy(t *testing.T) {
	for _, name := range allFixtures {
		t.Run(name, func(t *testing.T) {
			original := fixture(t, name)
			kind := kindFor(t, original)
			temp, err := TempCopy(original, kind, original.GetName()+"-temp", stage)
			if err != nil {
				t.Fatalf("TempCopy: %v", err)
			}
			tempBefore := temp.DeepCopy()

			back, err := OriginalFromCopy(temp, kind)
			if err != nil {
				t.Fatalf("OriginalFromCopy: %v", err)
			}
			if !reflect.DeepEqual(temp.Object, tempBefore.Object) {
				t.Error("OriginalFromCopy changed the temp")
			}
			if back.GetName() != original.GetName() || back.GetNamespace() != original.GetNamespace() {
				t.Errorf("got %s/%s, want %s/%s", back.GetNamespace(), back.GetName(), original.GetNamespace(), original.GetName())
			}
			if IsTemp(back) {
				t.Error("the rebuilt original is a temp")
			}
			if got, want := selectorLabels(t, back), selectorLabels(t, original); !maps.Equal(got, want) {
				t.Errorf("selector matchLabels = %v, want %v", got, want)
			}
			gotExprs, _, _ := unstructured.NestedSlice(back.Object, "spec", "selector", "matchExpressions")
			wantExprs, _, _ := unstructured.NestedSlice(original.Object, "spec", "selector", "matchExpressions")
			if !reflect.DeepEqual(gotExprs, wantExprs) {
				t.Errorf("selector matchExpressions = %v, want %v", gotExprs, wantExprs)
			}
			if got, want := templateLabels(t, back), templateLabels(t, original); !maps.Equal(got, want) {
				t.Errorf("template labels = %v, want %v", got, want)
			}
			if got, want := back.GetLabels(), original.GetLabels(); !maps.Equal(got, want) {
				t.Errorf("labels = %v, want %v", got, want)
			}
			if got, want := back.GetAnnotations(), original.GetAnnotations(); !maps.Equal(got, want) {
				t.Errorf("annotations = %v, want %v", got, want)
			}
			if ok, err := SelectorMatchesTemplate(back, kind); err != nil || !ok {
				t.Errorf("the rebuilt selector does not match the template: %v, %v", ok, err)
			}
			// Everything else is the original's, as it would be created.
			if !reflect.DeepEqual(stripped(back).Object, stripped(ForCreate(original)).Object) {
				t.Errorf("rebuilt\n%v\nwant\n%v", stripped(back).Object, stripped(ForCreate(original)).Object)
			}
			// And it can be recreated with the label.
			if _, err := Recreated(back, kind, Label{Key: "relabel-test", Value: "x"}); err != nil {
				t.Errorf("Recreated: %v", err)
			}
		})
	}

	errTests := []struct {
		name string
		obj  *unstructured.Unstructured
	}{
		{"not a temp", fixture(t, "deployment")},
		{"temp label without the origin annotation", fixture(t, "deployment", set(labelMap("app", "web", TempLabelKey, "u"), "metadata", "labels"))},
		{"origin annotation without the temp label", fixture(t, "deployment", set(labelMap(OriginNameAnnotation, "web"), "metadata", "annotations"))},
	}
	for _, tc := range errTests {
		t.Run(tc.name, func(t *testing.T) {
			if out, err := OriginalFromCopy(tc.obj, builtinKind(t, "Deployment")); err == nil {
				t.Errorf("OriginalFromCopy = %v, want an error", out)
			}
		})
	}
}

func TestIsTemp(t *testing.T) {
	tests := []struct {
		name string
		obj  *unstructured.Unstructured
		want bool
	}{
		{"user object", fixture(t, "deployment"), false},
		{"temp label", fixture(t, "deployment", set(labelMap(TempLabelKey, ""), "metadata", "labels")), true},
		{"temp label in the selector only", fixture(t, "deployment", set(labelMap(TempLabelKey, "u"), "spec", "selector", "matchLabels")), false},
		{"no labels", fixture(t, "deployment", remove("metadata", "labels")), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsTemp(tc.obj); got != tc.want {
				t.Errorf("IsTemp = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRecreated(t *testing.T) {
	for _, name := range []string{"deployment", "deployment-labelled", "deployment-match-expressions", "statefulset", "daemonset", "rollout"} {
		t.Run(name, func(t *testing.T) {
			backup := fixture(t, name)
			pristine := backup.DeepCopy()
			kind := kindFor(t, backup)

			out, err := Recreated(backup, kind, stage)
			if err != nil {
				t.Fatalf("Recreated: %v", err)
			}
			if !reflect.DeepEqual(backup.Object, pristine.Object) {
				t.Error("Recreated changed the backup")
			}
			if out.GetName() != backup.GetName() || out.GetNamespace() != backup.GetNamespace() {
				t.Errorf("recreated %s/%s from %s/%s", out.GetNamespace(), out.GetName(), backup.GetNamespace(), backup.GetName())
			}
			if out.GetUID() != "" || out.GetResourceVersion() != "" || len(out.GetManagedFields()) != 0 {
				t.Error("recreated object keeps server fields")
			}
			if _, found := out.Object["status"]; found {
				t.Error("recreated object keeps the status")
			}
			if !reflect.DeepEqual(out.GetOwnerReferences(), backup.GetOwnerReferences()) {
				t.Errorf("ownerReferences = %v, want the backup's %v", out.GetOwnerReferences(), backup.GetOwnerReferences())
			}
			report, err := Check(out, kind, stage)
			if err != nil || !report.Complete() {
				t.Errorf("Check = %+v, %v; want complete", report, err)
			}
			if ok, err := SelectorMatchesTemplate(out, kind); err != nil || !ok {
				t.Errorf("selector does not match template: %v, %v", ok, err)
			}
		})
	}
	t.Run("selector conflict", func(t *testing.T) {
		out, err := Recreated(fixture(t, "deployment-other-value"), builtinKind(t, "Deployment"), stage)
		if !errors.Is(err, ErrSelectorConflict) || out != nil {
			t.Errorf("Recreated = %v, %v; want nil, ErrSelectorConflict", out, err)
		}
	})
}

func TestTempName(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name   string
		in     string
		suffix string
		max    int
		want   string // empty: only the properties are checked
	}{
		{name: "short", in: "web", suffix: "-temp", max: 63, want: "web-temp"},
		{name: "exactly the maximum", in: long(58), suffix: "-temp", max: 63, want: long(58) + "-temp"},
		{name: "no suffix", in: "web", suffix: "", max: 63, want: "web"},
		{name: "one over the maximum", in: long(59), suffix: "-temp", max: 63},
		{name: "statefulset limit", in: long(52), suffix: "-temp", max: 52},
		{name: "daemonset limit", in: long(63), suffix: "-relabel-temp", max: 63},
		{name: "deployment limit", in: long(253), suffix: "-temp", max: 253},
		{name: "dotted deployment name", in: strings.Repeat("shop.web-", 27) + "x", suffix: "-temp", max: 253},
		{name: "cut right after a dash", in: long(48) + "-" + long(20), suffix: "-temp", max: 63},
		{name: "cut after a run of dashes", in: long(45) + "-----" + long(20), suffix: "-temp", max: 63},
		{name: "cut right after a dot", in: long(238) + "." + strings.Repeat("b", 30), suffix: "-temp", max: 253},
		{name: "long name without suffix", in: long(70), suffix: "", max: 63},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := TempName(tc.in, tc.suffix, tc.max)
			if tc.want != "" && got != tc.want {
				t.Errorf("TempName = %q, want %q", got, tc.want)
			}
			checkTempName(t, tc.in, tc.suffix, tc.max, got)
			if again := TempName(tc.in, tc.suffix, tc.max); again != got {
				t.Errorf("TempName is not deterministic: %q then %q", got, again)
			}
		})
	}

	t.Run("unique for different long names", func(t *testing.T) {
		seen := map[string]string{}
		for _, n := range []string{long(70), long(71), long(60) + "-x" + long(10), long(60) + "-y" + long(10), long(60) + "b" + long(9)} {
			got := TempName(n, "-temp", 63)
			if prev, ok := seen[got]; ok {
				t.Errorf("%q and %q both become %q", prev, n, got)
			}
			seen[got] = n
		}
	})

	t.Run("every length is valid", func(t *testing.T) {
		labelSource := strings.Repeat("web-frontend-0123456789-", 12)
		subdomainSource := strings.Repeat("shop.web-frontend.v2.", 14)
		for _, max := range []int{52, 63} {
			for n := 1; n <= 63; n++ {
				name := strings.TrimRight(labelSource[:n], "-")
				checkTempName(t, name, "-temp", max, TempName(name, "-temp", max))
			}
		}
		for n := 1; n <= 253; n++ {
			name := strings.TrimRight(subdomainSource[:n], "-.")
			checkTempName(t, name, "-temp", 253, TempName(name, "-temp", 253))
		}
	})
}

// checkTempName checks the properties every TempName result has.
func checkTempName(t *testing.T, name, suffix string, max int, got string) {
	t.Helper()
	if len(got) > max {
		t.Errorf("TempName(%q) = %q is %d long, more than %d", name, got, len(got), max)
	}
	if !strings.HasSuffix(got, suffix) {
		t.Errorf("TempName(%q) = %q does not end in %q", name, got, suffix)
	}
	if len(name+suffix) <= max {
		if got != name+suffix {
			t.Errorf("TempName(%q) = %q, want %q", name, got, name+suffix)
		}
	} else {
		base := strings.TrimSuffix(got, suffix)
		if len(base) < 10 || base[len(base)-9] != '-' {
			t.Fatalf("TempName(%q) = %q has no -HASH before the suffix", name, got)
		}
		cut := base[:len(base)-9]
		if strings.HasSuffix(cut, "-") || strings.HasSuffix(cut, ".") {
			t.Errorf("TempName(%q) = %q: the cut name %q ends in a separator", name, got, cut)
		}
		if !strings.HasPrefix(name, cut) {
			t.Errorf("TempName(%q) = %q: %q is not a prefix of the name", name, got, cut)
		}
	}
	if isValidName(name) && !isValidName(got) {
		t.Errorf("TempName(%q) = %q is not a valid name: %v", name, got, nameErrors(got))
	}
}

func TestSlim(t *testing.T) {
	deploy := builtinKind(t, "Deployment")
	t.Run("deployment", func(t *testing.T) {
		obj := fixture(t, "deployment")
		full := obj.DeepCopy()
		Slim(obj, deploy)

		if len(obj.GetManagedFields()) != 0 {
			t.Error("managedFields kept")
		}
		if _, found, _ := unstructured.NestedFieldNoCopy(obj.Object, "metadata", "managedFields"); found {
			t.Error("metadata.managedFields kept")
		}
		if _, ok := obj.GetAnnotations()[lastApplied]; ok {
			t.Error("last-applied annotation kept")
		}
		wantAnn := full.GetAnnotations()
		delete(wantAnn, lastApplied)
		if !maps.Equal(obj.GetAnnotations(), wantAnn) {
			t.Errorf("annotations = %v, want %v", obj.GetAnnotations(), wantAnn)
		}
		if _, found, _ := unstructured.NestedFieldNoCopy(obj.Object, "spec", "template", "spec"); found {
			t.Error("spec.template.spec kept")
		}
		kept := [][]string{{"status"}, {"metadata", "labels"}, {"metadata", "name"}, {"metadata", "uid"},
			{"metadata", "generation"}, {"spec", "selector"}, {"spec", "replicas"}, {"spec", "template", "metadata"}}
		for _, f := range kept {
			got, _, _ := unstructured.NestedFieldNoCopy(obj.Object, f...)
			want, _, _ := unstructured.NestedFieldNoCopy(full.Object, f...)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%v = %v, want %v", f, got, want)
			}
		}
		slimReady, slimMsg, err1 := deploy.Ready(obj)
		fullReady, fullMsg, err2 := deploy.Ready(full)
		if err1 != nil || err2 != nil || slimReady != fullReady || slimMsg != fullMsg || !slimReady {
			t.Errorf("Ready on the slim object = %v, %q, %v; on the full one %v, %q, %v", slimReady, slimMsg, err1, fullReady, fullMsg, err2)
		}
		for _, l := range []Label{stage, {Key: "app", Value: "web"}} {
			slim, err1 := Check(obj, deploy, l)
			whole, err2 := Check(full, deploy, l)
			if err1 != nil || err2 != nil || slim != whole {
				t.Errorf("Check(%s) on the slim object = %+v, %v; on the full one %+v, %v", l, slim, err1, whole, err2)
			}
		}
	})
	t.Run("no annotations", func(t *testing.T) {
		obj := fixture(t, "deployment-labelled")
		Slim(obj, deploy)
		if _, found, _ := unstructured.NestedFieldNoCopy(obj.Object, "metadata", "annotations"); found {
			t.Error("Slim added annotations")
		}
	})
	t.Run("other template path", func(t *testing.T) {
		kind := rolloutKind
		kind.TemplateLabelsPath = "spec.podTemplate.metadata.labels"
		obj := fixture(t, "rollout", set(map[string]interface{}{"spec": map[string]interface{}{"x": "y"}, "metadata": map[string]interface{}{}}, "spec", "podTemplate"))
		Slim(obj, kind)
		if _, found, _ := unstructured.NestedFieldNoCopy(obj.Object, "spec", "podTemplate", "spec"); found {
			t.Error("spec.podTemplate.spec kept")
		}
		if _, found, _ := unstructured.NestedFieldNoCopy(obj.Object, "spec", "template", "spec"); !found {
			t.Error("spec.template.spec removed, although the kind's template is elsewhere")
		}
	})
	t.Run("template path without metadata.labels", func(t *testing.T) {
		kind := rolloutKind
		kind.TemplateLabelsPath = "spec.podLabels"
		obj := fixture(t, "rollout")
		full := obj.DeepCopy()
		Slim(obj, kind)
		if !reflect.DeepEqual(obj.Object["spec"], full.Object["spec"]) {
			t.Error("Slim changed the spec of a kind whose template it cannot find")
		}
	})
}

// isValidName is true for a DNS-1123 subdomain, and for a DNS-1123 label when
// name has no dots, as the names of the workload kinds must be.
func isValidName(name string) bool { return len(nameErrors(name)) == 0 }

func nameErrors(name string) []string {
	if strings.Contains(name, ".") {
		return validation.IsDNS1123Subdomain(name)
	}
	if len(name) > validation.DNS1123LabelMaxLength {
		return validation.IsDNS1123Subdomain(name)
	}
	return validation.IsDNS1123Label(name)
}

func TestStub(t *testing.T) {
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "namespace": "shop", "uid": "u1", "resourceVersion": "7",
			"labels": map[string]any{"app": "web"}, "annotations": map[string]any{"a": "b"}},
		"spec":   map[string]any{"replicas": int64(3)},
		"status": map[string]any{"readyReplicas": int64(3)},
	}}
	want := map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "namespace": "shop", "uid": "u1", "resourceVersion": "7"},
	}
	if got := Stub(obj).Object; !reflect.DeepEqual(got, want) {
		t.Errorf("Stub = %v, want %v", got, want)
	}
	if obj.GetLabels()["app"] != "web" {
		t.Error("Stub changed the object it was given")
	}
}

// TestSelectorWithoutConverterAgrees checks Selector's shortcut for a
// selector of matchLabels only against the converter and
// metav1.LabelSelectorAsSelector.
func TestSelectorWithoutConverterAgrees(t *testing.T) {
	for _, matchLabels := range []map[string]interface{}{
		labelMap("app", "web"),
		labelMap("tier", "frontend", "app", "web", "app.kubernetes.io/name", "shop"),
		labelMap("app", ""),
		labelMap("not a key", "web"),
		labelMap("app", "not a value!"),
		labelMap("example.com/", "x"),
	} {
		obj := fixture(t, "deployment", set(matchLabels, "spec", "selector", "matchLabels"))
		kind := kindFor(t, obj)
		got, gotErr := Selector(obj, kind)
		var ls metav1.LabelSelector
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(map[string]interface{}{"matchLabels": matchLabels}, &ls); err != nil {
			t.Fatal(err)
		}
		want, wantErr := metav1.LabelSelectorAsSelector(&ls)
		if (gotErr == nil) != (wantErr == nil) {
			t.Errorf("%v: error %v, LabelSelectorAsSelector's %v", matchLabels, gotErr, wantErr)
			continue
		}
		if gotErr == nil && got.String() != want.String() {
			t.Errorf("%v: %q, LabelSelectorAsSelector's %q", matchLabels, got, want)
		}
		pod := labels.Set{"app": "web", "tier": "frontend", "app.kubernetes.io/name": "shop"}
		if gotErr == nil && got.Matches(pod) != want.Matches(pod) {
			t.Errorf("%v: matches %v differently", matchLabels, pod)
		}
	}
}

// TestSelectorStringAgrees checks SelectorString's shortcut for plain
// matchLabels against the parsed selector's String.
func TestSelectorStringAgrees(t *testing.T) {
	long := strings.Repeat("a", 63)
	for _, selector := range []map[string]interface{}{
		{"matchLabels": labelMap("app", "web")},
		{"matchLabels": labelMap("tier", "frontend", "app", "web", "app.kubernetes.io/name", "shop")},
		{"matchLabels": labelMap("app", "")},
		{"matchLabels": labelMap("a", "b", "A_b.c-D", "x_Y.z-0")},
		{"matchLabels": labelMap(long, long)},
		{"matchLabels": labelMap(long+"a", "x")},
		{"matchLabels": labelMap("app", long+"a")},
		{"matchLabels": labelMap("-app", "web")},
		{"matchLabels": labelMap("app", "web-")},
		{"matchLabels": labelMap("app", ".web")},
		{"matchLabels": labelMap("not a key", "web")},
		{"matchLabels": labelMap("app", "not a value!")},
		{"matchLabels": labelMap("example.com/", "x")},
		{"matchLabels": labelMap("", "x")},
		{"matchLabels": labelMap("app", "wéb")},
		{"matchLabels": map[string]interface{}{"replicas": int64(3)}},
		{"matchLabels": map[string]interface{}{}},
		{"matchLabels": labelMap("app", "web"), "matchExpressions": []interface{}{
			map[string]interface{}{"key": "tier", "operator": "In", "values": []interface{}{"a", "b"}}}},
	} {
		obj := fixture(t, "deployment", set(selector, "spec", "selector"))
		kind := kindFor(t, obj)
		want := ""
		if parsed, err := Selector(obj, kind); err == nil {
			want = parsed.String()
		}
		if got := SelectorString(obj, kind); got != want {
			t.Errorf("%v: %q, the parsed selector's %q", selector, got, want)
		}
	}
}
