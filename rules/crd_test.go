package rules

import (
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"relabel.dev/relabel/internal/testutil"
)

func TestFromCRDFiles(t *testing.T) {
	rollout := Kind{
		Group: "demo.relabel.dev", Version: "v1alpha1", Kind: "Rollout", Resource: "rollouts", Namespaced: true,
		SelectorPath: StandardSelectorPath, TemplateLabelsPath: StandardTemplateLabelsPath,
		Strategy: TempCopy, MaxNameLength: 63, Readiness: ReadinessKstatus, Source: SourceCRD,
		Guards: []Guard{volumeClaimTemplates},
	}
	tests := []struct {
		name       string
		file       string
		version    string
		want       Kind
		wantReason string
	}{
		{name: "rollout", file: "testdata/crd-rollout.yaml", version: "v1alpha1", want: rollout},
		{name: "rollout at a version it does not serve", file: "testdata/crd-rollout.yaml", version: "v1", wantReason: "no schema for version v1"},
		{name: "widget", file: "testdata/crd-widget.yaml", version: "v1", wantReason: "no label selector at spec.selector"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			crd := testutil.Unstructured(t, tc.file)
			got, reason, err := FromCRD(crd, tc.version)
			if err != nil {
				t.Fatalf("FromCRD: %v", err)
			}
			if reason != tc.wantReason {
				t.Errorf("reason = %q, want %q", reason, tc.wantReason)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("FromCRD = %+v\nwant %+v", got, tc.want)
			}
			if reason == "" {
				if err := got.Validate(); err != nil {
					t.Errorf("Validate: %v", err)
				}
			}
		})
	}
}

// obj is shorthand for a schema node.
type obj = map[string]interface{}

func props(kv ...interface{}) obj {
	p := obj{}
	for i := 0; i+1 < len(kv); i += 2 {
		p[kv[i].(string)] = kv[i+1]
	}
	return obj{"type": "object", "properties": p}
}

var (
	stringMapSchema = obj{"type": "object", "additionalProperties": obj{"type": "string"}}
	labelSelector   = props("matchLabels", stringMapSchema, "matchExpressions", obj{"type": "array"})
	podTemplate     = props("metadata", props("labels", stringMapSchema), "spec", obj{"type": "object", "x-kubernetes-preserve-unknown-fields": true})
)

// crd builds a CustomResourceDefinition of group demo.relabel.dev, kind
// Thing, whose only version v1 has the given spec schema (nil: no schema).
func crd(scope string, spec obj, mutators ...func(obj)) *unstructured.Unstructured {
	version := obj{"name": "v1", "served": true, "storage": true}
	if spec != nil {
		version["schema"] = obj{"openAPIV3Schema": props("spec", spec)}
	}
	u := &unstructured.Unstructured{Object: obj{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   obj{"name": "things.demo.relabel.dev"},
		"spec": obj{
			"group":    "demo.relabel.dev",
			"scope":    scope,
			"names":    obj{"kind": "Thing", "plural": "things", "singular": "thing"},
			"versions": []interface{}{version},
		},
	}}
	for _, m := range mutators {
		m(u.Object)
	}
	return u
}

func TestFromCRD(t *testing.T) {
	tests := []struct {
		name           string
		crd            *unstructured.Unstructured
		version        string
		wantReason     string
		wantNamespaced bool
		// wantReadiness: kstatus when the schema has a status, else none.
		wantReadiness string
		wantErr       string
	}{
		{name: "full pod template", crd: crd("Namespaced", props("selector", labelSelector, "template", podTemplate)), wantNamespaced: true},
		{name: "template preserves unknown fields", wantNamespaced: true,
			crd: crd("Namespaced", props("selector", labelSelector, "template", obj{"type": "object", "x-kubernetes-preserve-unknown-fields": true}))},
		{name: "template metadata preserves unknown fields", wantNamespaced: true,
			crd: crd("Namespaced", props("selector", labelSelector, "template", props("metadata", obj{"type": "object", "x-kubernetes-preserve-unknown-fields": true})))},
		{name: "template is an embedded resource", wantNamespaced: true,
			crd: crd("Namespaced", props("selector", labelSelector, "template", obj{"type": "object", "x-kubernetes-embedded-resource": true}))},
		{name: "selector with only matchExpressions", wantNamespaced: true,
			crd: crd("Namespaced", props("selector", props("matchExpressions", obj{"type": "array"}), "template", podTemplate))},
		{name: "selector with only matchLabels", wantNamespaced: true,
			crd: crd("Namespaced", props("selector", props("matchLabels", stringMapSchema), "template", podTemplate))},
		{name: "cluster-scoped", wantNamespaced: false,
			crd: crd("Cluster", props("selector", labelSelector, "template", podTemplate))},
		{name: "with a status", wantNamespaced: true, wantReadiness: ReadinessKstatus,
			crd: crd("Namespaced", props("selector", labelSelector, "template", podTemplate), func(o obj) {
				schema := o["spec"].(obj)["versions"].([]interface{})[0].(obj)["schema"].(obj)["openAPIV3Schema"].(obj)
				schema["properties"].(obj)["status"] = obj{"type": "object", "x-kubernetes-preserve-unknown-fields": true}
			})},

		{name: "missing version", version: "v2", wantReason: "no schema for version v2",
			crd: crd("Namespaced", props("selector", labelSelector, "template", podTemplate))},
		{name: "version without schema", wantReason: "no schema for version v1", crd: crd("Namespaced", nil)},
		{name: "no versions", wantReason: "no schema for version v1",
			crd: crd("Namespaced", nil, func(o obj) { delete(o["spec"].(obj), "versions") })},
		{name: "schema without spec", wantReason: "schema has no spec properties",
			crd: crd("Namespaced", props(), func(o obj) {
				o["spec"].(obj)["versions"].([]interface{})[0].(obj)["schema"] = obj{"openAPIV3Schema": props("status", obj{"type": "object"})}
			})},
		{name: "spec preserves unknown fields", wantReason: "schema has no spec properties",
			crd: crd("Namespaced", obj{"type": "object", "x-kubernetes-preserve-unknown-fields": true})},
		{name: "no selector", wantReason: "no label selector at spec.selector", crd: crd("Namespaced", props("template", podTemplate))},
		{name: "selector as a string", wantReason: "no label selector at spec.selector",
			crd: crd("Namespaced", props("selector", obj{"type": "string"}, "template", podTemplate))},
		{name: "selector without its fields", wantReason: "no label selector at spec.selector",
			crd: crd("Namespaced", props("selector", props("app", obj{"type": "string"}), "template", podTemplate))},
		{name: "no template", wantReason: "no pod template at spec.template", crd: crd("Namespaced", props("selector", labelSelector))},
		{name: "template without metadata", wantReason: "no pod template at spec.template",
			crd: crd("Namespaced", props("selector", labelSelector, "template", props("spec", obj{"type": "object"})))},
		{name: "template metadata without labels", wantReason: "no pod template at spec.template",
			crd: crd("Namespaced", props("selector", labelSelector, "template", props("metadata", props("name", obj{"type": "string"}))))},
		{name: "template preserve-unknown-fields false", wantReason: "no pod template at spec.template",
			crd: crd("Namespaced", props("selector", labelSelector, "template", obj{"type": "object", "x-kubernetes-preserve-unknown-fields": false}))},

		{name: "versions not a list", wantErr: "spec.versions",
			crd: crd("Namespaced", nil, func(o obj) { o["spec"].(obj)["versions"] = "v1" })},
		{name: "schema not a map", wantErr: "schema",
			crd: crd("Namespaced", nil, func(o obj) {
				o["spec"].(obj)["versions"].([]interface{})[0].(obj)["schema"] = obj{"openAPIV3Schema": "object"}
			})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			version := tc.version
			if version == "" {
				version = "v1"
			}
			got, reason, err := FromCRD(tc.crd, version)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("FromCRD = %+v, %q, %v; want an error containing %q", got, reason, err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), "things.demo.relabel.dev") {
					t.Errorf("error %q does not name the CRD", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromCRD: %v", err)
			}
			if reason != tc.wantReason {
				t.Fatalf("reason = %q, want %q", reason, tc.wantReason)
			}
			if reason != "" {
				if !reflect.DeepEqual(got, Kind{}) {
					t.Errorf("FromCRD = %+v along with a reason", got)
				}
				return
			}
			want := Kind{
				Group: "demo.relabel.dev", Version: version, Kind: "Thing", Resource: "things", Namespaced: tc.wantNamespaced,
				SelectorPath: StandardSelectorPath, TemplateLabelsPath: StandardTemplateLabelsPath,
				Strategy: TempCopy, MaxNameLength: 63, Readiness: tc.wantReadiness, Source: SourceCRD,
				Guards: []Guard{volumeClaimTemplates},
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("FromCRD = %+v\nwant %+v", got, want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}

	t.Run("each version by its own schema", func(t *testing.T) {
		c := crd("Namespaced", props("selector", labelSelector, "template", podTemplate), func(o obj) {
			spec := o["spec"].(obj)
			spec["versions"] = append(spec["versions"].([]interface{}),
				obj{"name": "v2", "served": true, "schema": obj{"openAPIV3Schema": props("spec", props("template", podTemplate))}})
		})
		if k, reason, err := FromCRD(c, "v1"); err != nil || reason != "" || k.Version != "v1" {
			t.Errorf("v1: %+v, %q, %v; want a workload", k, reason, err)
		}
		if _, reason, err := FromCRD(c, "v2"); err != nil || reason != "no label selector at spec.selector" {
			t.Errorf("v2: %q, %v; want no label selector", reason, err)
		}
	})
}
