package unstructured

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"relabel.dev/relabel/rules"
)

// Reads that keep nothing of what they read. apimachinery's accessors
// (NestedStringMap, GetLabels, NestedMap, GetOwnerReferences) copy what they
// return, and rules.Path.Fields splits a path anew each time: an audit reads
// five maps of each of tens of thousands of objects and keeps a few bytes of
// each. These give the same values and the same errors, uncopied.

// fieldNoCopy is NestedFieldNoCopy of path's fields, then more.
func fieldNoCopy(obj map[string]any, path rules.Path, more ...string) (any, bool, error) {
	var val any = obj
	rest, extra := string(path), more
	for i := 0; ; i++ {
		var field string
		switch {
		case rest != "":
			field, rest, _ = strings.Cut(rest, ".")
		case len(extra) > 0:
			field, extra = extra[0], extra[1:]
		default:
			return val, true, nil
		}
		if val == nil {
			return nil, false, nil
		}
		m, ok := val.(map[string]any)
		if !ok {
			return nil, false, fmt.Errorf("%v accessor error: %v is of the type %T, expected map[string]interface{}", jsonPath(path, more, i+1), val, val)
		}
		if val, ok = m[field]; !ok {
			return nil, false, nil
		}
	}
}

// jsonPath is how apimachinery names the first n of path's fields, then
// more's; only errors need it.
func jsonPath(path rules.Path, more []string, n int) string {
	fields := append(path.Fields(), more...)
	return "." + strings.Join(fields[:min(n, len(fields))], ".")
}

// stringMapNoCopy is NestedStringMap's map, its values checked, not copied.
func stringMapNoCopy(obj map[string]any, path rules.Path, more ...string) (map[string]any, error) {
	val, found, err := fieldNoCopy(obj, path, more...)
	if err != nil || !found {
		return nil, err
	}
	all := strings.Count(string(path), ".") + 1 + len(more)
	m, ok := val.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%v accessor error: %v is of the type %T, expected map[string]interface{}", jsonPath(path, more, all), val, val)
	}
	for k, v := range m {
		if _, ok := v.(string); !ok {
			return nil, fmt.Errorf("%v accessor error: contains non-string value in the map under key %q: %v is of the type %T, expected string", jsonPath(path, more, all), k, v, v)
		}
	}
	return m, nil
}

// MetadataNoCopy is obj's labels or annotations (field), as GetLabels and
// GetAnnotations read them (nil when they are not all strings), not copied:
// read them with StringIn.
func MetadataNoCopy(obj *unstructured.Unstructured, field string) map[string]any {
	m, _ := stringMapNoCopy(obj.Object, "metadata", field)
	return m
}

// StringIn is m's string at key, "" when there is none.
func StringIn(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

// ControllerOf is obj's controller as KIND/NAME, "" without one: what
// metav1.GetControllerOf finds, without building every owner reference.
func ControllerOf(obj *unstructured.Unstructured) string {
	field, _, _ := fieldNoCopy(obj.Object, "metadata.ownerReferences")
	refs, _ := field.([]any)
	for _, ref := range refs {
		if _, ok := ref.(map[string]any); !ok {
			return "" // GetOwnerReferences gives none then
		}
	}
	for _, ref := range refs {
		m := ref.(map[string]any)
		if controller, _ := m["controller"].(bool); controller {
			return StringIn(m, "kind") + "/" + StringIn(m, "name")
		}
	}
	return ""
}
