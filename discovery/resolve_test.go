package discovery

import (
	"context"
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"relabel.dev/relabel/rules"
)

func TestResolve(t *testing.T) {
	found, err := Discoverer{Resources: served(), Dynamic: withCRDs(t)}.Discover(context.Background())
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	tests := []struct {
		arg  string
		want string // the GVR of the kind; empty when an error is expected
		// wantErr is the sentinel the error wraps, wantText parts of its message.
		wantErr  error
		wantText []string
	}{
		{arg: "apps/v1/deployments", want: "apps/v1/deployments"},
		{arg: "deployments", want: "apps/v1/deployments"},
		{arg: "deploy", want: "apps/v1/deployments"},
		{arg: "deployment", want: "apps/v1/deployments"},
		{arg: "Deployment", want: "apps/v1/deployments"},
		{arg: "DEPLOYMENTS", want: "apps/v1/deployments"},
		{arg: "deployments.apps", want: "apps/v1/deployments"},
		{arg: "deploy.apps", want: "apps/v1/deployments"},
		{arg: "Deployment.apps", want: "apps/v1/deployments"},
		{arg: "  deployments ", want: "apps/v1/deployments"},
		{arg: "apps/v1/Deployments", want: "apps/v1/deployments"},
		{arg: "sts", want: "apps/v1/statefulsets"},
		{arg: "statefulset", want: "apps/v1/statefulsets"},
		{arg: "ds", want: "apps/v1/daemonsets"},
		{arg: "daemonsets.apps", want: "apps/v1/daemonsets"},
		{arg: "demo.relabel.dev/v1alpha1/rollouts", want: "demo.relabel.dev/v1alpha1/rollouts"},
		{arg: "rollouts.demo.relabel.dev", want: "demo.relabel.dev/v1alpha1/rollouts"},
		{arg: "ro", want: "demo.relabel.dev/v1alpha1/rollouts"},
		{arg: "rollout", want: "demo.relabel.dev/v1alpha1/rollouts"},
		{arg: "Rollout", want: "demo.relabel.dev/v1alpha1/rollouts"},
		{arg: "ro.demo.relabel.dev", want: "demo.relabel.dev/v1alpha1/rollouts"},

		{arg: "v1/pods", wantErr: ErrNotWorkload, wantText: []string{"v1/pods"}},
		{arg: "pods", wantErr: ErrNotWorkload, wantText: []string{"v1/pods"}},
		{arg: "cm", wantErr: ErrNotWorkload, wantText: []string{"v1/configmaps"}},
		{arg: "replicasets", wantErr: ErrNotWorkload, wantText: []string{"owned by Deployments; migrate the Deployment"}},
		{arg: "rs", wantErr: ErrNotWorkload, wantText: []string{"owned by Deployments"}},
		{arg: "apps/v1/replicasets", wantErr: ErrNotWorkload, wantText: []string{"owned by Deployments"}},
		{arg: "jobs", wantErr: ErrNotWorkload, wantText: []string{"completion"}},
		{arg: "cj", wantErr: ErrNotWorkload, wantText: []string{"creates Jobs"}},
		{arg: "rc", wantErr: ErrNotWorkload, wantText: []string{"mutable"}},
		{arg: "v1/replicationcontrollers", wantErr: ErrNotWorkload, wantText: []string{"mutable"}},
		{arg: "widgets", wantErr: ErrNotWorkload, wantText: []string{"no label selector"}},
		{arg: "crd", wantErr: ErrNotWorkload, wantText: []string{"apiextensions.k8s.io/v1/customresourcedefinitions"}},

		{arg: "deploymnets", wantErr: ErrUnknownResource, wantText: []string{"did you mean apps/v1/deployments?"}},
		{arg: "statefulsest", wantErr: ErrUnknownResource, wantText: []string{"did you mean apps/v1/statefulsets?"}},
		{arg: "rolouts", wantErr: ErrUnknownResource, wantText: []string{"did you mean demo.relabel.dev/v1alpha1/rollouts?"}},
		{arg: "app/v1/deployments", wantErr: ErrUnknownResource, wantText: []string{"did you mean apps/v1/deployments?"}},
		{arg: "apps/v1/deploy", wantErr: ErrUnknownResource, wantText: []string{"did you mean apps/v1/deployments?"}},
		{arg: "apps/v2/deployments", wantErr: ErrUnknownResource, wantText: []string{"apps/v2/deployments", "the server serves apps/v1/deployments"}},
		{arg: "v2/pods", wantErr: ErrUnknownResource, wantText: []string{"the server serves v1/pods"}},
		{arg: "demo.relabel.dev/v1/rollouts", wantErr: ErrUnknownResource, wantText: []string{"the server serves demo.relabel.dev/v1alpha1/rollouts"}},
		{arg: "deployments.batch", wantErr: ErrUnknownResource},
		{arg: "a/b/c/d", wantErr: ErrUnknownResource, wantText: []string{"group/version/resource"}},
		{arg: "", wantErr: ErrUnknownResource},
	}
	for _, tc := range tests {
		name := tc.arg
		if name == "" {
			name = "empty"
		}
		t.Run(name, func(t *testing.T) {
			got, err := found.Resolve(tc.arg)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("Resolve(%q) = %s, want an error", tc.arg, got.GVRString())
				}
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("error %q does not wrap %q", err, tc.wantErr)
				}
				for _, want := range tc.wantText {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not contain %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve(%q): %v", tc.arg, err)
			}
			if got.GVRString() != tc.want {
				t.Errorf("Resolve(%q) = %s, want %s", tc.arg, got.GVRString(), tc.want)
			}
			if got.Kind == "" || got.Version == "" || got.SelectorPath == "" {
				t.Errorf("Resolve(%q) = %+v: incomplete", tc.arg, got)
			}
		})
	}
}

func TestResolveAmbiguous(t *testing.T) {
	gvr := func(g, v, r string) schema.GroupVersionResource {
		return schema.GroupVersionResource{Group: g, Version: v, Resource: r}
	}
	result := func(resources ...resource) *Result {
		r := &Result{resources: resources}
		for _, res := range resources {
			// The reason names the resource, so that the error tells which one Resolve chose.
			name := rules.FormatGVR(res.gvr)
			r.Skipped = append(r.Skipped, Skipped{GVR: name, Kind: res.kind, Reason: "resolved to " + name})
		}
		return r
	}
	apps := resource{gvr: gvr("apps", "v1", "deployments"), kind: "Deployment", singular: "deployment", shortNames: []string{"deploy"}}
	crdA := resource{gvr: gvr("a.example", "v1", "deployers"), kind: "Deployer", singular: "deployer", shortNames: []string{"deploy", "dp"}}
	crdB := resource{gvr: gvr("b.example", "v1", "droplets"), kind: "Droplet", singular: "droplet", shortNames: []string{"dp"}}

	t.Run("built-in group wins a shared short name", func(t *testing.T) {
		for _, r := range []*Result{result(crdA, apps), result(apps, crdA)} {
			_, err := r.Resolve("deploy")
			if !errors.Is(err, ErrNotWorkload) || !strings.Contains(err.Error(), "apps/v1/deployments") {
				t.Errorf("Resolve(deploy): %v, want apps/v1/deployments", err)
			}
		}
	})
	t.Run("custom resources sharing a short name", func(t *testing.T) {
		_, err := result(crdA, crdB).Resolve("dp")
		if err == nil || !strings.Contains(err.Error(), "ambiguous") ||
			!strings.Contains(err.Error(), "a.example/v1/deployers") || !strings.Contains(err.Error(), "b.example/v1/droplets") {
			t.Errorf("Resolve(dp): %v, want an ambiguity naming both", err)
		}
	})
	t.Run("qualified by group", func(t *testing.T) {
		_, err := result(crdA, crdB).Resolve("dp.b.example")
		if !errors.Is(err, ErrNotWorkload) || !strings.Contains(err.Error(), "b.example/v1/droplets") {
			t.Errorf("Resolve(dp.b.example): %v", err)
		}
	})
	t.Run("suggestion does not depend on discovery order", func(t *testing.T) {
		// "dx" is one edit from both "dp" and "ds"; the suggestion must be the same either way.
		ds := resource{gvr: gvr("apps", "v1", "daemonsets"), kind: "DaemonSet", singular: "daemonset", shortNames: []string{"ds"}}
		_, err1 := result(crdB, ds).Resolve("dx")
		_, err2 := result(ds, crdB).Resolve("dx")
		if err1 == nil || err2 == nil || err1.Error() != err2.Error() {
			t.Errorf("Resolve(dx) = %v, then %v", err1, err2)
		}
		if !errors.Is(err1, ErrUnknownResource) {
			t.Errorf("error %v does not wrap ErrUnknownResource", err1)
		}
	})
	t.Run("nothing discovered", func(t *testing.T) {
		_, err := (&Result{}).Resolve("deployments")
		if !errors.Is(err, ErrUnknownResource) || strings.Contains(err.Error(), "did you mean") {
			t.Errorf("Resolve on an empty result: %v", err)
		}
	})
}

func TestDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"", "abc", 3}, {"abc", "", 3}, {"abc", "abc", 0},
		{"deploymnets", "deployments", 2}, {"kitten", "sitting", 3}, {"sts", "ds", 2}, {"ro", "rollouts", 6},
	}
	for _, tc := range tests {
		t.Run(tc.a+"_"+tc.b, func(t *testing.T) {
			if got := distance(tc.a, tc.b); got != tc.want {
				t.Errorf("distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
			}
			if got := distance(tc.b, tc.a); got != tc.want {
				t.Errorf("distance(%q, %q) = %d, want %d", tc.b, tc.a, got, tc.want)
			}
		})
	}
}

func TestOffline(t *testing.T) {
	custom := rules.Kind{Group: "example.com", Version: "v1", Kind: "Workload", Resource: "workloads", Namespaced: true, Source: rules.SourceRules}
	found := Offline([]rules.Kind{custom})
	var gvrs []string
	for _, k := range found.Workloads {
		gvrs = append(gvrs, k.GVRString())
	}
	// Without a cluster every built-in kind is known, the custom ones relabel knows too.
	if got, want := strings.Join(gvrs, " "), "apps.kruise.io/v1alpha1/clonesets apps.kruise.io/v1alpha1/daemonsets apps.kruise.io/v1beta1/statefulsets "+
		"apps/v1/daemonsets apps/v1/deployments apps/v1/statefulsets argoproj.io/v1alpha1/rollouts example.com/v1/workloads"; got != want {
		t.Errorf("workloads %q, want %q", got, want)
	}
	for arg, want := range map[string]string{
		"deploy": "apps/v1/deployments", "sts": "apps/v1/statefulsets", "ds": "apps/v1/daemonsets",
		"Deployment.apps": "apps/v1/deployments", "workload": "example.com/v1/workloads", "example.com/v1/workloads": "example.com/v1/workloads",
	} {
		k, err := found.Resolve(arg)
		if err != nil || k.GVRString() != want {
			t.Errorf("Resolve(%q) = %s, %v; want %s", arg, k.GVRString(), err, want)
		}
	}
	if k, err := found.Resolve("rollouts"); err != nil || k.GVRString() != "argoproj.io/v1alpha1/rollouts" {
		t.Errorf("Resolve(rollouts) = %s, %v; want Argo Rollouts' rollouts", k.GVRString(), err)
	}
	if _, err := found.Resolve("widgets"); !errors.Is(err, ErrUnknownResource) {
		t.Errorf("Resolve(widgets): err %v, want ErrUnknownResource", err)
	}
}
