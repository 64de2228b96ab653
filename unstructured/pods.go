package unstructured

import (
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"relabel.dev/relabel/rules"
)

// Selector returns obj's label selector, parsed.
func Selector(obj *unstructured.Unstructured, kind rules.Kind) (labels.Selector, error) {
	val, found, err := fieldNoCopy(obj.Object, kind.SelectorPath)
	raw, ok := val.(map[string]any)
	if err == nil && found && !ok {
		found, err = false, fmt.Errorf(".%s accessor error: %v is of the type %T, expected map[string]interface{}", kind.SelectorPath, val, val)
	}
	if err != nil || !found {
		return nil, fmt.Errorf("reading %s of %s/%s: found=%v: %w", kind.SelectorPath, obj.GetNamespace(), obj.GetName(), found, err)
	}
	if set, ok := onlyMatchLabels(raw); ok {
		// The common case, without the reflection of the converter: the
		// same requirements, validated the same way.
		selector, err := labels.ValidatedSelectorFromSet(set)
		if err != nil {
			return nil, fmt.Errorf("parsing %s of %s/%s: %w", kind.SelectorPath, obj.GetNamespace(), obj.GetName(), err)
		}
		return selector, nil
	}
	var ls metav1.LabelSelector
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &ls); err != nil {
		return nil, fmt.Errorf("reading %s of %s/%s: %w", kind.SelectorPath, obj.GetNamespace(), obj.GetName(), err)
	}
	selector, err := metav1.LabelSelectorAsSelector(&ls)
	if err != nil {
		return nil, fmt.Errorf("parsing %s of %s/%s: %w", kind.SelectorPath, obj.GetNamespace(), obj.GetName(), err)
	}
	return selector, nil
}

// onlyMatchLabels returns a selector's matchLabels when it has nothing else
// and they are all strings.
func onlyMatchLabels(raw map[string]any) (labels.Set, bool) {
	if len(raw) != 1 {
		return nil, false
	}
	m, ok := raw["matchLabels"].(map[string]any)
	if !ok || len(m) == 0 {
		return nil, false
	}
	set := make(labels.Set, len(m))
	for k, v := range m {
		s, ok := v.(string)
		if !ok {
			return nil, false
		}
		set[k] = s
	}
	return set, true
}

// HostPorts lists the host ports the pod template asks for: a second pod
// with them cannot run on the same node.
func HostPorts(obj *unstructured.Unstructured, kind rules.Kind) []int64 {
	spec, ok := kind.PodSpecPath()
	if !ok {
		return nil
	}
	var ports []int64
	for _, list := range []string{"containers", "initContainers"} {
		containers, _, _ := unstructured.NestedSlice(obj.Object, append(slices.Clip(spec), list)...)
		for _, c := range containers {
			cm, _ := c.(map[string]interface{})
			cports, _, _ := unstructured.NestedSlice(cm, "ports")
			for _, p := range cports {
				pm, _ := p.(map[string]interface{})
				if hp, found, _ := unstructured.NestedInt64(pm, "hostPort"); found && hp > 0 {
					ports = append(ports, hp)
				}
			}
		}
	}
	return ports
}
