package unstructured

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"relabel.dev/relabel/rules"
)

// Slim drops what relabel never reads from a listed or watched object:
// managedFields, the last-applied annotation and the pod template's spec
// (the bulk of a workload). Labels, selector, spec counts and status stay,
// so that readiness and label checks still work on the slim object.
func Slim(obj *unstructured.Unstructured, kind rules.Kind) {
	obj.SetManagedFields(nil)
	if ann := obj.GetAnnotations(); ann != nil {
		if _, ok := ann[lastApplied]; ok {
			delete(ann, lastApplied)
			obj.SetAnnotations(ann)
		}
	}
	if spec, ok := kind.PodSpecPath(); ok {
		unstructured.RemoveNestedField(obj.Object, spec...)
	}
}

const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"
