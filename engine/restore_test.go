package engine

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
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

var (
	restoreDeployments, _  = rules.Builtin(schema.GroupKind{Group: "apps", Kind: "Deployment"})
	restoreStatefulSets, _ = rules.Builtin(schema.GroupKind{Group: "apps", Kind: "StatefulSet"})
)

// restoreObject is an object as read from the API server, with the fields
// the server sets.
func restoreObject(kind, namespace, name string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "apps/v1",
		"kind":       kind,
		"metadata": map[string]interface{}{"name": name, "namespace": namespace, "uid": "uid-" + name, "resourceVersion": "7",
			"labels": map[string]interface{}{"app": name}},
		"spec":   map[string]interface{}{"selector": map[string]interface{}{"matchLabels": map[string]interface{}{"app": name}}},
		"status": map[string]interface{}{"replicas": int64(1)},
	}}
}

// tempCopyOf is relabel's temporary copy of obj, as TempCopy makes it.
func tempCopyOf(t *testing.T, kind rules.Kind, obj *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	c, err := workload.TempCopy(obj, kind, obj.GetName()+"-temp", backupLabel)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// restoreFixture stores backups, in cluster a's tree, of the Deployments
// shop/web, shop/api, shop/db, shop/gone and other/web and of the
// StatefulSet shop/cache, and serves a cluster that has only shop/api and
// the copy of web (web-temp): web was deleted by a temp-copy migration, db
// and cache orphan-deleted by adopt (their markers), gone and other/web
// deleted by someone after their migrations.
func restoreFixture(t *testing.T) (Backups, *dynamicfake.FakeDynamicClient) {
	t.Helper()
	backups := Backups{Dir: t.TempDir(), Cluster: clusterA}
	web := restoreObject("Deployment", "shop", "web")
	for _, b := range []struct {
		kind rules.Kind
		obj  *unstructured.Unstructured
	}{
		{restoreDeployments, web},
		{restoreDeployments, restoreObject("Deployment", "shop", "api")},
		{restoreDeployments, restoreObject("Deployment", "shop", "db")},
		{restoreDeployments, restoreObject("Deployment", "shop", "gone")},
		{restoreDeployments, restoreObject("Deployment", "other", "web")},
		{restoreStatefulSets, restoreObject("StatefulSet", "shop", "cache")},
		// Put by hand under the Deployments' directory: not a Deployment.
		{restoreDeployments, restoreObject("StatefulSet", "shop", "stray")},
	} {
		if _, err := backups.Write(b.kind, b.obj); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []struct {
		kind rules.Kind
		name string
	}{{restoreDeployments, "db"}, {restoreStatefulSets, "cache"}} {
		if err := backups.MarkAdopt(m.kind, "shop", m.name, "uid-"+m.name, backupLabel); err != nil {
			t.Fatal(err)
		}
	}
	return backups, restoreClient(restoreObject("Deployment", "shop", "api"), tempCopyOf(t, restoreDeployments, web))
}

// restoreClient serves objs, and lists what adopt labels.
func restoreClient(objs ...runtime.Object) *dynamicfake.FakeDynamicClient {
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		restoreDeployments.GVR():                                "DeploymentList",
		restoreStatefulSets.GVR():                               "StatefulSetList",
		{Group: "apps", Version: "v1", Resource: "replicasets"}: "ReplicaSetList",
		{Version: "v1", Resource: "pods"}:                       "PodList",
	}, objs...)
}

// recordedReplicaSet is a ReplicaSet carrying the adopt record of obj, as
// adopt leaves it after the orphan delete.
func recordedReplicaSet(t *testing.T, obj *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	labels, annotations, err := recordMetadata(restoreDeployments, obj, string(obj.GetUID()), backupLabel)
	if err != nil {
		t.Fatal(err)
	}
	rs := &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "apps/v1", "kind": "ReplicaSet",
		"metadata": map[string]interface{}{"name": obj.GetName() + "-6d4f", "namespace": obj.GetNamespace(), "labels": labels, "annotations": annotations},
	}}
	return rs
}

func outcomes(results []RestoreResult) []string {
	var out []string
	for _, r := range results {
		out = append(out, r.Key()+" "+string(r.Outcome))
	}
	slices.Sort(out)
	return out
}

func creates(client *dynamicfake.FakeDynamicClient) []string {
	var out []string
	for _, a := range client.Actions() {
		if a.GetVerb() == "create" {
			obj := a.(k8stesting.CreateAction).GetObject().(*unstructured.Unstructured)
			out = append(out, a.GetResource().Resource+" "+obj.GetNamespace()+"/"+obj.GetName())
		}
	}
	slices.Sort(out)
	return out
}

// TestDecideRestore: a missing object is restored only on relabel's own
// record of its removal by a migration.
func TestDecideRestore(t *testing.T) {
	backup := restoreObject("Deployment", "shop", "web") // uid-web
	other := restoreObject("Deployment", "shop", "web")
	other.SetUID("uid-new")
	copyOfWeb := tempCopyOf(t, restoreDeployments, backup)
	copyOfOther := tempCopyOf(t, restoreDeployments, other)
	notACopy := copyOfWeb.DeepCopy()
	notACopy.SetLabels(map[string]string{"app": "web"}) // origin annotation, but no relabel.dev/temp
	noUID := backup.DeepCopy()
	noUID.SetUID("")
	for _, tc := range []struct {
		name   string
		backup *unstructured.Unstructured
		facts  RestoreFacts
		force  bool
		want   RestoreOutcome
		reason string
		copy   string
		marker bool
	}{
		{name: "present with the backup's UID", facts: RestoreFacts{Live: backup}, want: AlreadyPresent},
		{name: "present as another object", facts: RestoreFacts{Live: other}, want: AlreadyPresent, reason: "uid-new"},
		{name: "present, even with --force", facts: RestoreFacts{Live: other}, force: true, want: AlreadyPresent},
		{name: "missing, its copy records it", facts: RestoreFacts{Copies: []*unstructured.Unstructured{copyOfOther, copyOfWeb}}, want: WouldRestore, copy: "web-temp", reason: "web-temp"},
		{name: "missing, its adopt marker records it", facts: RestoreFacts{MarkerUID: "uid-web"}, want: WouldRestore, marker: true, reason: "adopt marker"},
		{name: "missing, the adopt record on its pods records it", facts: RestoreFacts{RecordUID: "uid-web"}, want: WouldRestore, marker: true, reason: "adopt record"},
		{name: "missing, an adopt record of another object", facts: RestoreFacts{RecordUID: "uid-older"}, want: RestoreRefused, reason: "uid-older"},
		{name: "missing, no record: deleted on purpose", want: RestoreRefused, reason: refusedReason},
		{name: "missing, a copy of another object", facts: RestoreFacts{Copies: []*unstructured.Unstructured{copyOfOther}}, want: RestoreRefused, reason: refusedReason},
		{name: "missing, not relabel's copy", facts: RestoreFacts{Copies: []*unstructured.Unstructured{notACopy}}, want: RestoreRefused},
		{name: "missing, a marker of another object", facts: RestoreFacts{MarkerUID: "uid-older"}, want: RestoreRefused, reason: "uid-older"},
		{name: "missing, no record, --force", force: true, want: WouldRestore, reason: "--force"},
		{name: "a backup without a UID", backup: noUID, facts: RestoreFacts{MarkerUID: "uid-web"}, want: RestoreRefused, reason: "no UID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := backup
			if tc.backup != nil {
				b = tc.backup
			}
			d := DecideRestore(b, tc.facts, tc.force)
			if d.Outcome != tc.want || !strings.Contains(d.Reason, tc.reason) || d.Copy != tc.copy || d.Marker != tc.marker {
				t.Errorf("got %+v, want %s (reason with %q, copy %q, marker %v)", d, tc.want, tc.reason, tc.copy, tc.marker)
			}
		})
	}
}

func TestRestore(t *testing.T) {
	shop := BackupQuery{Kinds: []rules.Kind{restoreDeployments}, Namespace: "shop"}
	for _, tc := range []struct {
		name        string
		opts        RestoreOptions
		refuse      string // a name whose create the API server refuses
		want        []string
		wantCreates []string
	}{
		{
			name: "missing objects a migration removed are created, present ones left alone, others refused",
			opts: RestoreOptions{BackupQuery: shop},
			want: []string{
				"apps/v1/deployments shop/api present",
				"apps/v1/deployments shop/db restored",
				"apps/v1/deployments shop/gone refused",
				"apps/v1/deployments shop/web restored",
			},
			wantCreates: []string{"deployments shop/db", "deployments shop/web"},
		},
		{
			name: "--force restores the ones deleted on purpose too",
			opts: RestoreOptions{BackupQuery: shop, Force: true},
			want: []string{
				"apps/v1/deployments shop/api present",
				"apps/v1/deployments shop/db restored",
				"apps/v1/deployments shop/gone restored",
				"apps/v1/deployments shop/web restored",
			},
			wantCreates: []string{"deployments shop/db", "deployments shop/gone", "deployments shop/web"},
		},
		{
			name: "dry run creates nothing",
			opts: RestoreOptions{BackupQuery: shop, DryRun: true},
			want: []string{
				"apps/v1/deployments shop/api present",
				"apps/v1/deployments shop/db would-restore",
				"apps/v1/deployments shop/gone refused",
				"apps/v1/deployments shop/web would-restore",
			},
		},
		{
			name:        "names and every namespace",
			opts:        RestoreOptions{BackupQuery: BackupQuery{Kinds: []rules.Kind{restoreDeployments}, Names: []string{"web"}}},
			want:        []string{"apps/v1/deployments other/web refused", "apps/v1/deployments shop/web restored"},
			wantCreates: []string{"deployments shop/web"},
		},
		{
			name:        "only the kinds asked for",
			opts:        RestoreOptions{BackupQuery: BackupQuery{Kinds: []rules.Kind{restoreStatefulSets}, Namespace: "shop"}},
			want:        []string{"apps/v1/statefulsets shop/cache restored"},
			wantCreates: []string{"statefulsets shop/cache"},
		},
		{
			name:   "a refused create fails that object only",
			opts:   RestoreOptions{BackupQuery: shop},
			refuse: "db",
			want: []string{
				"apps/v1/deployments shop/api present",
				"apps/v1/deployments shop/db failed",
				"apps/v1/deployments shop/gone refused",
				"apps/v1/deployments shop/web restored",
			},
			// The fake records refused creates too.
			wantCreates: []string{"deployments shop/db", "deployments shop/web"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			backups, client := restoreFixture(t)
			if tc.refuse != "" {
				client.PrependReactor("create", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
					if a.(k8stesting.CreateAction).GetObject().(*unstructured.Unstructured).GetName() == tc.refuse {
						return true, nil, apierrors.NewForbidden(a.GetResource().GroupResource(), tc.refuse, errors.New("quota exceeded"))
					}
					return false, nil, nil
				})
			}
			results, err := Restorer{Dynamic: client, Backups: backups}.Restore(context.Background(), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := outcomes(results); !slices.Equal(got, tc.want) {
				t.Errorf("outcomes\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if got := creates(client); !slices.Equal(got, tc.wantCreates) {
				t.Errorf("creates %v, want %v", got, tc.wantCreates)
			}
			for _, r := range results {
				if (r.Outcome == RestoreFailed) != (r.Err != nil) {
					t.Errorf("%s: outcome %s with error %v", r.Key(), r.Outcome, r.Err)
				}
				if r.Err != nil && !strings.Contains(r.Err.Error(), "quota exceeded") {
					t.Errorf("%s: error %q does not give the API server's reason", r.Key(), r.Err)
				}
				if r.Outcome == RestoreRefused && !strings.Contains(r.Reason, refusedReason) {
					t.Errorf("%s: refused with %q", r.Key(), r.Reason)
				}
			}
		})
	}
}

// TestRestoreClearsTheMarker: an object restored because of its adopt
// marker loses the marker, so a later migration starts afresh; a failed
// create keeps it.
func TestRestoreClearsTheMarker(t *testing.T) {
	backups, client := restoreFixture(t)
	client.PrependReactor("create", "statefulsets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(a.GetResource().GroupResource(), "cache", errors.New("quota exceeded"))
	})
	if _, err := (Restorer{Dynamic: client, Backups: backups}).Restore(context.Background(), RestoreOptions{
		BackupQuery: BackupQuery{Kinds: []rules.Kind{restoreDeployments, restoreStatefulSets}, Namespace: "shop"},
	}); err != nil {
		t.Fatal(err)
	}
	if uid, _, _ := backups.AdoptMarker(restoreDeployments, "shop", "db"); uid != "" {
		t.Errorf("db restored, its marker %q is left", uid)
	}
	if uid, _, _ := backups.AdoptMarker(restoreStatefulSets, "shop", "cache"); uid != "uid-cache" {
		t.Errorf("cache not restored, its marker is %q", uid)
	}
}

// TestRestoreFromTheRecordOnItsPods: an object adopt orphan-deleted from
// another machine (no marker on this disk) is restored on the record its
// ReplicaSet carries, and the record is taken off.
func TestRestoreFromTheRecordOnItsPods(t *testing.T) {
	backups := Backups{Dir: t.TempDir(), Cluster: clusterA}
	pay := restoreObject("Deployment", "shop", "pay")
	if _, err := backups.Write(restoreDeployments, pay); err != nil {
		t.Fatal(err)
	}
	client := restoreClient(recordedReplicaSet(t, pay))
	results, err := Restorer{Dynamic: client, Backups: backups}.Restore(context.Background(), RestoreOptions{
		BackupQuery: BackupQuery{Kinds: []rules.Kind{restoreDeployments}, Namespace: "shop"},
	})
	if err != nil || len(results) != 1 || results[0].Outcome != Restored || !strings.Contains(results[0].Reason, "adopt record") {
		t.Fatalf("results %+v, %v", results, err)
	}
	rs, err := client.Resource(schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"}).Namespace("shop").Get(context.Background(), "pay-6d4f", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rs.GetLabels()[AdoptUIDLabel] != "" || rs.GetAnnotations()[AdoptOriginalAnnotation] != "" {
		t.Errorf("the record is left on the ReplicaSet: %v %v", rs.GetLabels(), rs.GetAnnotations())
	}
}

// TestRestoreRefusesOtherClustersBackups: backups of cluster a are never
// restored into cluster b, even of the same namespace and name; the error
// names both clusters, and nothing is read or created.
func TestRestoreRefusesOtherClustersBackups(t *testing.T) {
	backups, client := restoreFixture(t)
	b := Backups{Dir: backups.Dir, Cluster: clusterB}
	if err := b.Check(); err != nil {
		t.Fatal(err)
	}
	results, err := Restorer{Dynamic: client, Backups: b}.Restore(context.Background(), RestoreOptions{
		BackupQuery: BackupQuery{Kinds: []rules.Kind{restoreDeployments}, Namespace: "shop"}, Force: true,
	})
	var foreign ForeignBackupsError
	if !errors.As(err, &foreign) || len(results) != 0 {
		t.Fatalf("results %v, error %v; want a ForeignBackupsError", results, err)
	}
	for _, want := range []string{"uid-cluster-a", "context a", "uid-cluster-b", "context b", "nothing was restored"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if len(client.Actions()) != 0 {
		t.Errorf("requests %v, want none", client.Actions())
	}
	// b's own backup of the same name is b's to restore.
	web := restoreObject("Deployment", "shop", "gone")
	web.SetUID("uid-gone-b")
	if _, err := b.Write(restoreDeployments, web); err != nil {
		t.Fatal(err)
	}
	results, err = Restorer{Dynamic: client, Backups: b}.Restore(context.Background(), RestoreOptions{
		BackupQuery: BackupQuery{Kinds: []rules.Kind{restoreDeployments}, Namespace: "shop"}, DryRun: true,
	})
	if err != nil || len(results) != 1 || results[0].Object.GetUID() != "uid-gone-b" {
		t.Errorf("b's own backup: %v, %v", results, err)
	}
}

// TestRestoreCreatesWithoutServerFields: the created object has no UID,
// resourceVersion or status of the backed-up one.
func TestRestoreCreatesWithoutServerFields(t *testing.T) {
	backups, client := restoreFixture(t)
	if _, err := (Restorer{Dynamic: client, Backups: backups}).Restore(context.Background(), RestoreOptions{
		BackupQuery: BackupQuery{Kinds: []rules.Kind{restoreDeployments}, Namespace: "shop", Names: []string{"web"}},
	}); err != nil {
		t.Fatal(err)
	}
	for _, a := range client.Actions() {
		if a.GetVerb() != "create" {
			continue
		}
		obj := a.(k8stesting.CreateAction).GetObject().(*unstructured.Unstructured)
		if obj.GetUID() != "" || obj.GetResourceVersion() != "" || obj.Object["status"] != nil {
			t.Errorf("created with server-set fields: uid %q, resourceVersion %q, status %v", obj.GetUID(), obj.GetResourceVersion(), obj.Object["status"])
		}
		if got := obj.GetLabels()["app"]; got != "web" {
			t.Errorf("created with labels %v, want the backup's", obj.GetLabels())
		}
	}
}

// TestRestoreStopsOnReadErrors: an object that cannot be read is not taken
// for missing; the run stops with what it decided so far, before any create.
func TestRestoreStopsOnReadErrors(t *testing.T) {
	backups, client := restoreFixture(t)
	client.PrependReactor("get", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.(k8stesting.GetAction).GetName() == "web" {
			return true, nil, apierrors.NewInternalError(errors.New("etcd is down"))
		}
		return false, nil, nil
	})
	results, err := Restorer{Dynamic: client, Backups: backups}.Restore(context.Background(), RestoreOptions{
		BackupQuery: BackupQuery{Kinds: []rules.Kind{restoreDeployments}, Namespace: "shop"},
	})
	if err == nil || !strings.Contains(err.Error(), "apps/v1/deployments shop/web") || !strings.Contains(err.Error(), "etcd is down") {
		t.Fatalf("error %v, want one naming shop/web and the cause", err)
	}
	// Backups are read in name order: api, db and gone come before web.
	if got, want := outcomes(results), []string{"apps/v1/deployments shop/api present", "apps/v1/deployments shop/db would-restore", "apps/v1/deployments shop/gone refused"}; !slices.Equal(got, want) {
		t.Errorf("results so far %v, want %v", got, want)
	}
	if got := creates(client); len(got) != 0 {
		t.Errorf("created %v although the plan could not be finished", got)
	}
}

func TestBackupsFind(t *testing.T) {
	backups, _ := restoreFixture(t)
	got, err := backups.Find(BackupQuery{Kinds: []rules.Kind{restoreDeployments, restoreStatefulSets}, Namespace: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, b := range got {
		keys = append(keys, b.Key())
	}
	want := []string{"apps/v1/deployments shop/api", "apps/v1/deployments shop/db", "apps/v1/deployments shop/gone", "apps/v1/deployments shop/web", "apps/v1/statefulsets shop/cache"}
	if !slices.Equal(keys, want) {
		t.Errorf("found %v, want %v (kind by kind, the stray StatefulSet under deployments left out)", keys, want)
	}
	empty, err := Backups{Dir: t.TempDir() + "/none"}.Find(BackupQuery{Kinds: []rules.Kind{restoreDeployments}})
	if err != nil || len(empty) != 0 {
		t.Errorf("a backup directory that does not exist: %v, %v; want nothing and no error", empty, err)
	}
}

// relabelled is obj as relabel recreates it: another UID, the label in
// its selector.
func relabelled(t *testing.T, obj *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	out, err := workload.Recreated(obj, restoreDeployments, backupLabel)
	if err != nil {
		t.Fatal(err)
	}
	out.SetUID(types.UID(string(obj.GetUID()) + "-new"))
	return out
}

// TestDecidePrune: only old backups no migration needs, of objects gone or
// migrated, may go.
func TestDecidePrune(t *testing.T) {
	backup := restoreObject("Deployment", "shop", "web")
	entry := BackupEntry{Cluster: clusterA.ID, GVR: restoreDeployments.GVR(), Namespace: "shop", Name: "web", UID: "uid-web", Object: backup}
	withMarker := entry
	withMarker.Marker, withMarker.MarkerUID = true, "uid-web"
	unreadable := entry
	unreadable.Object, unreadable.Err = nil, errors.New("not a manifest")
	replaced := backup.DeepCopy()
	replaced.SetUID("uid-other")
	fewer := backup.DeepCopy()
	fewer.SetUID("uid-other")
	if err := unstructured.SetNestedStringMap(fewer.Object, map[string]string{}, "spec", "selector", "matchLabels"); err != nil {
		t.Fatal(err)
	}
	_ = unstructured.SetNestedStringMap(fewer.Object, map[string]string{"tier": "x"}, "spec", "selector", "matchLabels")
	kind := restoreDeployments
	old := 1000 * time.Hour
	for _, tc := range []struct {
		name   string
		entry  BackupEntry
		facts  PruneFacts
		prune  bool
		reason string
	}{
		{name: "migrated", facts: PruneFacts{RestoreFacts: RestoreFacts{Live: relabelled(t, backup)}, Kind: &kind, Age: old}, prune: true, reason: "stage=prod"},
		{name: "gone, nothing points at it", facts: PruneFacts{Age: old}, prune: true, reason: "gone"},
		{name: "too recent", facts: PruneFacts{Age: time.Hour}, reason: "newer than"},
		{name: "an adopt marker", entry: withMarker, facts: PruneFacts{Age: old}, reason: "adopt marker"},
		{name: "a marker seen in the cluster's tree", facts: PruneFacts{RestoreFacts: RestoreFacts{MarkerUID: "uid-web"}, Age: old}, reason: "adopt marker"},
		{name: "an adopt record on its pods", facts: PruneFacts{RestoreFacts: RestoreFacts{RecordUID: "uid-web"}, Age: old}, reason: "adopt record"},
		{name: "its copy runs", facts: PruneFacts{RestoreFacts: RestoreFacts{Copies: []*unstructured.Unstructured{tempCopyOf(t, kind, backup)}}, Age: old}, reason: "web-temp"},
		{name: "a copy of a newer web runs", facts: PruneFacts{RestoreFacts: RestoreFacts{Copies: []*unstructured.Unstructured{tempCopyOf(t, kind, replaced)}}, Age: old}, reason: "web-temp"},
		{name: "exists as backed up", facts: PruneFacts{RestoreFacts: RestoreFacts{Live: backup}, Kind: &kind, Age: old}, reason: "did not finish"},
		{name: "replaced without a new label", facts: PruneFacts{RestoreFacts: RestoreFacts{Live: replaced}, Kind: &kind, Age: old}, reason: "without a label"},
		{name: "replaced by one with other labels", facts: PruneFacts{RestoreFacts: RestoreFacts{Live: fewer}, Kind: &kind, Age: old}, reason: "without a label"},
		{name: "kind not served", facts: PruneFacts{RestoreFacts: RestoreFacts{Live: relabelled(t, backup)}, Age: old}, reason: "not served"},
		{name: "unreadable", entry: unreadable, facts: PruneFacts{Age: old}, reason: "cannot be read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := entry
			if tc.entry.Name != "" {
				e = tc.entry
			}
			d := DecidePrune(e, tc.facts, 720*time.Hour)
			if d.Prune != tc.prune || !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("got %+v, want prune %v with %q", d, tc.prune, tc.reason)
			}
		})
	}
}

// TestPrune removes, of its cluster's backups, only the old ones of objects
// gone or migrated, and leaves other clusters' alone.
func TestPrune(t *testing.T) {
	backups, _ := restoreFixture(t)
	// api exists as backed up; web has its copy; db and cache markers; gone
	// and other/web are gone without a record; migrated was relabelled.
	migrated := restoreObject("Deployment", "shop", "migrated")
	if _, err := backups.Write(restoreDeployments, migrated); err != nil {
		t.Fatal(err)
	}
	fresh := restoreObject("Deployment", "shop", "fresh")
	if _, err := backups.Write(restoreDeployments, fresh); err != nil {
		t.Fatal(err)
	}
	b := Backups{Dir: backups.Dir, Cluster: clusterB}
	if _, err := b.Write(restoreDeployments, restoreObject("Deployment", "shop", "gone")); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	entries, _, err := backups.Entries()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name != "fresh" {
			if err := os.Chtimes(e.Path, now.Add(-800*time.Hour), now.Add(-800*time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
	}
	web := restoreObject("Deployment", "shop", "web")
	client := restoreClient(restoreObject("Deployment", "shop", "api"), tempCopyOf(t, restoreDeployments, web), relabelled(t, migrated))
	p := Pruner{Dynamic: client, Backups: backups, Kinds: []rules.Kind{restoreDeployments, restoreStatefulSets}}
	plan, err := p.Plan(context.Background(), 720*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var pruned []string
	for _, r := range p.Apply(plan) {
		if r.Err != nil {
			t.Errorf("%s: %v", r.Key(), r.Err)
		}
		if r.Removed {
			pruned = append(pruned, r.Key())
		}
		if r.Cluster != clusterA.ID {
			t.Errorf("%s of cluster %q in cluster a's plan", r.Key(), r.Cluster)
		}
	}
	slices.Sort(pruned)
	// stray: a StatefulSet manifest under deployments, whose Deployment is gone.
	want := []string{"apps/v1/deployments other/web", "apps/v1/deployments shop/gone", "apps/v1/deployments shop/migrated", "apps/v1/deployments shop/stray"}
	if !slices.Equal(pruned, want) {
		t.Errorf("pruned %v, want %v", pruned, want)
	}
	left, _, _ := backups.Entries()
	var keys []string
	for _, e := range left {
		keys = append(keys, e.Cluster+" "+e.Key())
	}
	wantLeft := []string{
		"uid-cluster-a apps/v1/deployments shop/api", "uid-cluster-a apps/v1/deployments shop/db", "uid-cluster-a apps/v1/deployments shop/fresh",
		"uid-cluster-a apps/v1/deployments shop/web", "uid-cluster-a apps/v1/statefulsets shop/cache", "uid-cluster-b apps/v1/deployments shop/gone",
	}
	if !slices.Equal(keys, wantLeft) {
		t.Errorf("left %v, want %v", keys, wantLeft)
	}
	for _, w := range client.Actions() {
		if v := w.GetVerb(); v != "get" && v != "list" {
			t.Errorf("prune wrote to the cluster: %s", v)
		}
	}
}
