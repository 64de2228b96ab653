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

func condition(typ, status, reason, message string) map[string]interface{} {
	return map[string]interface{}{"type": typ, "status": status, "reason": reason, "message": message}
}

func TestReady(t *testing.T) {
	fixture := func(name string, mutators ...testutil.Mutator) *unstructured.Unstructured {
		return testutil.Unstructured(t, "testdata/objects/"+name+".yaml", mutators...)
	}
	tests := []struct {
		name      string
		obj       *unstructured.Unstructured
		wantReady bool
		// wantMessage is a part of the message.
		wantMessage string
		wantErr     bool
	}{
		{name: "deployment rolled out", obj: fixture("deployment"), wantReady: true, wantMessage: "available"},
		{name: "deployment observedGeneration behind", obj: fixture("deployment", set(int64(2), "status", "observedGeneration")),
			wantMessage: "generation"},
		{name: "deployment updatedReplicas short", obj: fixture("deployment", set(int64(2), "status", "updatedReplicas")),
			wantMessage: "Updated: 2/3"},
		{name: "deployment readyReplicas short", obj: fixture("deployment", set(int64(1), "status", "readyReplicas")),
			wantMessage: "Ready: 1/3"},
		{name: "deployment old replicas terminating", obj: fixture("deployment", set(int64(4), "status", "replicas")),
			wantMessage: "termination"},
		{name: "deployment not available", wantMessage: "Available",
			obj: fixture("deployment", set([]interface{}{condition("Progressing", "True", "NewReplicaSetAvailable", "")}, "status", "conditions"))},
		{name: "deployment progress deadline exceeded", wantMessage: "failed: ",
			obj: fixture("deployment", set([]interface{}{condition("Progressing", "False", "ProgressDeadlineExceeded", "")}, "status", "conditions"))},
		{name: "deployment without status", obj: fixture("deployment", remove("status"))},
		{name: "deployment being deleted", obj: fixture("deployment", set("2024-06-01T00:00:00Z", "metadata", "deletionTimestamp")),
			wantMessage: "deletion"},
		{name: "statefulset rolled out", obj: fixture("statefulset"), wantReady: true},
		{name: "statefulset readyReplicas short", obj: fixture("statefulset", set(int64(1), "status", "readyReplicas")),
			wantMessage: "Ready: 1/2"},
		{name: "statefulset revision being rolled out", obj: fixture("statefulset", set("db-6c7d8e9f0", "status", "updateRevision")),
			wantMessage: "revision"},
		{name: "statefulset observedGeneration behind", obj: fixture("statefulset", set(int64(1), "status", "observedGeneration"))},
		{name: "daemonset rolled out", obj: fixture("daemonset"), wantReady: true},
		{name: "daemonset numberReady short", obj: fixture("daemonset", set(int64(2), "status", "numberReady")),
			wantMessage: "Ready: 2/3"},
		{name: "daemonset updatedNumberScheduled short", obj: fixture("daemonset", set(int64(1), "status", "updatedNumberScheduled"))},
		{name: "daemonset not yet observed", obj: fixture("daemonset", remove("status", "desiredNumberScheduled"))},
		{name: "custom resource without status", obj: fixture("rollout"), wantReady: true},
		{name: "custom resource Ready=False", obj: fixture("rollout-not-ready"), wantMessage: "1 of 2 replicas are available"},
		{name: "custom resource Ready=True", obj: fixture("rollout-not-ready",
			set([]interface{}{condition("Ready", "True", "Available", "")}, "status", "conditions")), wantReady: true},
		{name: "custom resource Reconciling", obj: fixture("rollout",
			set([]interface{}{condition("Reconciling", "True", "Progressing", "rolling out")}, "status", "conditions")), wantMessage: "rolling out"},
		{name: "custom resource Stalled", obj: fixture("rollout",
			set([]interface{}{condition("Stalled", "True", "ImagePullBackOff", "image not found")}, "status", "conditions")), wantMessage: "failed: image not found"},
		{name: "custom resource observedGeneration behind", obj: fixture("rollout-not-ready", set(int64(3), "status", "observedGeneration"),
			set([]interface{}{condition("Ready", "True", "Available", "")}, "status", "conditions"))},

		{name: "conditions are not a list", obj: fixture("rollout", set("Ready", "status", "conditions")), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kind := Kind{Kind: tc.obj.GetKind(), Readiness: ReadinessKstatus}
			if k, ok := Builtin(schema.FromAPIVersionAndKind(tc.obj.GetAPIVersion(), tc.obj.GetKind()).GroupKind()); ok {
				kind = k
			}
			ready, msg, err := kind.Ready(tc.obj)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("Ready = %v, %q; want an error", ready, msg)
				}
				if want := tc.obj.GetKind() + " " + tc.obj.GetNamespace() + "/" + tc.obj.GetName(); !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %s", err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Ready: %v", err)
			}
			if ready != tc.wantReady {
				t.Errorf("Ready = %v (%q), want %v", ready, msg, tc.wantReady)
			}
			if !strings.Contains(msg, tc.wantMessage) {
				t.Errorf("message %q does not contain %q", msg, tc.wantMessage)
			}
			if !ready && msg == "" {
				t.Error("not ready without a message")
			}
		})
	}
}
