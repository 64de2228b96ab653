package engine

import (
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"relabel.dev/relabel/rules"
	workload "relabel.dev/relabel/unstructured"
)

func withHostPort(obj *unstructured.Unstructured) *unstructured.Unstructured {
	obj = obj.DeepCopy()
	_ = unstructured.SetNestedSlice(obj.Object, []interface{}{map[string]interface{}{
		"name": "c", "image": "example.com/c:1",
		"ports": []interface{}{map[string]interface{}{"containerPort": int64(9100), "hostPort": int64(9100)}},
	}}, "spec", "template", "spec", "containers")
	return obj
}

func with(obj *unstructured.Unstructured, value interface{}, fields ...string) *unstructured.Unstructured {
	obj = obj.DeepCopy()
	if err := unstructured.SetNestedField(obj.Object, value, fields...); err != nil {
		panic(err)
	}
	return obj
}

func TestChooseStrategy(t *testing.T) {
	rollout, _ := rules.Builtin(schema.GroupKind{Group: "argoproj.io", Kind: "Rollout"})
	kruiseSTS, _ := rules.Builtin(schema.GroupKind{Group: "apps.kruise.io", Kind: "StatefulSet"})
	claims := []interface{}{map[string]interface{}{"metadata": map[string]interface{}{"name": "data"}}}
	daemonSet, _ := rules.Builtin(schema.GroupKind{Group: "apps", Kind: "DaemonSet"})
	statefulSet, _ := rules.Builtin(schema.GroupKind{Group: "apps", Kind: "StatefulSet"})
	custom := rules.Kind{Group: "demo.relabel.dev", Kind: "Rollout", Strategy: rules.TempCopy,
		SelectorPath: rules.StandardSelectorPath, TemplateLabelsPath: rules.StandardTemplateLabelsPath,
		Guards: []rules.Guard{{Path: "spec.volumeClaimTemplates", Effect: rules.NoCopy, Reason: "volumes"}}}
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
		{"statefulset with volume claim templates, temp-copy asked", statefulSet, with(plain, claims, "spec", "volumeClaimTemplates"), rules.TempCopy, 0, "", true},
		{"statefulset with volume claim templates adopts", statefulSet, with(plain, claims, "spec", "volumeClaimTemplates"), rules.StrategyAuto, 0, rules.Adopt, false},
		{"statefulset without volume claim templates, temp-copy asked", statefulSet, with(plain, []interface{}{}, "spec", "volumeClaimTemplates"), rules.TempCopy, 0, rules.TempCopy, false},
		{"recreate deployment adopts", deploymentKind, with(plain, "Recreate", "spec", "strategy", "type"), rules.StrategyAuto, 0, rules.Adopt, false},
		{"recreate deployment, temp-copy asked", deploymentKind, with(plain, "Recreate", "spec", "strategy", "type"), rules.TempCopy, 0, "", true},
		{"rolling deployment copies", deploymentKind, with(plain, "RollingUpdate", "spec", "strategy", "type"), rules.StrategyAuto, 0, rules.TempCopy, false},
		{"daemonset on the host network adopts", daemonSet, with(plain, true, "spec", "template", "spec", "hostNetwork"), rules.StrategyAuto, 0, rules.Adopt, false},
		{"daemonset on the host network, temp-copy asked", daemonSet, with(plain, true, "spec", "template", "spec", "hostNetwork"), rules.TempCopy, 0, "", true},
		{"custom resource with volume claim templates cannot be copied or adopted", custom, with(plain, claims, "spec", "volumeClaimTemplates"), rules.StrategyAuto, 0, "", true},
		{"rollout copies", rollout, plain, rules.StrategyAuto, 0, rules.TempCopy, false},
		{"blue-green rollout adopts", rollout, with(plain, map[string]interface{}{"activeService": "web"}, "spec", "strategy", "blueGreen"), rules.StrategyAuto, 0, rules.Adopt, false},
		{"advanced statefulset is never copied", kruiseSTS, plain, rules.TempCopy, 0, "", true},
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

func TestPlanObjectEligibility(t *testing.T) {
	label := workload.Label{Key: "team", Value: "core"}
	noRule := deploymentKind
	noRule.Readiness = ""
	for _, tc := range []struct {
		name       string
		kind       rules.Kind
		obj        *unstructured.Unstructured
		wantAction Action
		wantReason string
		refused    bool
	}{
		{name: "paused deployment is skipped", kind: deploymentKind, obj: with(deployment("web", 3), true, "spec", "paused"),
			wantAction: ActionSkip, wantReason: "paused"},
		{name: "recreate deployment says its pods are replaced at once", kind: deploymentKind, obj: with(deployment("web", 3), "Recreate", "spec", "strategy", "type"),
			wantAction: ActionMigrate, wantReason: "all at once"},
		{name: "a kind relabel cannot judge is refused", kind: noRule, obj: deployment("web", 3), refused: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			it, err := planObject(tc.kind, tc.obj, PlanOptions{Label: label, Strategy: rules.StrategyAuto})
			if tc.refused {
				if !errors.Is(err, ErrStrategyRefused) || !strings.Contains(err.Error(), "readiness:") {
					t.Fatalf("err %v, want ErrStrategyRefused showing a readiness rule", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if it.Action != tc.wantAction || !strings.Contains(it.Reason, tc.wantReason) {
				t.Errorf("got %s (%q), want %s with %q", it.Action, it.Reason, tc.wantAction, tc.wantReason)
			}
		})
	}
}

func TestPlanObjectRefusesTemplateConflicts(t *testing.T) {
	obj := with(deployment("web", 3), "b", "spec", "template", "metadata", "labels", "team")
	it, err := planObject(deploymentKind, obj, PlanOptions{Label: workload.Label{Key: "team", Value: "a"}, Strategy: rules.StrategyAuto})
	if err != nil {
		t.Fatal(err)
	}
	if it.Action != ActionSkip || !it.Conflict || !strings.Contains(it.Reason, "team=b") {
		t.Errorf("got %s conflict=%v (%q), want a conflict naming team=b", it.Action, it.Conflict, it.Reason)
	}
}
