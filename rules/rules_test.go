package rules

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestBuiltin(t *testing.T) {
	tests := []struct {
		name      string
		gk        schema.GroupKind
		wantFound bool
		resource  string
		maxName   int
		gvr       string
		strategy  Strategy
	}{
		{name: "deployment", gk: schema.GroupKind{Group: "apps", Kind: "Deployment"}, wantFound: true, resource: "deployments", maxName: 253, gvr: "apps/v1/deployments", strategy: TempCopy},
		{name: "statefulset", gk: schema.GroupKind{Group: "apps", Kind: "StatefulSet"}, wantFound: true, resource: "statefulsets", maxName: 52, gvr: "apps/v1/statefulsets", strategy: Adopt},
		{name: "daemonset", gk: schema.GroupKind{Group: "apps", Kind: "DaemonSet"}, wantFound: true, resource: "daemonsets", maxName: 63, gvr: "apps/v1/daemonsets", strategy: Adopt},
		{name: "replicaset is not built in", gk: schema.GroupKind{Group: "apps", Kind: "ReplicaSet"}},
		{name: "job is not built in", gk: schema.GroupKind{Group: "batch", Kind: "Job"}},
		{name: "deployment of another group", gk: schema.GroupKind{Group: "extensions", Kind: "Deployment"}},
		{name: "deployment of the core group", gk: schema.GroupKind{Kind: "Deployment"}},
		{name: "kind in lower case", gk: schema.GroupKind{Group: "apps", Kind: "deployment"}},
		{name: "pod", gk: schema.GroupKind{Kind: "Pod"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, ok := Builtin(tc.gk)
			if ok != tc.wantFound {
				t.Fatalf("Builtin(%v) found = %v, want %v", tc.gk, ok, tc.wantFound)
			}
			if !ok {
				if !reflect.DeepEqual(k, Kind{}) {
					t.Errorf("Builtin(%v) = %+v when not found", tc.gk, k)
				}
				return
			}
			if k.GroupKind() != tc.gk {
				t.Errorf("GroupKind = %v, want %v", k.GroupKind(), tc.gk)
			}
			if k.Resource != tc.resource || k.Version != "v1" || !k.Namespaced {
				t.Errorf("resource %s/%s namespaced=%v, want v1/%s namespaced", k.Version, k.Resource, k.Namespaced, tc.resource)
			}
			if k.MaxNameLength != tc.maxName {
				t.Errorf("MaxNameLength = %d, want %d", k.MaxNameLength, tc.maxName)
			}
			if k.SelectorPath != StandardSelectorPath || k.TemplateLabelsPath != StandardTemplateLabelsPath {
				t.Errorf("paths %s, %s", k.SelectorPath, k.TemplateLabelsPath)
			}
			if !k.CanAdopt() {
				t.Errorf("%s has no adopt rule", tc.gk)
			}
			if k.Strategy != tc.strategy || k.Readiness != strings.ToLower(k.Kind) || k.Source != SourceBuiltin {
				t.Errorf("strategy %s readiness %s source %s", k.Strategy, k.Readiness, k.Source)
			}
			if got := k.GVRString(); got != tc.gvr {
				t.Errorf("GVRString = %q, want %q", got, tc.gvr)
			}
			if err := k.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
			if _, skipped := SkipReason(tc.gk); skipped {
				t.Error("a built-in kind is also skipped")
			}
		})
	}
}

func TestSkipReason(t *testing.T) {
	tests := []struct {
		name       string
		gk         schema.GroupKind
		wantReason string // a part of the reason; empty when not skipped
	}{
		{name: "replicaset", gk: schema.GroupKind{Group: "apps", Kind: "ReplicaSet"}, wantReason: "Deployment"},
		{name: "job", gk: schema.GroupKind{Group: "batch", Kind: "Job"}, wantReason: "completion"},
		{name: "cronjob", gk: schema.GroupKind{Group: "batch", Kind: "CronJob"}, wantReason: "Jobs"},
		{name: "replicationcontroller", gk: schema.GroupKind{Kind: "ReplicationController"}, wantReason: "mutable"},
		{name: "deployment", gk: schema.GroupKind{Group: "apps", Kind: "Deployment"}},
		{name: "pod", gk: schema.GroupKind{Kind: "Pod"}},
		{name: "job of another group", gk: schema.GroupKind{Group: "apps", Kind: "Job"}},
		{name: "replicationcontroller of another group", gk: schema.GroupKind{Group: "apps", Kind: "ReplicationController"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reason, ok := SkipReason(tc.gk)
			if ok != (tc.wantReason != "") {
				t.Fatalf("SkipReason(%v) = %q, %v", tc.gk, reason, ok)
			}
			if !strings.Contains(reason, tc.wantReason) {
				t.Errorf("reason %q does not contain %q", reason, tc.wantReason)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	valid, _ := Builtin(schema.GroupKind{Group: "apps", Kind: "Deployment"})
	tests := []struct {
		name    string
		mutate  func(*Kind)
		wantErr []string // parts of the message; none when valid
	}{
		{name: "built-in", mutate: func(*Kind) {}},
		{name: "adopt strategy", mutate: func(k *Kind) { k.Strategy = Adopt }},
		{name: "readiness left empty", mutate: func(k *Kind) { k.Readiness = "" }},
		{name: "core group", mutate: func(k *Kind) { k.Group = "" }},
		{name: "empty kind", mutate: func(k *Kind) { k.Kind = "" }, wantErr: []string{"kind is empty"}},
		{name: "empty selector path", mutate: func(k *Kind) { k.SelectorPath = "" }, wantErr: []string{"selectorPath is empty"}},
		{name: "empty template path", mutate: func(k *Kind) { k.TemplateLabelsPath = "" }, wantErr: []string{"templateLabelsPath is empty"}},
		{name: "empty strategy", mutate: func(k *Kind) { k.Strategy = "" }, wantErr: []string{`strategy ""`}},
		{name: "unknown strategy", mutate: func(k *Kind) { k.Strategy = "rolling" }, wantErr: []string{`strategy "rolling"`, "temp-copy", "adopt"}},
		{name: "no name length", mutate: func(k *Kind) { k.MaxNameLength = 0 }, wantErr: []string{"maxNameLength"}},
		{name: "negative name length", mutate: func(k *Kind) { k.MaxNameLength = -1 }, wantErr: []string{"maxNameLength"}},
		{name: "unknown readiness", mutate: func(k *Kind) { k.Readiness = "custom" }, wantErr: []string{`readiness "custom"`}},
		{name: "CEL readiness", mutate: func(k *Kind) { k.Readiness = "self.status.readyReplicas == self.spec.replicas" }},
		{name: "CEL readiness that is not bool", mutate: func(k *Kind) { k.Readiness = "self.spec.replicas + 1" },
			wantErr: []string{`readiness "self.spec.replicas + 1"`, "returns int, not bool"}},
		{name: "extra label paths", mutate: func(k *Kind) { k.ExtraLabelPaths = []Path{"spec.serviceSelector"} }},
		{name: "empty extra label path", mutate: func(k *Kind) { k.ExtraLabelPaths = []Path{"spec.a", ""} },
			wantErr: []string{"extraLabelPaths[1] is empty"}},
		{name: "several problems", mutate: func(k *Kind) { k.SelectorPath, k.Strategy = "", "x" },
			wantErr: []string{"kind Deployment.apps:", "selectorPath is empty; strategy"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := valid
			tc.mutate(&k)
			err := k.Validate()
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted the kind")
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestFormatGVR(t *testing.T) {
	tests := []struct {
		name string
		gvr  schema.GroupVersionResource
		want string
	}{
		{"core group", schema.GroupVersionResource{Version: "v1", Resource: "pods"}, "v1/pods"},
		{"apps", schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, "apps/v1/deployments"},
		{"dotted group", schema.GroupVersionResource{Group: "demo.relabel.dev", Version: "v1alpha1", Resource: "rollouts"}, "demo.relabel.dev/v1alpha1/rollouts"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := FormatGVR(tc.gvr); got != tc.want {
				t.Errorf("FormatGVR = %q, want %q", got, tc.want)
			}
			k := Kind{Group: tc.gvr.Group, Version: tc.gvr.Version, Resource: tc.gvr.Resource}
			if k.GVR() != tc.gvr || k.GVRString() != tc.want {
				t.Errorf("Kind.GVR = %v, GVRString = %q", k.GVR(), k.GVRString())
			}
		})
	}
}

func TestPathFields(t *testing.T) {
	tests := []struct {
		path Path
		want []string
	}{
		{StandardSelectorPath, []string{"spec", "selector"}},
		{StandardTemplateLabelsPath, []string{"spec", "template", "metadata", "labels"}},
		{"spec", []string{"spec"}},
	}
	for _, tc := range tests {
		t.Run(string(tc.path), func(t *testing.T) {
			got := tc.path.Fields()
			if !slices.Equal(got, tc.want) {
				t.Errorf("Fields = %q, want %q", got, tc.want)
			}
			// Callers append to the result; that must not reach another call's slice.
			extended := append(got, "matchLabels")
			if again := tc.path.Fields(); !slices.Equal(again, tc.want) || len(extended) != len(tc.want)+1 {
				t.Errorf("Fields changed after an append: %q", again)
			}
		})
	}
}
