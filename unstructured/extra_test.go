package unstructured

import (
	"maps"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"relabel.dev/relabel/rules"
)

// workloadKind keeps its selector and template away from the standard paths,
// and renders a Service whose selector must carry the label too.
var workloadKind = rules.Kind{
	Group: "example.com", Version: "v1", Kind: "Workload", Resource: "workloads", Namespaced: true,
	SelectorPath: "spec.workload.selector", TemplateLabelsPath: "spec.workload.template.metadata.labels",
	ExtraLabelPaths: []rules.Path{"spec.serviceSelector"},
	Strategy:        rules.TempCopy, MaxNameLength: 63, Source: rules.SourceRules,
}

func workloadObject() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "example.com/v1", "kind": "Workload",
		"metadata": map[string]interface{}{"name": "web", "namespace": "shop", "uid": "u1", "labels": labelMap("app", "web")},
		"spec": map[string]interface{}{
			"workload": map[string]interface{}{
				"selector": map[string]interface{}{"matchLabels": labelMap("app", "web")},
				"template": map[string]interface{}{"metadata": map[string]interface{}{"labels": labelMap("app", "web")}},
			},
			"serviceSelector": labelMap("app", "web"),
		},
	}}
}

func TestAddLabelExtraPaths(t *testing.T) {
	withExtra := func(paths ...rules.Path) rules.Kind {
		k := workloadKind
		k.ExtraLabelPaths = paths
		return k
	}
	tests := []struct {
		name    string
		kind    rules.Kind
		obj     *unstructured.Unstructured
		label   Label
		want    map[string]map[string]string // extra path → its labels afterwards
		wantErr string
	}{
		{name: "existing map", kind: workloadKind, obj: workloadObject(), label: stage,
			want: map[string]map[string]string{"spec.serviceSelector": {"app": "web", "stage": "production"}}},
		{name: "missing map is created", kind: workloadKind, obj: withField(workloadObject(), nil, "spec", "serviceSelector"), label: stage,
			want: map[string]map[string]string{"spec.serviceSelector": {"stage": "production"}}},
		{name: "missing parents are created", kind: withExtra("spec.service.selector", "spec.serviceSelector"), obj: workloadObject(), label: stage,
			want: map[string]map[string]string{"spec.service.selector": {"stage": "production"}, "spec.serviceSelector": {"app": "web", "stage": "production"}}},
		{name: "another value is replaced", kind: workloadKind, obj: withField(workloadObject(), labelMap("app", "web", "stage", "qa"), "spec", "serviceSelector"), label: stage,
			want: map[string]map[string]string{"spec.serviceSelector": {"app": "web", "stage": "production"}}},
		{name: "no extra paths", kind: withExtra(), obj: workloadObject(), label: stage,
			want: map[string]map[string]string{"spec.serviceSelector": {"app": "web"}}},
		{name: "extra path is not a map", kind: workloadKind, obj: withField(workloadObject(), "app=web", "spec", "serviceSelector"), label: stage,
			wantErr: "spec.serviceSelector"},
		{name: "extra path holds a number", kind: workloadKind, obj: withField(workloadObject(), labelMapWith("app", int64(1)), "spec", "serviceSelector"), label: stage,
			wantErr: "spec.serviceSelector"},
		{name: "selector conflict leaves the extra paths alone", kind: workloadKind, label: stage,
			obj:     withField(workloadObject(), labelMap("app", "web", "stage", "qa"), "spec", "workload", "selector", "matchLabels"),
			wantErr: ErrSelectorConflict.Error()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.obj.DeepCopy()
			err := AddLabel(tc.obj, tc.kind, tc.label)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("AddLabel = %v, want an error containing %q", err, tc.wantErr)
				}
				if !reflect.DeepEqual(before.Object, tc.obj.Object) {
					t.Errorf("the object changed although AddLabel failed:\n%v\nwas\n%v", tc.obj.Object, before.Object)
				}
				return
			}
			if err != nil {
				t.Fatalf("AddLabel: %v", err)
			}
			for path, want := range tc.want {
				if got := stringMapAt(t, tc.obj, rules.Path(path).Fields()...); !maps.Equal(got, want) {
					t.Errorf("%s = %v, want %v", path, got, want)
				}
			}
			report, err := Check(tc.obj, tc.kind, tc.label)
			if err != nil || !report.Complete() {
				t.Errorf("Check = %+v, %v; want complete", report, err)
			}
			again := tc.obj.DeepCopy()
			if err := AddLabel(again, tc.kind, tc.label); err != nil || !reflect.DeepEqual(again.Object, tc.obj.Object) {
				t.Errorf("AddLabel is not idempotent: %v", err)
			}
		})
	}
}

// The recreated object carries the label in its extra paths; the temporary
// copy is told apart by selector, template and metadata alone.
func TestExtraPathsRecreatedAndTempCopy(t *testing.T) {
	original := workloadObject()
	out, err := Recreated(original, workloadKind, stage)
	if err != nil {
		t.Fatalf("Recreated: %v", err)
	}
	if got := stringMapAt(t, out, "spec", "serviceSelector"); got["stage"] != "production" {
		t.Errorf("recreated spec.serviceSelector = %v, want stage=production", got)
	}
	temp, err := TempCopy(original, workloadKind, "web-temp", stage)
	if err != nil {
		t.Fatalf("TempCopy: %v", err)
	}
	if got := stringMapAt(t, temp, "spec", "serviceSelector"); !maps.Equal(got, map[string]string{"app": "web"}) {
		t.Errorf("copy's spec.serviceSelector = %v, want the original's", got)
	}
	if got := stringMapAt(t, temp, "spec", "workload", "selector", "matchLabels"); got[TempLabelKey] != "u1" {
		t.Errorf("copy's selector = %v, want the temp label", got)
	}
}

func withField(obj *unstructured.Unstructured, value interface{}, fields ...string) *unstructured.Unstructured {
	if value == nil {
		unstructured.RemoveNestedField(obj.Object, fields...)
		return obj
	}
	set(value, fields...)(obj)
	return obj
}

func labelMapWith(k string, v interface{}) map[string]interface{} {
	return map[string]interface{}{k: v}
}
