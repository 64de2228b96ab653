package unstructured

import (
	"fmt"
	"maps"
	"slices"
	"strings"

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

// SelectorString is obj's selector as kubectl -l writes it, "" when it has
// none or it is invalid. Validating a selector's keys and values takes
// regular expressions, most of an audit's CPU after decoding, so plain
// matchLabels, the usual selector, are written without them.
func SelectorString(obj *unstructured.Unstructured, kind rules.Kind) string {
	val, _, _ := fieldNoCopy(obj.Object, kind.SelectorPath)
	if raw, ok := val.(map[string]any); ok {
		if set, ok := onlyMatchLabels(raw); ok && plainSet(set) {
			keys := slices.Sorted(maps.Keys(set))
			var b strings.Builder
			for i, k := range keys {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(k)
				b.WriteByte('=')
				b.WriteString(set[k])
			}
			return b.String()
		}
	}
	selector, err := Selector(obj, kind)
	if err != nil {
		return ""
	}
	return selector.String()
}

// plainSet tells whether every key and value of set is a plain name: at
// most 63 letters, digits, '-', '_' and '.', starting and ending with a
// letter or a digit (values may be empty). Such keys and values are valid;
// others (a prefixed key, say) are left to the validation.
func plainSet(set labels.Set) bool {
	for k, v := range set {
		if k == "" || !plainName(k) || !plainName(v) {
			return false
		}
	}
	return true
}

func plainName(s string) bool {
	if len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && ((c != '-' && c != '_' && c != '.') || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
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
