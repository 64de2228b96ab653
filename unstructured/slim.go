package unstructured

import (
	"strings"

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
	if template, ok := strings.CutSuffix(string(kind.TemplateLabelsPath), ".metadata.labels"); ok {
		unstructured.RemoveNestedField(obj.Object, append(rules.Path(template).Fields(), "spec")...)
	}
}

const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"
