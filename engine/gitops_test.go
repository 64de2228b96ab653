package engine

import (
	"context"
	"reflect"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"relabel.dev/relabel/rules"
	workload "relabel.dev/relabel/unstructured"
)

func kustomization(suspend any) *unstructured.Unstructured {
	obj := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"interval": "5m"}}}
	if suspend != nil {
		obj.Object["spec"].(map[string]any)["suspend"] = suspend
	}
	obj.SetAPIVersion("kustomize.toolkit.fluxcd.io/v1")
	obj.SetKind("Kustomization")
	obj.SetNamespace("flux-system")
	obj.SetName("apps")
	obj.SetResourceVersion("1")
	return obj
}

// TestPauserHoldsTheOwnerWhileAnyObjectIsInFlight migrates three
// Deployments of one Kustomization two at a time: it is suspended before the
// first write to any of them, stays so until the last is done, and is then
// exactly as before, paused and resumed once.
func TestPauserHoldsTheOwnerWhileAnyObjectIsInFlight(t *testing.T) {
	owner := workload.GitOpsOwner{Kind: rules.FluxKustomization, Namespace: "flux-system", Name: "apps"}
	kgvr := rules.FluxKustomization.GVR()
	client := newFakeCluster(t, false, deployment("a", 1), deployment("b", 1), deployment("c", 1), kustomization(nil))
	// Reactors run under the fake client's lock: read the tracker, not the client.
	suspended := func() bool {
		obj, err := client.Tracker().Get(kgvr, "flux-system", "apps")
		if err != nil {
			t.Error(err)
			return false
		}
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			t.Errorf("the Kustomization is a %T", obj)
			return false
		}
		v, _, _ := unstructured.NestedBool(u.Object, "spec", "suspend")
		return v
	}
	var mu sync.Mutex
	var unpausedWrites []string
	for _, verb := range []string{"create", "delete"} {
		client.PrependReactor(verb, "deployments", func(action k8stesting.Action) (bool, runtime.Object, error) {
			if !suspended() {
				mu.Lock()
				unpausedWrites = append(unpausedWrites, action.GetVerb())
				mu.Unlock()
			}
			return false, nil, nil
		})
	}
	m := newTestMigrator(t, client)
	m.GitOps = &Pauser{Dynamic: client, Holder: "relabel@test/1/x"}
	var items []Item
	for _, n := range []string{"a", "b", "c"} {
		it := migrateItem(n)
		it.GitOps = []workload.GitOpsOwner{owner}
		items = append(items, it)
	}
	results, err := m.Run(context.Background(), items)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.Outcome != Migrated {
			t.Errorf("%s: %s %s", r.Item.Name, r.Outcome, r.Message)
		}
	}
	if len(unpausedWrites) > 0 {
		t.Errorf("writes while the Kustomization was not suspended: %v", unpausedWrites)
	}
	after, err := client.Resource(kgvr).Namespace("flux-system").Get(context.Background(), "apps", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(after.Object["spec"], kustomization(nil).Object["spec"]) {
		t.Errorf("spec after the run %v, want it as before", after.Object["spec"])
	}
	if _, ok := after.GetAnnotations()[workload.PausedAnnotation]; ok {
		t.Errorf("the record is left: %v", after.GetAnnotations())
	}
	patches := 0
	for _, a := range client.Actions() {
		if a.GetVerb() == "patch" && a.GetResource() == kgvr {
			patches++
		}
	}
	if patches != 2 {
		t.Errorf("%d patches of the Kustomization, want 2 (pause, resume)", patches)
	}
}

// A Kustomization the user suspended is never written.
func TestPauserLeavesAUserSuspensionAlone(t *testing.T) {
	owner := workload.GitOpsOwner{Kind: rules.FluxKustomization, Namespace: "flux-system", Name: "apps"}
	client := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{deploymentKind.GVR(): "DeploymentList"}, kustomization(true))
	p := &Pauser{Dynamic: client, Holder: "relabel@test/1/x"}
	it := migrateItem("a")
	it.GitOps = []workload.GitOpsOwner{owner}
	if err := p.Acquire(context.Background(), it); err != nil {
		t.Fatal(err)
	}
	p.Release(context.Background(), it)
	for _, a := range client.Actions() {
		if a.GetVerb() != "get" {
			t.Errorf("%s of a Kustomization the user suspended", a.GetVerb())
		}
	}
}
