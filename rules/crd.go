package rules

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// FromCRD recognises a workload custom resource from its structural schema:
// the served version must have a label selector at spec.selector and a pod
// template with labels at spec.template. When it is not a workload, the
// returned reason says what is missing.
func FromCRD(crd *unstructured.Unstructured, version string) (Kind, string, error) {
	group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
	kind, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "kind")
	plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
	scope, _, _ := unstructured.NestedString(crd.Object, "spec", "scope")
	versions, _, err := unstructured.NestedSlice(crd.Object, "spec", "versions")
	if err != nil {
		return Kind{}, "", fmt.Errorf("reading spec.versions of CRD %s: %w", crd.GetName(), err)
	}
	var schema map[string]interface{}
	for _, v := range versions {
		vm, ok := v.(map[string]interface{})
		if !ok || vm["name"] != version {
			continue
		}
		schema, _, err = unstructured.NestedMap(vm, "schema", "openAPIV3Schema")
		if err != nil {
			return Kind{}, "", fmt.Errorf("reading the schema of CRD %s version %s: %w", crd.GetName(), version, err)
		}
	}
	if schema == nil {
		return Kind{}, "no schema for version " + version, nil
	}
	spec, found, _ := unstructured.NestedMap(schema, "properties", "spec", "properties")
	if !found {
		return Kind{}, "schema has no spec properties", nil
	}
	if !isLabelSelector(spec["selector"]) {
		return Kind{}, "no label selector at spec.selector", nil
	}
	if !hasTemplateLabels(spec["template"]) {
		return Kind{}, "no pod template at spec.template", nil
	}
	// Without a status in its schema nothing can say the kind is ready:
	// it needs a readiness rule before relabel migrates it.
	readiness := ""
	if _, found, _ := unstructured.NestedMap(schema, "properties", "status"); found {
		readiness = ReadinessKstatus
	}
	return Kind{
		Group: group, Version: version, Kind: kind, Resource: plural, Namespaced: scope == "Namespaced",
		SelectorPath: StandardSelectorPath, TemplateLabelsPath: StandardTemplateLabelsPath,
		Strategy: TempCopy, MaxNameLength: 63, Readiness: readiness, Source: SourceCRD,
		Guards: []Guard{volumeClaimTemplates},
	}, "", nil
}

func isLabelSelector(field interface{}) bool {
	m, ok := field.(map[string]interface{})
	if !ok {
		return false
	}
	props, _, _ := unstructured.NestedMap(m, "properties")
	_, matchLabels := props["matchLabels"]
	_, matchExpressions := props["matchExpressions"]
	return matchLabels || matchExpressions
}

// A template counts when its metadata declares labels or keeps unknown
// fields, as a full PodTemplateSpec schema or an embedded object does.
func hasTemplateLabels(field interface{}) bool {
	m, ok := field.(map[string]interface{})
	if !ok {
		return false
	}
	if preservesUnknown(m) {
		return true
	}
	meta, found, _ := unstructured.NestedMap(m, "properties", "metadata")
	if !found {
		return false
	}
	if preservesUnknown(meta) {
		return true
	}
	_, found, _ = unstructured.NestedMap(meta, "properties", "labels")
	return found
}

func preservesUnknown(m map[string]interface{}) bool {
	p, _ := m["x-kubernetes-preserve-unknown-fields"].(bool)
	e, _ := m["x-kubernetes-embedded-resource"].(bool)
	return p || e
}
