package engine

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"relabel.dev/relabel/rules"
	workload "relabel.dev/relabel/unstructured"
)

var testLabel = workload.Label{Key: "stage", Value: "prod"}

var deploymentKind, _ = rules.Builtin(schema.GroupKind{Group: "apps", Kind: "Deployment"})

func deployment(name string, replicas int64) *unstructured.Unstructured {
	obj := &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "apps/v1",
		"kind":       "Deployment",
		"metadata":   map[string]interface{}{"name": name, "namespace": "shop", "uid": "uid-" + name, "resourceVersion": "1", "labels": map[string]interface{}{"app": name}},
		"spec": map[string]interface{}{
			"replicas": replicas,
			"selector": map[string]interface{}{"matchLabels": map[string]interface{}{"app": name}},
			"template": map[string]interface{}{
				"metadata": map[string]interface{}{"labels": map[string]interface{}{"app": name}},
				"spec":     map[string]interface{}{"containers": []interface{}{map[string]interface{}{"name": "c", "image": "example.com/c:1"}}},
			},
		},
	}}
	markReady(obj)
	return obj
}

// markReady gives obj the status of a finished rollout, as the controller would.
func markReady(obj *unstructured.Unstructured) {
	replicas, _, _ := unstructured.NestedInt64(obj.Object, "spec", "replicas")
	_ = unstructured.SetNestedMap(obj.Object, map[string]interface{}{
		"observedGeneration": obj.GetGeneration(), "replicas": replicas, "updatedReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
		"conditions": []interface{}{
			map[string]interface{}{"type": "Available", "status": "True"},
			map[string]interface{}{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
		},
	}, "status")
}

// newFakeCluster serves the objects; created objects become ready at once
// (unless neverReady) and get a UID, as on a real API server.
func newFakeCluster(t *testing.T, neverReady bool, objs ...runtime.Object) *dynamicfake.FakeDynamicClient {
	t.Helper()
	gvr := deploymentKind.GVR()
	client := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{gvr: "DeploymentList"}, objs...)
	var n, rv atomic.Int64
	rv.Store(100)
	// Each write gets a later resourceVersion, as the API server gives it.
	client.PrependReactor("create", "deployments", func(action k8stesting.Action) (bool, runtime.Object, error) {
		obj := action.(k8stesting.CreateAction).GetObject().(*unstructured.Unstructured)
		if action.(k8stesting.CreateActionImpl).CreateOptions.DryRun == nil {
			obj.SetUID(typesUID("created-" + obj.GetName() + "-" + string(rune('a'+n.Add(1)))))
			obj.SetResourceVersion(strconv.FormatInt(rv.Add(1), 10))
		}
		if !neverReady {
			markReady(obj)
		}
		return false, nil, nil
	})
	client.PrependReactor("update", "deployments", func(action k8stesting.Action) (bool, runtime.Object, error) {
		obj := action.(k8stesting.UpdateAction).GetObject().(*unstructured.Unstructured)
		obj.SetResourceVersion(strconv.FormatInt(rv.Add(1), 10))
		if !neverReady {
			markReady(obj)
		}
		return false, nil, nil
	})
	return client
}

func newTestMigrator(t *testing.T, client *dynamicfake.FakeDynamicClient) *Migrator {
	return &Migrator{
		Dynamic: client,
		Backups: Backups{Dir: t.TempDir()},
		Options: Options{
			TempSuffix: "-temp", Timeout: 5 * time.Second,
			Concurrency: 2, MaxRetries: 3,
		},
	}
}

func migrateItem(name string) Item {
	return Item{Kind: deploymentKind, Namespace: "shop", Name: name, Action: ActionMigrate, Strategy: rules.TempCopy, Label: testLabel}
}

func countActions(client *dynamicfake.FakeDynamicClient, verb, name string) int {
	n := 0
	for _, a := range client.Actions() {
		if a.GetVerb() != verb {
			continue
		}
		switch a := a.(type) {
		case k8stesting.DeleteAction:
			if a.GetName() == name {
				n++
			}
		case k8stesting.CreateAction:
			if a.GetObject().(*unstructured.Unstructured).GetName() == name {
				n++
			}
		}
	}
	return n
}

func TestMigrateConcurrentEditIsNotLost(t *testing.T) {
	original := deployment("web", 2)
	client := newFakeCluster(t, false, original)
	// Someone scales the original while its copy rolls out: the delete's
	// precondition fails once, and relabel must carry the new spec.
	var edited atomic.Bool
	client.PrependReactor("delete", "deployments", func(action k8stesting.Action) (bool, runtime.Object, error) {
		if action.(k8stesting.DeleteAction).GetName() != "web" || edited.Swap(true) {
			return false, nil, nil
		}
		edit := deployment("web", 5)
		edit.SetResourceVersion("2")
		if err := client.Tracker().Update(deploymentKind.GVR(), edit, "shop"); err != nil {
			t.Error(err)
		}
		return true, nil, apierrors.NewConflict(deploymentKind.GVR().GroupResource(), "web", nil)
	})
	m := newTestMigrator(t, client)
	results, err := m.Run(context.Background(), []Item{migrateItem("web")})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || results[0].Outcome != Migrated {
		t.Fatalf("results %+v", results)
	}
	got, err := client.Tracker().Get(deploymentKind.GVR(), "shop", "web")
	if err != nil {
		t.Fatal(err)
	}
	obj := got.(*unstructured.Unstructured)
	if replicas, _, _ := unstructured.NestedInt64(obj.Object, "spec", "replicas"); replicas != 5 {
		t.Errorf("recreated with %d replicas, want the concurrent edit's 5", replicas)
	}
	report, _ := workload.Check(obj, deploymentKind, testLabel)
	if !report.Complete() {
		t.Errorf("recreated without the label: %+v", report)
	}
	if n := countActions(client, "delete", "web"); n != 2 {
		t.Errorf("%d deletes of the original, want 2 (one refused by its precondition)", n)
	}
	if n := countActions(client, "create", "web-temp"); n != 1 {
		t.Errorf("%d copies created, want 1", n)
	}
	backup, err := m.Backups.Read(deploymentKind, "shop", "web")
	if err != nil || backup == nil {
		t.Fatalf("backup: %v", err)
	}
	if backup.GetResourceVersion() != "2" {
		t.Errorf("backup is of resourceVersion %s, want the edited 2", backup.GetResourceVersion())
	}
}

func TestMigrateTimeoutRollsBack(t *testing.T) {
	client := newFakeCluster(t, true, deployment("web", 2))
	m := newTestMigrator(t, client)
	m.Timeout = 200 * time.Millisecond
	results, err := m.Run(context.Background(), []Item{migrateItem("web")})
	if err != nil {
		t.Fatal(err)
	}
	if results[0].Outcome != Failed {
		t.Fatalf("outcome %s, want failed", results[0].Outcome)
	}
	if n := countActions(client, "delete", "web"); n != 0 {
		t.Errorf("the original was deleted %d times although its copy never became ready", n)
	}
	if _, err := client.Tracker().Get(deploymentKind.GVR(), "shop", "web-temp"); !apierrors.IsNotFound(err) {
		t.Errorf("the copy remains after the rollback: %v", err)
	}
}

func TestMigrateRetriesTransientErrors(t *testing.T) {
	client := newFakeCluster(t, false, deployment("web", 1), deployment("api", 1))
	var failures atomic.Int64
	client.PrependReactor("create", "deployments", func(action k8stesting.Action) (bool, runtime.Object, error) {
		if failures.Add(1) <= 2 {
			return true, nil, apierrors.NewServiceUnavailable("apiserver restarting")
		}
		return false, nil, nil
	})
	m := newTestMigrator(t, client)
	results, err := m.Run(context.Background(), []Item{migrateItem("web"), migrateItem("api")})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.Outcome != Migrated {
			t.Errorf("%s: %s %s", r.Item.Name, r.Outcome, r.Message)
		}
	}
}

func TestMigrateGivesUpOnPermanentErrors(t *testing.T) {
	client := newFakeCluster(t, false, deployment("web", 1))
	client.PrependReactor("create", "deployments", func(action k8stesting.Action) (bool, runtime.Object, error) {
		if isDryRun(action) {
			return false, nil, nil
		}
		return true, nil, apierrors.NewForbidden(deploymentKind.GVR().GroupResource(), "web-temp", nil)
	})
	m := newTestMigrator(t, client)
	results, err := m.Run(context.Background(), []Item{migrateItem("web")})
	if err != nil {
		t.Fatal(err)
	}
	if results[0].Outcome != Failed {
		t.Errorf("outcome %s, want failed", results[0].Outcome)
	}
	if n := countActions(client, "create", "web-temp"); n != 1 {
		t.Errorf("a forbidden create was tried %d times, want 1", n)
	}
}

func isDryRun(action k8stesting.Action) bool {
	create, ok := action.(k8stesting.CreateActionImpl)
	return ok && len(create.CreateOptions.DryRun) > 0
}

// Admission is asked, by a server-side dry run, before the first write and
// again just before the original is deleted; a refusal leaves the original.
func TestMigrateAsksAdmissionBeforeDeleting(t *testing.T) {
	for _, tc := range []struct {
		name string
		// refuseFrom is the dry run from which on admission refuses: 1 before
		// the copy, 2 after the copy became ready.
		refuseFrom int32
		wantCopies int
	}{
		{name: "refused before the copy", refuseFrom: 1, wantCopies: 0},
		{name: "refused once the copy is ready", refuseFrom: 2, wantCopies: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := newFakeCluster(t, false, deployment("web", 1))
			var probes atomic.Int32
			client.PrependReactor("create", "deployments", func(action k8stesting.Action) (bool, runtime.Object, error) {
				if isDryRun(action) && probes.Add(1) >= tc.refuseFrom {
					return true, nil, apierrors.NewForbidden(deploymentKind.GVR().GroupResource(), "web",
						errors.New("ValidatingAdmissionPolicy 'no-stage' denied request"))
				}
				return false, nil, nil
			})
			m := newTestMigrator(t, client)
			results, err := m.Run(context.Background(), []Item{migrateItem("web")})
			if err != nil {
				t.Fatal(err)
			}
			if results[0].Outcome != Failed || !strings.Contains(results[0].Message, "no-stage") {
				t.Errorf("result %+v, want failed with the admission message", results[0])
			}
			if n := countActions(client, "create", "web-temp"); n != tc.wantCopies {
				t.Errorf("%d copies created, want %d", n, tc.wantCopies)
			}
			if n := countActions(client, "delete", "web"); n != 0 {
				t.Errorf("the original was deleted %d times", n)
			}
			if _, err := client.Tracker().Get(deploymentKind.GVR(), "shop", "web-temp"); !apierrors.IsNotFound(err) {
				t.Errorf("the copy is left: %v", err)
			}
		})
	}
}

func TestMigrateInterruptedKeepsOriginal(t *testing.T) {
	client := newFakeCluster(t, true, deployment("web", 1))
	m := newTestMigrator(t, client)
	ctx, cancel := context.WithCancel(context.Background())
	m.OnProgress = func(p Progress) {
		if p.Step == StepCopyCreated {
			cancel()
		}
	}
	results, err := m.Run(ctx, []Item{migrateItem("web")})
	if err != nil {
		t.Fatal(err)
	}
	if results[0].Outcome != Interrupted {
		t.Errorf("outcome %s, want interrupted", results[0].Outcome)
	}
	if _, err := client.Tracker().Get(deploymentKind.GVR(), "shop", "web"); err != nil {
		t.Errorf("the original is gone after an interruption: %v", err)
	}
}

func typesUID(s string) types.UID { return types.UID(s) }

// A copy whose pods are refused (a quota, say) is rolled back as soon as its
// controller says so, not when --timeout runs out; the original stays.
func TestMigrateRollsBackACopyThatCannotProgress(t *testing.T) {
	original := deployment("web", 2)
	client := newFakeCluster(t, true, original)
	client.PrependReactor("create", "deployments", func(action k8stesting.Action) (bool, runtime.Object, error) {
		obj := action.(k8stesting.CreateAction).GetObject().(*unstructured.Unstructured)
		_ = unstructured.SetNestedMap(obj.Object, map[string]interface{}{
			"observedGeneration": int64(0), "replicas": int64(0),
			"conditions": []interface{}{map[string]interface{}{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
				"message": `pods "web-temp-1" is forbidden: exceeded quota: pods`}},
		}, "status")
		return false, nil, nil
	})
	m := newTestMigrator(t, client)
	m.Timeout = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	results, err := m.Run(ctx, []Item{migrateItem("web")})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || results[0].Outcome != Failed || !strings.Contains(results[0].Message, "exceeded quota") ||
		!strings.Contains(results[0].Message, "rolled back") {
		t.Fatalf("results %+v, want failed and rolled back with the quota message", results)
	}
	if countActions(client, "delete", "web") != 0 {
		t.Error("the original was deleted")
	}
	if _, err := client.Tracker().Get(deploymentKind.GVR(), "shop", "web-temp"); !apierrors.IsNotFound(err) {
		t.Errorf("the copy is left: %v", err)
	}
}

// tempOf is relabel's copy of original as an earlier run left it.
func tempOf(t *testing.T, original *unstructured.Unstructured, originUID string) *unstructured.Unstructured {
	t.Helper()
	temp, err := workload.TempCopy(original, deploymentKind, "web-temp", testLabel)
	if err != nil {
		t.Fatal(err)
	}
	ann := temp.GetAnnotations()
	ann[workload.OriginUIDAnnotation] = originUID
	temp.SetAnnotations(ann)
	temp.SetUID("uid-web-temp")
	markReady(temp)
	return temp
}

// Someone else created the original after relabel deleted the one it
// copied: relabel stops, names the writer, and deletes neither object.
func TestMigrateStopsWhenAnotherWriterRecreatedTheOriginal(t *testing.T) {
	original := deployment("web", 2)
	original.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "argocd-controller", Operation: metav1.ManagedFieldsOperationApply}})
	client := newFakeCluster(t, false, original, tempOf(t, deployment("web", 2), "uid-of-the-deleted-one"))
	m := newTestMigrator(t, client)
	results, err := m.Run(context.Background(), []Item{migrateItem("web")})
	if err != nil {
		t.Fatal(err)
	}
	if results[0].Outcome != Failed || !strings.Contains(results[0].Message, `"argocd-controller"`) {
		t.Errorf("result %+v, want failed naming the writer", results[0])
	}
	if countActions(client, "delete", "web")+countActions(client, "delete", "web-temp") != 0 {
		t.Error("relabel deleted an object on a guess")
	}
}

// A copy left by an earlier run is brought in line with the original as it
// is now before the original is deleted.
func TestMigrateRefreshesAStaleCopy(t *testing.T) {
	original := deployment("web", 5)
	client := newFakeCluster(t, false, original, tempOf(t, deployment("web", 2), "uid-web"))
	m := newTestMigrator(t, client)
	results, err := m.Run(context.Background(), []Item{migrateItem("web")})
	if err != nil {
		t.Fatal(err)
	}
	if results[0].Outcome != Migrated {
		t.Fatalf("result %+v", results[0])
	}
	updated := false
	for _, a := range client.Actions() {
		if u, ok := a.(k8stesting.UpdateAction); ok && u.GetObject().(*unstructured.Unstructured).GetName() == "web-temp" {
			replicas, _, _ := unstructured.NestedInt64(u.GetObject().(*unstructured.Unstructured).Object, "spec", "replicas")
			updated = replicas == 5
		}
	}
	if !updated {
		t.Error("the copy was not updated to the original's 5 replicas before the original was deleted")
	}
}

// A Ctrl-C once the original is deleted still brings it back: the passes
// after it read the cluster whatever ctx says.
func TestMigrateInterruptedAfterDeleteRecreates(t *testing.T) {
	client := newFakeCluster(t, false, deployment("web", 1))
	m := newTestMigrator(t, client)
	ctx, cancel := context.WithCancel(context.Background())
	m.OnProgress = func(p Progress) {
		if p.Step == StepOriginalDeleted {
			cancel()
		}
	}
	results, err := m.Run(ctx, []Item{migrateItem("web")})
	if err != nil {
		t.Fatal(err)
	}
	obj, err := client.Tracker().Get(deploymentKind.GVR(), "shop", "web")
	if err != nil {
		t.Fatalf("the original was not recreated after the interruption (outcome %s: %s): %v", results[0].Outcome, results[0].Message, err)
	}
	if got := obj.(*unstructured.Unstructured).GetUID(); got == "uid-web" {
		t.Errorf("web is still the original (uid %s)", got)
	}
}

// A migration reads the original whole once; every other pass decides from
// the informer's cache.
func TestMigrateReadsEachObjectOnce(t *testing.T) {
	client := newFakeCluster(t, false, deployment("web", 2))
	m := newTestMigrator(t, client)
	results, err := m.Run(context.Background(), []Item{migrateItem("web")})
	if err != nil {
		t.Fatal(err)
	}
	if results[0].Outcome != Migrated {
		t.Fatalf("outcome %s: %s", results[0].Outcome, results[0].Message)
	}
	gets := 0
	for _, a := range client.Actions() {
		if a.GetVerb() == "get" {
			gets++
		}
	}
	if gets != 1 {
		t.Errorf("%d GETs, want 1", gets)
	}
}
