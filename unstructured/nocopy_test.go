package unstructured

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The uncopied reads must give what apimachinery's copying accessors give,
// errors included: reports and plans are built from either.
func TestNoCopyAgreesWithApimachinery(t *testing.T) {
	objects := map[string]map[string]any{
		"plain": {"metadata": map[string]any{
			"labels":          map[string]any{"app": "web"},
			"annotations":     map[string]any{"a": "b"},
			"ownerReferences": []any{map[string]any{"kind": "Rollout", "name": "web", "controller": true}},
		}, "spec": map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"app": "web"}}}},
		"none":               {"metadata": map[string]any{}},
		"metadata not a map": {"metadata": "x"},
		"labels not a map":   {"metadata": map[string]any{"labels": []any{"app"}}},
		"label not a string": {"metadata": map[string]any{"labels": map[string]any{"replicas": int64(3)}}},
		"selector not a map": {"metadata": map[string]any{}, "spec": map[string]any{"selector": "app=web"}},
		"matchLabels null":   {"metadata": map[string]any{}, "spec": map[string]any{"selector": map[string]any{"matchLabels": nil}}},
		"matchLabels a list": {"metadata": map[string]any{}, "spec": map[string]any{"selector": map[string]any{"matchLabels": []any{}}}},
		"spec null":          {"metadata": map[string]any{}, "spec": nil},
		"owner not a map": {"metadata": map[string]any{"ownerReferences": []any{
			map[string]any{"kind": "Rollout", "name": "web", "controller": true}, "x"}}},
		"owner not controller": {"metadata": map[string]any{"ownerReferences": []any{
			map[string]any{"kind": "Rollout", "name": "web"}}}},
		"second owner controls": {"metadata": map[string]any{"ownerReferences": []any{
			map[string]any{"kind": "A", "name": "a", "controller": false},
			map[string]any{"kind": "B", "name": "b", "controller": true}}}},
	}
	for name, object := range objects {
		t.Run(name, func(t *testing.T) {
			obj := &unstructured.Unstructured{Object: object}
			want, wantFound, wantErr := unstructured.NestedStringMap(object, "spec", "selector", "matchLabels")
			got, gotErr := stringMapNoCopy(object, "spec.selector", "matchLabels")
			if errString(gotErr) != errString(wantErr) {
				t.Errorf("matchLabels error = %v, want %v", gotErr, wantErr)
			}
			if wantErr == nil && (len(got) != len(want) || wantFound != (got != nil)) {
				t.Errorf("matchLabels = %v, want %v", got, want)
			}
			for k, v := range want {
				if StringIn(got, k) != v {
					t.Errorf("matchLabels[%s] = %q, want %q", k, StringIn(got, k), v)
				}
			}
			for field, read := range map[string]func() map[string]string{"labels": obj.GetLabels, "annotations": obj.GetAnnotations} {
				want, got := read(), MetadataNoCopy(obj, field)
				if len(got) != len(want) {
					t.Errorf("%s = %v, want %v", field, got, want)
				}
				for k, v := range want {
					if StringIn(got, k) != v {
						t.Errorf("%s[%s] = %q, want %q", field, k, StringIn(got, k), v)
					}
				}
			}
			wantController := ""
			if ref := metav1.GetControllerOf(obj); ref != nil {
				wantController = ref.Kind + "/" + ref.Name
			}
			if got := ControllerOf(obj); got != wantController {
				t.Errorf("ControllerOf = %q, want %q", got, wantController)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
