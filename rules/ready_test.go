package rules

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"relabel.dev/relabel/internal/testutil"
)

func set(value interface{}, fields ...string) testutil.Mutator {
	return func(u *unstructured.Unstructured) {
		if err := unstructured.SetNestedField(u.Object, value, fields...); err != nil {
			panic(err)
		}
	}
}

func remove(fields ...string) testutil.Mutator {
	return func(u *unstructured.Unstructured) { unstructured.RemoveNestedField(u.Object, fields...) }
}

func cond(typ, status, reason, message string) map[string]interface{} {
	return map[string]interface{}{"type": typ, "status": status, "reason": reason, "message": message}
}

func conditions(c ...map[string]interface{}) testutil.Mutator {
	list := make([]interface{}, len(c))
	for i := range c {
		list[i] = c[i]
	}
	return set(list, "status", "conditions")
}

func TestReady(t *testing.T) {
	fixture := func(name string, mutators ...testutil.Mutator) *unstructured.Unstructured {
		return testutil.Unstructured(t, "testdata/objects/"+name+".yaml", mutators...)
	}
	generic := Kind{Kind: "Rollout", Readiness: ReadinessKstatus}
	tests := []struct {
		name string
		kind *Kind // nil: the built-in kind of the object
		obj  *unstructured.Unstructured
		want bool
		// wantFailed: the object cannot progress.
		wantFailed bool
		// wantMessage is a part of the message.
		wantMessage string
		wantErr     bool
	}{
		{name: "deployment rolled out", obj: fixture("deployment"), want: true, wantMessage: "available"},
		{name: "deployment observedGeneration behind", obj: fixture("deployment", set(int64(2), "status", "observedGeneration")), wantMessage: "generation 3"},
		{name: "deployment observedGeneration missing", obj: fixture("deployment", remove("status", "observedGeneration")), wantMessage: "observedGeneration"},
		{name: "deployment updatedReplicas short", obj: fixture("deployment", set(int64(2), "status", "updatedReplicas")), wantMessage: "Updated: 2/3"},
		{name: "deployment readyReplicas short", obj: fixture("deployment", set(int64(1), "status", "readyReplicas")), wantMessage: "Ready: 1/3"},
		{name: "deployment availableReplicas short", obj: fixture("deployment", set(int64(2), "status", "availableReplicas")), wantMessage: "Available: 2/3"},
		{name: "deployment old replicas terminating", obj: fixture("deployment", set(int64(4), "status", "replicas")), wantMessage: "termination"},
		{name: "deployment new, no status", obj: fixture("deployment", remove("status")), wantMessage: "no status"},
		{name: "deployment copy with 0 ready pods", obj: fixture("deployment", set(int64(0), "status", "readyReplicas"), set(int64(0), "status", "availableReplicas")), wantMessage: "Ready: 0/3"},
		{name: "deployment progress deadline exceeded", obj: fixture("deployment", conditions(cond("Progressing", "False", "ProgressDeadlineExceeded", "too slow"))),
			wantFailed: true, wantMessage: "ProgressDeadlineExceeded"},
		{name: "deployment pods refused by quota", obj: fixture("deployment", set(int64(0), "status", "readyReplicas"),
			conditions(cond("ReplicaFailure", "True", "FailedCreate", `pods "web-x" is forbidden: exceeded quota`))), wantFailed: true, wantMessage: "exceeded quota"},
		{name: "deployment paused", obj: fixture("deployment", set(true, "spec", "paused")), wantMessage: "paused"},
		{name: "deployment being deleted", obj: fixture("deployment", set("2024-06-01T00:00:00Z", "metadata", "deletionTimestamp")), wantMessage: "deletion"},
		{name: "deployment scaled to zero", obj: fixture("deployment", set(int64(0), "spec", "replicas"), set(int64(0), "status", "replicas"),
			set(int64(0), "status", "readyReplicas"), set(int64(0), "status", "availableReplicas"), set(int64(0), "status", "updatedReplicas")), want: true},

		{name: "statefulset rolled out", obj: fixture("statefulset"), want: true},
		{name: "statefulset readyReplicas short", obj: fixture("statefulset", set(int64(1), "status", "readyReplicas")), wantMessage: "Ready: 1/2"},
		{name: "statefulset revision being rolled out", obj: fixture("statefulset", set("db-6c7d8e9f0", "status", "updateRevision")), wantMessage: "revision"},
		{name: "statefulset recreated over old pods", obj: fixture("statefulset", set(int64(1), "status", "updatedReplicas")), wantMessage: "Updated: 1/2"},
		{name: "statefulset observedGeneration behind", obj: fixture("statefulset", set(int64(1), "status", "observedGeneration")), wantMessage: "generation"},
		{name: "statefulset OnDelete judged by ready counts", obj: fixture("statefulset", set("OnDelete", "spec", "updateStrategy", "type"),
			set("db-6c7d8e9f0", "status", "updateRevision")), want: true},
		{name: "statefulset OnDelete not ready", obj: fixture("statefulset", set("OnDelete", "spec", "updateStrategy", "type"),
			set(int64(0), "status", "readyReplicas")), wantMessage: "Ready: 0/2"},
		{name: "statefulset partition rolled out", obj: fixture("statefulset", set(int64(1), "spec", "updateStrategy", "rollingUpdate", "partition"),
			set(int64(1), "status", "updatedReplicas"), set("db-6c7d8e9f0", "status", "updateRevision")), want: true},

		{name: "daemonset rolled out", obj: fixture("daemonset"), want: true},
		{name: "daemonset numberReady short", obj: fixture("daemonset", set(int64(2), "status", "numberReady")), wantMessage: "Ready: 2/3"},
		{name: "daemonset updatedNumberScheduled short", obj: fixture("daemonset", set(int64(1), "status", "updatedNumberScheduled")), wantMessage: "Updated: 1/3"},
		{name: "daemonset OnDelete ignores updated", obj: fixture("daemonset", set("OnDelete", "spec", "updateStrategy", "type"),
			set(int64(1), "status", "updatedNumberScheduled")), want: true},
		{name: "daemonset not yet observed", obj: fixture("daemonset", remove("status", "desiredNumberScheduled")), wantMessage: "desiredNumberScheduled"},

		{name: "argo rollout healthy, string observedGeneration", obj: fixture("argo-rollout"), want: true, wantMessage: "Healthy"},
		{name: "argo rollout new, no status", obj: fixture("argo-rollout", remove("status")), wantMessage: "no status"},
		{name: "argo rollout string observedGeneration behind", obj: fixture("argo-rollout", set("1", "status", "observedGeneration")), wantMessage: "generation 2"},
		{name: "argo rollout progressing", obj: fixture("argo-rollout", set("Progressing", "status", "phase"), set("more replicas need to be updated", "status", "message")),
			wantMessage: "Progressing"},
		{name: "argo rollout degraded", obj: fixture("argo-rollout", set("Degraded", "status", "phase")), wantFailed: true, wantMessage: "Degraded"},
		{name: "argo rollout paused", obj: fixture("argo-rollout", set("Paused", "status", "phase")), wantMessage: "Paused"},
		{name: "argo rollout healthy phase, 0 available", obj: fixture("argo-rollout", set(int64(0), "status", "availableReplicas")), wantMessage: "Available: 0/5"},
		{name: "argo rollout progress deadline", obj: fixture("argo-rollout", conditions(cond("Progressing", "False", "ProgressDeadlineExceeded", "slow"))),
			wantFailed: true, wantMessage: "slow"},

		{name: "cloneset rolled out", obj: fixture("cloneset"), want: true},
		{name: "cloneset updated not available", obj: fixture("cloneset", set(int64(1), "status", "updatedAvailableReplicas")), wantMessage: "1/3"},
		{name: "cloneset paused", obj: fixture("cloneset", set(true, "spec", "updateStrategy", "paused")), wantMessage: "paused"},
		{name: "cloneset no status", obj: fixture("cloneset", remove("status")), wantMessage: "no status"},

		// Kinds known only from their CRD get the generic rule.
		{name: "custom resource without status", kind: &generic, obj: fixture("rollout"), wantMessage: "no status"},
		{name: "custom resource Ready=False", kind: &generic, obj: fixture("rollout-not-ready"), wantMessage: "1 of 2 replicas are available"},
		{name: "custom resource Ready=True", kind: &generic, obj: fixture("rollout-not-ready", conditions(cond("Ready", "True", "Available", ""))), want: true},
		{name: "custom resource ready replicas", kind: &generic, obj: fixture("rollout", set(int64(1), "status", "observedGeneration"), set(int64(2), "status", "readyReplicas")), want: true},
		{name: "custom resource ready replicas short", kind: &generic, obj: fixture("rollout", set(int64(1), "status", "observedGeneration"), set(int64(1), "status", "readyReplicas")),
			wantMessage: "readyReplicas: 1/2"},
		{name: "custom resource observed, no signal", kind: &generic, obj: fixture("rollout", set(int64(1), "status", "observedGeneration")), wantMessage: "no sign"},
		{name: "custom resource signal, not observed", kind: &generic, obj: fixture("rollout", set(int64(2), "status", "readyReplicas")), wantMessage: "observedGeneration"},
		{name: "custom resource observed on its condition", kind: &generic, obj: fixture("rollout",
			set([]interface{}{map[string]interface{}{"type": "Ready", "status": "True", "observedGeneration": int64(1)}}, "status", "conditions")), want: true},
		{name: "custom resource healthy phase", kind: &generic, obj: fixture("rollout", set("1", "status", "observedGeneration"), set("Healthy", "status", "phase")), want: true},
		{name: "custom resource degraded phase", kind: &generic, obj: fixture("rollout", set(int64(1), "status", "observedGeneration"), set("Degraded", "status", "phase")),
			wantFailed: true},
		{name: "custom resource Reconciling", kind: &generic, obj: fixture("rollout", set(int64(1), "status", "observedGeneration"),
			conditions(cond("Reconciling", "True", "Progressing", "rolling out"))), wantMessage: "rolling out"},
		{name: "custom resource Stalled", kind: &generic, obj: fixture("rollout", set(int64(1), "status", "observedGeneration"),
			conditions(cond("Stalled", "True", "ImagePullBackOff", "image not found"))), wantFailed: true, wantMessage: "image not found"},
		{name: "custom resource observedGeneration behind", kind: &generic, obj: fixture("rollout-not-ready", set(int64(3), "status", "observedGeneration"),
			conditions(cond("Ready", "True", "Available", ""))), wantMessage: "generation 4"},
		{name: "CEL rule still needs the generation observed", kind: &Kind{Kind: "Rollout", Readiness: "true"},
			obj: fixture("rollout-not-ready", set(int64(3), "status", "observedGeneration")), wantMessage: "generation"},

		{name: "conditions are not a list", kind: &generic, obj: fixture("rollout", set("Ready", "status", "conditions")), wantErr: true},
		{name: "kind without a readiness rule", kind: &Kind{Kind: "Rollout", Group: "demo.relabel.dev"}, obj: fixture("rollout"), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var kind Kind
			if tc.kind != nil {
				kind = *tc.kind
			} else {
				k, ok := Builtin(schema.FromAPIVersionAndKind(tc.obj.GetAPIVersion(), tc.obj.GetKind()).GroupKind())
				if !ok {
					t.Fatalf("no built-in kind for %s", tc.obj.GetKind())
				}
				kind = k
			}
			v, err := kind.Judge(tc.obj)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("Judge = %+v; want an error", v)
				}
				if want := tc.obj.GetKind() + " " + tc.obj.GetNamespace() + "/" + tc.obj.GetName(); !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %s", err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Judge: %v", err)
			}
			if v.Ready != tc.want || v.Failed != tc.wantFailed {
				t.Errorf("Judge = ready %v failed %v (%q), want ready %v failed %v", v.Ready, v.Failed, v.Reason, tc.want, tc.wantFailed)
			}
			if !strings.Contains(v.Reason, tc.wantMessage) {
				t.Errorf("reason %q does not contain %q", v.Reason, tc.wantMessage)
			}
			if v.Reason == "" {
				t.Error("a verdict without a reason")
			}
		})
	}
}

func TestEveryBuiltinKindHasAReadinessRule(t *testing.T) {
	for _, k := range Builtins() {
		if _, ok := builtinReadiness[k.Readiness]; !ok {
			t.Errorf("%s: readiness %q is not a built-in rule", k.GroupKind(), k.Readiness)
		}
		if err := k.Validate(); err != nil {
			t.Error(err)
		}
	}
}
