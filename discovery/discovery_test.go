package discovery

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8sdiscovery "k8s.io/client-go/discovery"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	clienttesting "k8s.io/client-go/testing"

	"relabel.dev/relabel/internal/testutil"
	"relabel.dev/relabel/rules"
)

func res(name, kind string, namespaced bool, shortNames ...string) metav1.APIResource {
	singular := ""
	if !strings.Contains(name, "/") {
		singular = strings.ToLower(kind)
	}
	return metav1.APIResource{Name: name, SingularName: singular, Kind: kind, Namespaced: namespaced, ShortNames: shortNames,
		Verbs: metav1.Verbs{"get", "list", "watch"}}
}

// apiResources is what the fake API server serves, subresources included.
func apiResources() []*metav1.APIResourceList {
	return []*metav1.APIResourceList{
		{GroupVersion: "v1", APIResources: []metav1.APIResource{
			res("pods", "Pod", true, "po"),
			res("pods/status", "Pod", true),
			res("pods/log", "Pod", true),
			res("replicationcontrollers", "ReplicationController", true, "rc"),
			res("replicationcontrollers/scale", "Scale", true),
			res("configmaps", "ConfigMap", true, "cm"),
			res("namespaces", "Namespace", false, "ns"),
		}},
		{GroupVersion: "apps/v1", APIResources: []metav1.APIResource{
			res("deployments", "Deployment", true, "deploy"),
			res("deployments/scale", "Scale", true),
			res("deployments/status", "Deployment", true),
			res("statefulsets", "StatefulSet", true, "sts"),
			res("statefulsets/scale", "Scale", true),
			res("daemonsets", "DaemonSet", true, "ds"),
			res("replicasets", "ReplicaSet", true, "rs"),
			res("controllerrevisions", "ControllerRevision", true),
		}},
		{GroupVersion: "batch/v1", APIResources: []metav1.APIResource{
			res("jobs", "Job", true),
			res("cronjobs", "CronJob", true, "cj"),
		}},
		{GroupVersion: "apiextensions.k8s.io/v1", APIResources: []metav1.APIResource{
			res("customresourcedefinitions", "CustomResourceDefinition", false, "crd", "crds"),
		}},
		{GroupVersion: "demo.relabel.dev/v1alpha1", APIResources: []metav1.APIResource{
			res("rollouts", "Rollout", true, "ro"),
			res("rollouts/status", "Rollout", true),
		}},
		{GroupVersion: "demo.relabel.dev/v1", APIResources: []metav1.APIResource{
			res("widgets", "Widget", true),
		}},
	}
}

// stub is a FakeDiscovery whose ServerPreferredResources answers what the
// test says; FakeDiscovery's own returns nothing.
type stub struct {
	*fakediscovery.FakeDiscovery
	preferred func() ([]*metav1.APIResourceList, error)
}

func (s stub) ServerPreferredResources() ([]*metav1.APIResourceList, error) { return s.preferred() }

func fakeDiscovery() *fakediscovery.FakeDiscovery {
	return &fakediscovery.FakeDiscovery{Fake: &clienttesting.Fake{Resources: apiResources()}}
}

// served answers as client-go does against a real server: the preferred
// version of every group, subresources left out.
func served() stub {
	fake := fakeDiscovery()
	return stub{FakeDiscovery: fake, preferred: func() ([]*metav1.APIResourceList, error) {
		return k8sdiscovery.ServerPreferredResources(fake)
	}}
}

// answering returns the given lists and error as they are.
func answering(lists []*metav1.APIResourceList, err error) stub {
	return stub{FakeDiscovery: fakeDiscovery(), preferred: func() ([]*metav1.APIResourceList, error) { return lists, err }}
}

// withCRDs is a dynamic client holding the two CRDs of testdata.
func withCRDs(t testing.TB) *dynamicfake.FakeDynamicClient {
	t.Helper()
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{CRDResource: "CustomResourceDefinitionList"},
		testutil.Unstructured(t, "testdata/crd-rollout.yaml"),
		testutil.Unstructured(t, "testdata/crd-widget.yaml"))
}

func builtin(t testing.TB, kind string) rules.Kind {
	t.Helper()
	k, ok := rules.Builtin(schema.GroupKind{Group: "apps", Kind: kind})
	if !ok {
		t.Fatalf("no built-in %s", kind)
	}
	return k
}

func rolloutKind() rules.Kind {
	return rules.Kind{
		Group: "demo.relabel.dev", Version: "v1alpha1", Kind: "Rollout", Resource: "rollouts", Namespaced: true,
		SelectorPath: rules.StandardSelectorPath, TemplateLabelsPath: rules.StandardTemplateLabelsPath,
		Strategy: rules.TempCopy, MaxNameLength: 63, Readiness: rules.ReadinessKstatus, Source: rules.SourceCRD,
		Guards: []rules.Guard{{Path: "spec.volumeClaimTemplates", Effect: rules.NoCopy, Reason: "it has volumeClaimTemplates: a copy would run on new, empty volumes"}},
	}
}

func gvrs(kinds []rules.Kind) []string {
	var out []string
	for _, k := range kinds {
		out = append(out, k.GVRString())
	}
	return out
}

func skippedGVRs(s []Skipped) []string {
	var out []string
	for _, x := range s {
		out = append(out, x.GVR)
	}
	return out
}

var (
	allWorkloads = []string{"apps/v1/daemonsets", "apps/v1/deployments", "apps/v1/statefulsets", "demo.relabel.dev/v1alpha1/rollouts"}
	allSkipped   = []string{"apps/v1/replicasets", "batch/v1/cronjobs", "batch/v1/jobs", "demo.relabel.dev/v1/widgets", "v1/replicationcontrollers"}
)

func TestDiscover(t *testing.T) {
	ctx := context.Background()

	t.Run("workloads, skipped and custom resources", func(t *testing.T) {
		for _, tc := range []struct {
			name      string
			resources k8sdiscovery.ServerResourcesInterface
		}{
			{"preferred resources", served()},
			{"raw lists with subresources", answering(apiResources(), nil)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				found, err := Discoverer{Resources: tc.resources, Dynamic: withCRDs(t)}.Discover(ctx)
				if err != nil {
					t.Fatalf("Discover: %v", err)
				}
				if got := gvrs(found.Workloads); !reflect.DeepEqual(got, allWorkloads) {
					t.Errorf("workloads = %v, want %v", got, allWorkloads)
				}
				want := map[string]rules.Kind{
					"apps/v1/deployments":                builtin(t, "Deployment"),
					"apps/v1/statefulsets":               builtin(t, "StatefulSet"),
					"apps/v1/daemonsets":                 builtin(t, "DaemonSet"),
					"demo.relabel.dev/v1alpha1/rollouts": rolloutKind(),
				}
				for _, k := range found.Workloads {
					if !reflect.DeepEqual(k, want[k.GVRString()]) {
						t.Errorf("workload %s = %+v\nwant %+v", k.GVRString(), k, want[k.GVRString()])
					}
				}
				if got := skippedGVRs(found.Skipped); !reflect.DeepEqual(got, allSkipped) {
					t.Errorf("skipped = %v, want %v", got, allSkipped)
				}
				wantReasons := map[string]string{
					"ReplicaSet": "owned by Deployments", "Job": "runs to completion", "CronJob": "creates Jobs",
					"ReplicationController": "mutable", "Widget": "custom resource without a workload shape: no label selector",
				}
				for _, s := range found.Skipped {
					if !strings.Contains(s.Reason, wantReasons[s.Kind]) {
						t.Errorf("skipped %s (%s): reason %q does not contain %q", s.GVR, s.Kind, s.Reason, wantReasons[s.Kind])
					}
				}
				if len(found.Warnings) != 0 {
					t.Errorf("warnings %v", found.Warnings)
				}
				for _, r := range found.resources {
					if strings.Contains(r.gvr.Resource, "/") {
						t.Errorf("subresource %s kept", rules.FormatGVR(r.gvr))
					}
				}
				if len(found.resources) != 14 {
					t.Errorf("%d resources kept, want the 14 served", len(found.resources))
				}
			})
		}
	})

	t.Run("partial discovery", func(t *testing.T) {
		lists := apiResources()[:2] // core and apps
		failure := &k8sdiscovery.ErrGroupDiscoveryFailed{Groups: map[schema.GroupVersion]error{
			{Group: "metrics.k8s.io", Version: "v1beta1"}: errors.New("the server is currently unable to handle the request"),
			{Group: "batch", Version: "v1"}:               errors.New("stream error"),
		}}
		found, err := Discoverer{Resources: answering(lists, failure), Dynamic: withCRDs(t)}.Discover(ctx)
		if err != nil {
			t.Fatalf("Discover: %v", err)
		}
		if len(found.Warnings) != 2 {
			t.Fatalf("warnings = %q, want one for each failed group", found.Warnings)
		}
		for i, group := range []string{"batch/v1", "metrics.k8s.io/v1beta1"} {
			if !strings.Contains(found.Warnings[i], group) {
				t.Errorf("warning %d %q does not name %s", i, found.Warnings[i], group)
			}
		}
		if !strings.Contains(found.Warnings[1], "unable to handle the request") {
			t.Errorf("warning %q does not say why", found.Warnings[1])
		}
		want := []string{"apps/v1/daemonsets", "apps/v1/deployments", "apps/v1/statefulsets"}
		if got := gvrs(found.Workloads); !reflect.DeepEqual(got, want) {
			t.Errorf("workloads = %v, want %v", got, want)
		}
		wantSkipped := []string{"apps/v1/replicasets", "v1/replicationcontrollers"}
		if got := skippedGVRs(found.Skipped); !reflect.DeepEqual(got, wantSkipped) {
			t.Errorf("skipped = %v, want %v", got, wantSkipped)
		}
	})

	failures := []struct {
		name  string
		lists []*metav1.APIResourceList
		err   error
	}{
		{"every group failed", nil, &k8sdiscovery.ErrGroupDiscoveryFailed{Groups: map[schema.GroupVersion]error{{Group: "apps", Version: "v1"}: errors.New("boom")}}},
		{"no list at all", []*metav1.APIResourceList{}, &k8sdiscovery.ErrGroupDiscoveryFailed{Groups: map[schema.GroupVersion]error{{Group: "apps", Version: "v1"}: errors.New("boom")}}},
		{"server unreachable", nil, errors.New("connection refused")},
		{"other error with lists", apiResources(), errors.New("connection reset")},
	}
	for _, tc := range failures {
		t.Run("total failure: "+tc.name, func(t *testing.T) {
			found, err := Discoverer{Resources: answering(tc.lists, tc.err), Dynamic: withCRDs(t)}.Discover(ctx)
			if err == nil {
				t.Fatalf("Discover = %+v, want an error", found)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("error %v does not wrap %v", err, tc.err)
			}
		})
	}

	t.Run("unparsable group version", func(t *testing.T) {
		lists := []*metav1.APIResourceList{{GroupVersion: "a/b/c", APIResources: []metav1.APIResource{res("things", "Thing", true)}}}
		if _, err := (Discoverer{Resources: answering(lists, nil)}).Discover(ctx); err == nil || !strings.Contains(err.Error(), "a/b/c") {
			t.Errorf("Discover: %v, want an error naming a/b/c", err)
		}
	})

	t.Run("without a dynamic client", func(t *testing.T) {
		found, err := Discoverer{Resources: served()}.Discover(ctx)
		if err != nil {
			t.Fatalf("Discover: %v", err)
		}
		want := []string{"apps/v1/daemonsets", "apps/v1/deployments", "apps/v1/statefulsets"}
		if got := gvrs(found.Workloads); !reflect.DeepEqual(got, want) {
			t.Errorf("workloads = %v, want %v", got, want)
		}
		wantSkipped := []string{"apps/v1/replicasets", "batch/v1/cronjobs", "batch/v1/jobs", "v1/replicationcontrollers"}
		if got := skippedGVRs(found.Skipped); !reflect.DeepEqual(got, wantSkipped) {
			t.Errorf("skipped = %v, want %v", got, wantSkipped)
		}
		if len(found.Warnings) != 0 {
			t.Errorf("warnings %v", found.Warnings)
		}
	})

	t.Run("listing CRDs fails", func(t *testing.T) {
		dyn := withCRDs(t)
		dyn.PrependReactor("list", "customresourcedefinitions", func(clienttesting.Action) (bool, runtime.Object, error) {
			return true, nil, errors.New("forbidden")
		})
		found, err := Discoverer{Resources: served(), Dynamic: dyn}.Discover(ctx)
		if err != nil {
			t.Fatalf("Discover: %v", err)
		}
		if len(found.Warnings) != 1 || !strings.Contains(found.Warnings[0], "custom resources are left out") || !strings.Contains(found.Warnings[0], "forbidden") {
			t.Errorf("warnings = %q", found.Warnings)
		}
		want := []string{"apps/v1/daemonsets", "apps/v1/deployments", "apps/v1/statefulsets"}
		if got := gvrs(found.Workloads); !reflect.DeepEqual(got, want) {
			t.Errorf("workloads = %v, want %v", got, want)
		}
	})

	t.Run("extra kinds take precedence", func(t *testing.T) {
		widget := rules.Kind{Group: "demo.relabel.dev", Kind: "Widget",
			SelectorPath: "spec.podSelector", TemplateLabelsPath: "spec.template.metadata.labels",
			Strategy: rules.Adopt, MaxNameLength: 40, Source: "rules file"}
		deploy := builtin(t, "Deployment")
		deploy.Strategy, deploy.Source, deploy.Version, deploy.Resource = rules.Adopt, "rules file", "", ""
		found, err := Discoverer{Resources: served(), Dynamic: withCRDs(t), Extra: []rules.Kind{widget, deploy}}.Discover(ctx)
		if err != nil {
			t.Fatalf("Discover: %v", err)
		}
		want := []string{"apps/v1/daemonsets", "apps/v1/deployments", "apps/v1/statefulsets", "demo.relabel.dev/v1/widgets", "demo.relabel.dev/v1alpha1/rollouts"}
		if got := gvrs(found.Workloads); !reflect.DeepEqual(got, want) {
			t.Fatalf("workloads = %v, want %v", got, want)
		}
		for _, k := range found.Workloads {
			switch k.Kind {
			case "Widget":
				if k.Version != "v1" || k.Resource != "widgets" || !k.Namespaced || k.SelectorPath != "spec.podSelector" || k.Strategy != rules.Adopt {
					t.Errorf("widget = %+v", k)
				}
			case "Deployment":
				if k.Strategy != rules.Adopt || k.Source != "rules file" || k.Version != "v1" || k.Resource != "deployments" {
					t.Errorf("deployment = %+v", k)
				}
			}
		}
		for _, s := range found.Skipped {
			if s.Kind == "Widget" {
				t.Errorf("widget is also skipped: %+v", s)
			}
		}
	})

	t.Run("CRD of another served version", func(t *testing.T) {
		// The server prefers a version the CRD's schema does not describe.
		lists := apiResources()
		lists[4].GroupVersion = "demo.relabel.dev/v1beta1"
		found, err := Discoverer{Resources: answering(lists, nil), Dynamic: withCRDs(t)}.Discover(ctx)
		if err != nil {
			t.Fatalf("Discover: %v", err)
		}
		for _, s := range found.Skipped {
			if s.Kind == "Rollout" {
				if !strings.Contains(s.Reason, "no schema for version v1beta1") {
					t.Errorf("reason %q", s.Reason)
				}
				return
			}
		}
		t.Errorf("rollouts at v1beta1 are not skipped: %+v", found.Skipped)
	})
}

// The fake must satisfy the interfaces Discoverer takes.
var (
	_ k8sdiscovery.ServerResourcesInterface = stub{}
	_ dynamic.Interface                     = (*dynamicfake.FakeDynamicClient)(nil)
)
