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

// Stub is what an informer keeps of an object relabel watches but does not
// migrate (its neighbours in a cluster-wide watch): enough to know it is
// there and which object it is, a few hundred bytes instead of the whole.
func Stub(obj *unstructured.Unstructured) *unstructured.Unstructured {
	meta := map[string]any{"name": obj.GetName(), "uid": string(obj.GetUID()), "resourceVersion": obj.GetResourceVersion()}
	if ns := obj.GetNamespace(); ns != "" {
		meta["namespace"] = ns
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": obj.GetAPIVersion(), "kind": obj.GetKind(), "metadata": meta,
	}}
}

const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// Redacted is a copy of obj fit to print: literal env values (a common home
// for credentials) and the last-applied annotation (a copy of them) are
// replaced; env entries that reference Secrets or ConfigMaps keep their
// reference, which names the source but not the data.
func Redacted(obj *unstructured.Unstructured, kind rules.Kind) *unstructured.Unstructured {
	out := obj.DeepCopy()
	if ann := out.GetAnnotations(); ann != nil {
		// A copy keeps the original's last-applied inside its origin record.
		for _, k := range []string{lastApplied, OriginMetadataAnnotation} {
			if _, ok := ann[k]; ok {
				ann[k] = redactedValue
			}
		}
		out.SetAnnotations(ann)
	}
	spec, ok := kind.PodSpecPath()
	if !ok {
		return out
	}
	for _, list := range []string{"initContainers", "containers", "ephemeralContainers"} {
		containers, found, err := unstructured.NestedSlice(out.Object, append(spec, list)...)
		if !found || err != nil {
			continue
		}
		for _, c := range containers {
			container, ok := c.(map[string]any)
			if !ok {
				continue
			}
			env, _ := container["env"].([]any)
			for _, e := range env {
				if entry, ok := e.(map[string]any); ok {
					if _, has := entry["value"]; has {
						entry["value"] = redactedValue
					}
				}
			}
		}
		_ = unstructured.SetNestedSlice(out.Object, containers, append(spec, list)...)
	}
	return out
}

const redactedValue = "<redacted>"
