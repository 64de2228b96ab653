package engine

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"relabel.dev/relabel/rules"
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

// restoreFixture stores backups of shop/web, shop/api, shop/db (a
// Deployment each) and of the StatefulSet shop/cache, and serves a cluster
// that has only shop/api.
func restoreFixture(t *testing.T) (Backups, *dynamicfake.FakeDynamicClient) {
	t.Helper()
	backups := Backups{Dir: t.TempDir()}
	for _, b := range []struct {
		kind rules.Kind
		obj  *unstructured.Unstructured
	}{
		{restoreDeployments, restoreObject("Deployment", "shop", "web")},
		{restoreDeployments, restoreObject("Deployment", "shop", "api")},
		{restoreDeployments, restoreObject("Deployment", "shop", "db")},
		{restoreDeployments, restoreObject("Deployment", "other", "web")},
		{restoreStatefulSets, restoreObject("StatefulSet", "shop", "cache")},
		// Put by hand under the Deployments' directory: not a Deployment.
		{restoreDeployments, restoreObject("StatefulSet", "shop", "stray")},
	} {
		if _, err := backups.Write(b.kind, b.obj); err != nil {
			t.Fatal(err)
		}
	}
	client := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		restoreDeployments.GVR():  "DeploymentList",
		restoreStatefulSets.GVR(): "StatefulSetList",
	}, restoreObject("Deployment", "shop", "api"))
	return backups, client
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

func TestRestore(t *testing.T) {
	for _, tc := range []struct {
		name        string
		opts        RestoreOptions
		refuse      string // a name whose create the API server refuses
		want        []string
		wantCreates []string
	}{
		{
			name: "missing objects are created, present ones left alone",
			opts: RestoreOptions{BackupQuery: BackupQuery{Kinds: []rules.Kind{restoreDeployments}, Namespace: "shop"}},
			want: []string{
				"apps/v1/deployments shop/api present",
				"apps/v1/deployments shop/db restored",
				"apps/v1/deployments shop/web restored",
			},
			wantCreates: []string{"deployments shop/db", "deployments shop/web"},
		},
		{
			name: "dry run creates nothing",
			opts: RestoreOptions{BackupQuery: BackupQuery{Kinds: []rules.Kind{restoreDeployments}, Namespace: "shop"}, DryRun: true},
			want: []string{
				"apps/v1/deployments shop/api present",
				"apps/v1/deployments shop/db would-restore",
				"apps/v1/deployments shop/web would-restore",
			},
		},
		{
			name:        "names and every namespace",
			opts:        RestoreOptions{BackupQuery: BackupQuery{Kinds: []rules.Kind{restoreDeployments}, Names: []string{"web"}}},
			want:        []string{"apps/v1/deployments other/web restored", "apps/v1/deployments shop/web restored"},
			wantCreates: []string{"deployments other/web", "deployments shop/web"},
		},
		{
			name:        "only the kinds asked for",
			opts:        RestoreOptions{BackupQuery: BackupQuery{Kinds: []rules.Kind{restoreStatefulSets}, Namespace: "shop"}},
			want:        []string{"apps/v1/statefulsets shop/cache restored"},
			wantCreates: []string{"statefulsets shop/cache"},
		},
		{
			name:   "a refused create fails that object only",
			opts:   RestoreOptions{BackupQuery: BackupQuery{Kinds: []rules.Kind{restoreDeployments}, Namespace: "shop"}},
			refuse: "db",
			want: []string{
				"apps/v1/deployments shop/api present",
				"apps/v1/deployments shop/db failed",
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
			}
		})
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
// for missing; the run stops with what it did so far.
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
	// Backups are read in name order: api and db come before web.
	if got, want := outcomes(results), []string{"apps/v1/deployments shop/api present", "apps/v1/deployments shop/db restored"}; !slices.Equal(got, want) {
		t.Errorf("results so far %v, want %v", got, want)
	}
	if got := creates(client); slices.Contains(got, "deployments shop/web") {
		t.Errorf("created web although it could not be read: %v", got)
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
	want := []string{"apps/v1/deployments shop/api", "apps/v1/deployments shop/db", "apps/v1/deployments shop/web", "apps/v1/statefulsets shop/cache"}
	if !slices.Equal(keys, want) {
		t.Errorf("found %v, want %v (kind by kind, the stray StatefulSet under deployments left out)", keys, want)
	}
	empty, err := Backups{Dir: t.TempDir() + "/none"}.Find(BackupQuery{Kinds: []rules.Kind{restoreDeployments}})
	if err != nil || len(empty) != 0 {
		t.Errorf("a backup directory that does not exist: %v, %v; want nothing and no error", empty, err)
	}
}
