package engine

import (
	"errors"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"relabel.dev/relabel/rules"
)

func withHostPort(obj *unstructured.Unstructured) *unstructured.Unstructured {
	obj = obj.DeepCopy()
	_ = unstructured.SetNestedSlice(obj.Object, []interface{}{map[string]interface{}{
		"name": "c", "image": "example.com/c:1",
		"ports": []interface{}{map[string]interface{}{"containerPort": int64(9100), "hostPort": int64(9100)}},
	}}, "spec", "template", "spec", "containers")
	return obj
}

func TestChooseStrategy(t *testing.T) {
	daemonSet, _ := rules.Builtin(schema.GroupKind{Group: "apps", Kind: "DaemonSet"})
	statefulSet, _ := rules.Builtin(schema.GroupKind{Group: "apps", Kind: "StatefulSet"})
	custom := rules.Kind{Group: "demo.relabel.dev", Kind: "Rollout", Strategy: rules.TempCopy,
		SelectorPath: rules.StandardSelectorPath, TemplateLabelsPath: rules.StandardTemplateLabelsPath}
	plain := deployment("web", 3)
	for _, tc := range []struct {
		name     string
		kind     rules.Kind
		obj      *unstructured.Unstructured
		asked    rules.Strategy
		maxSurge int64
		want     rules.Strategy
		refused  bool
	}{
		{"deployment by default", deploymentKind, plain, rules.StrategyAuto, 0, rules.TempCopy, false},
		{"statefulset by default", statefulSet, plain, rules.StrategyAuto, 0, rules.Adopt, false},
		{"daemonset by default", daemonSet, plain, rules.StrategyAuto, 0, rules.Adopt, false},
		{"daemonset with host ports, temp-copy asked", daemonSet, withHostPort(plain), rules.TempCopy, 0, "", true},
		{"daemonset without host ports, temp-copy asked", daemonSet, plain, rules.TempCopy, 0, rules.TempCopy, false},
		{"deployment with host ports copies", deploymentKind, withHostPort(plain), rules.StrategyAuto, 0, rules.TempCopy, false},
		{"deployment over the surge bound", deploymentKind, plain, rules.StrategyAuto, 2, rules.Adopt, false},
		{"deployment within the surge bound", deploymentKind, plain, rules.StrategyAuto, 3, rules.TempCopy, false},
		{"custom resource cannot adopt", custom, plain, rules.Adopt, 0, "", true},
		{"custom resource over the surge bound still copies", custom, plain, rules.StrategyAuto, 1, rules.TempCopy, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why, err := chooseStrategy(tc.kind, tc.obj, tc.asked, tc.maxSurge)
			if tc.refused {
				if !errors.Is(err, ErrStrategyRefused) {
					t.Fatalf("err %v, want ErrStrategyRefused", err)
				}
				return
			}
			if err != nil || got != tc.want || why == "" {
				t.Errorf("got %s (%q), %v; want %s with a reason", got, why, err, tc.want)
			}
		})
	}
}
