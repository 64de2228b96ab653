package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"relabel.dev/relabel/rules"
)

// namespaceNames is ns-00, ns-01, … for n namespaces.
func namespaceNames(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("ns-%02d", i))
	}
	return out
}

func TestInformerNamespaces(t *testing.T) {
	deployments := rules.Kind{Group: "apps", Version: "v1", Kind: "Deployment", Resource: "deployments", Namespaced: true}
	clusterWide := rules.Kind{Group: "example.com", Version: "v1", Kind: "Fleet", Resource: "fleets"}
	items := func(kind rules.Kind, namespaces int) []Item {
		var out []Item
		for i := range namespaces {
			out = append(out, Item{Kind: kind, Namespace: fmt.Sprintf("ns-%02d", i), Name: "a"}, Item{Kind: kind, Namespace: fmt.Sprintf("ns-%02d", i), Name: "b"})
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		items []Item
		want  []string
	}{
		{"one namespace", items(deployments, 1), []string{"ns-00"}},
		{"a few namespaces each get one", items(deployments, 3), []string{"ns-00", "ns-01", "ns-02"}},
		{"up to the bound, still one each", items(deployments, maxScopedNamespaces), namespaceNames(maxScopedNamespaces)},
		{"many namespaces share one cluster-wide informer", items(deployments, maxScopedNamespaces+1), []string{""}},
		{"a cluster-scoped kind", []Item{{Kind: clusterWide, Name: "x"}}, []string{""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := informerNamespaces(tc.items)[tc.items[0].Kind.GVR()]
			if !slices.Equal(got, tc.want) {
				t.Errorf("namespaces %q, want %q", got, tc.want)
			}
			if len(informerNamespaces(tc.items)) != 1 {
				t.Errorf("informers for kinds that have no items")
			}
		})
	}
}

// TestRequiredPermissionsFollowInformers proves that preflight asks for
// list and watch exactly where the watchers will watch, no more (a Role in
// the plan's namespaces suffices for up to maxScopedNamespaces of them) and
// no less (a cluster-wide informer needs list and watch in every namespace).
func TestRequiredPermissionsFollowInformers(t *testing.T) {
	deployments := deploymentKind
	statefulsets, _ := rules.Builtin(schema.GroupKind{Group: "apps", Kind: "StatefulSet"})
	fleets := rules.Kind{Group: "example.com", Version: "v1", Kind: "Fleet", Resource: "fleets", Strategy: rules.TempCopy}
	spread := func(kind rules.Kind, namespaces int) []Item {
		var out []Item
		for i := range namespaces {
			out = append(out, Item{Kind: kind, Namespace: fmt.Sprintf("ns-%02d", i), Name: "a", Action: ActionMigrate, Strategy: rules.TempCopy})
		}
		return out
	}
	skipLast := func(items []Item) []Item {
		items[len(items)-1].Action = ActionSkip
		return items
	}
	for _, tc := range []struct {
		name  string
		items []Item
		// want is where each kind is listed and watched ("" for every namespace).
		want map[*rules.Kind][]string
	}{
		{"one namespace", spread(deployments, 1), map[*rules.Kind][]string{&deployments: {"ns-00"}}},
		{"16 namespaces, one watch each", spread(deployments, maxScopedNamespaces), map[*rules.Kind][]string{&deployments: namespaceNames(maxScopedNamespaces)}},
		{"17 namespaces, one cluster-wide watch", spread(deployments, maxScopedNamespaces+1), map[*rules.Kind][]string{&deployments: {""}}},
		{"skipped objects are not watched", skipLast(spread(deployments, maxScopedNamespaces+1)), map[*rules.Kind][]string{&deployments: namespaceNames(maxScopedNamespaces)}},
		{"each kind on its own", append(spread(deployments, maxScopedNamespaces+1), spread(statefulsets, 2)...),
			map[*rules.Kind][]string{&deployments: {""}, &statefulsets: {"ns-00", "ns-01"}}},
		{"a cluster-scoped kind", []Item{{Kind: fleets, Name: "x", Action: ActionMigrate, Strategy: rules.TempCopy}}, map[*rules.Kind][]string{&fleets: {""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			perms := RequiredPermissions(tc.items)
			var todo []Item
			for _, it := range tc.items {
				if it.Action != ActionSkip {
					todo = append(todo, it)
				}
			}
			informers := informerNamespaces(todo)
			if len(informers) != len(tc.want) {
				t.Errorf("informers for %d kinds, want %d", len(informers), len(tc.want))
			}
			for kind, want := range tc.want {
				if got := informers[kind.GVR()]; !slices.Equal(got, want) {
					t.Errorf("%s watched in %q, want %q", kind.Resource, got, want)
				}
				for _, verb := range WatchVerbs {
					var where []string
					for _, p := range perms {
						if p.Group == kind.Group && p.Resource == kind.Resource && p.Verb == verb {
							where = append(where, p.Namespace)
						}
					}
					slices.Sort(where)
					if !slices.Equal(where, want) {
						t.Errorf("preflight asks for %s %s in %q, want %q", verb, kind.Resource, where, want)
					}
				}
			}
			// The objects' own permissions stay in their namespaces.
			for _, it := range todo {
				for _, verb := range []string{"get", "create", "delete"} {
					p := Permission{Group: it.Kind.Group, Resource: it.Kind.Resource, Verb: verb, Namespace: it.Namespace}
					if !slices.Contains(perms, p) {
						t.Errorf("preflight does not ask for %s", p)
					}
				}
			}
		})
	}
}

// failingLists makes every list of Deployments fail with err.
func failingLists(t *testing.T, err error) *dynamicfake.FakeDynamicClient {
	t.Helper()
	client := newFakeCluster(t, false, deployment("web", 1))
	client.PrependReactor("list", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, err
	})
	return client
}

func startWatchers(t *testing.T, client *dynamicfake.FakeDynamicClient, syncTimeout time.Duration, wait context.Context) (*watchers, error) {
	t.Helper()
	w, err := newWatchers(client, []Item{migrateItem("web")}, "-temp")
	if err != nil {
		t.Fatal(err)
	}
	w.syncTimeout = syncTimeout
	run, stop := context.WithCancel(context.Background())
	t.Cleanup(func() {
		stop()
		w.stop()
	})
	return w, w.start(run, wait)
}

func TestWatchersStartGivesUpWhenListsFail(t *testing.T) {
	client := failingLists(t, apierrors.NewServiceUnavailable("etcd is down"))
	begin := time.Now()
	_, err := startWatchers(t, client, 500*time.Millisecond, context.Background())
	if elapsed := time.Since(begin); elapsed > 3*time.Second {
		t.Errorf("start returned after %s, want about the bound of 500ms", elapsed)
	}
	if err == nil {
		t.Fatal("start succeeded although every list fails")
	}
	for _, want := range []string{"apps/v1/deployments in namespace shop", "did not finish within 500ms", "last error", "etcd is down"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestWatchersStartStopsOnAForbiddenList(t *testing.T) {
	client := failingLists(t, apierrors.NewForbidden(deploymentKind.GVR().GroupResource(), "", errors.New("RBAC says no")))
	begin := time.Now()
	_, err := startWatchers(t, client, time.Minute, context.Background())
	if elapsed := time.Since(begin); elapsed > 5*time.Second {
		t.Errorf("start returned after %s, want at once", elapsed)
	}
	if err == nil || !strings.Contains(err.Error(), "apps/v1/deployments in namespace shop") || !apierrors.IsForbidden(errors.Unwrap(err)) {
		t.Errorf("err %v, want the forbidden list of the informer", err)
	}
}

func TestWatchersStartHonoursCancellation(t *testing.T) {
	client := failingLists(t, apierrors.NewServiceUnavailable("etcd is down"))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	begin := time.Now()
	_, err := startWatchers(t, client, time.Minute, ctx)
	if elapsed := time.Since(begin); elapsed > 2*time.Second {
		t.Errorf("start returned %s after the start, want soon after the cancel at 200ms", elapsed)
	}
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "apps/v1/deployments in namespace shop") {
		t.Errorf("err %v, want context.Canceled naming the informer", err)
	}
}

// TestWatchersOutliveTheWaitOnceSynced: a Ctrl-C after the first list
// leaves the informers running, for the objects in the middle of their
// recreation.
func TestWatchersOutliveTheWaitOnceSynced(t *testing.T) {
	client := newFakeCluster(t, false, deployment("web", 1))
	ctx, cancel := context.WithCancel(context.Background())
	w, err := startWatchers(t, client, time.Minute, ctx)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	created := deployment("web-temp", 1)
	if _, err := client.Resource(deploymentKind.GVR()).Namespace("shop").Create(context.Background(), created, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	seen := func(obj *unstructured.Unstructured) (bool, string, error) { return obj != nil, "", nil }
	if err := w.waitFor(context.Background(), deploymentKind, "shop", "web-temp", "web-temp", 5*time.Second, seen); err != nil {
		t.Errorf("the informer stopped with the wait's context: %v", err)
	}
}

// TestRunInterruptedDuringFirstList: Ctrl-C while the informers' first list
// keeps failing ends Run promptly, having written nothing.
func TestRunInterruptedDuringFirstList(t *testing.T) {
	client := failingLists(t, apierrors.NewServiceUnavailable("etcd is down"))
	m := newTestMigrator(t, client)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	begin := time.Now()
	_, err := m.Run(ctx, []Item{migrateItem("web")})
	if elapsed := time.Since(begin); elapsed > 2*time.Second {
		t.Errorf("Run returned %s after the start, want soon after the cancel at 200ms", elapsed)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want context.Canceled", err)
	}
	for _, a := range client.Actions() {
		if a.GetVerb() != "list" && a.GetVerb() != "watch" && a.GetVerb() != "get" {
			t.Errorf("Run wrote although it never synced: %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}
}

// The caches keep the plan's objects and their copies slim, and only stubs
// of the others an informer lists.
func TestWatchersKeepStubsOfObjectsOutsideThePlan(t *testing.T) {
	client := newFakeCluster(t, false, deployment("web", 1), deployment("web-temp", 1), deployment("api", 1))
	w, err := startWatchers(t, client, time.Minute, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for name, wantSpec := range map[string]bool{"web": true, "web-temp": true, "api": false} {
		obj, err := w.cached(deploymentKind, "shop", name)
		if err != nil || obj == nil {
			t.Fatalf("%s: %v, %v", name, obj, err)
		}
		if _, hasSpec := obj.Object["spec"]; hasSpec != wantSpec {
			t.Errorf("%s: spec kept %v, want %v", name, hasSpec, wantSpec)
		}
		if obj.GetUID() == "" || obj.GetName() != name {
			t.Errorf("%s: cached as %v", name, obj.Object["metadata"])
		}
		if wantSpec {
			if _, found, _ := unstructured.NestedFieldNoCopy(obj.Object, "spec", "template", "spec"); found {
				t.Errorf("%s: the pod spec is kept", name)
			}
		}
	}
}
