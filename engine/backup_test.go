package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"relabel.dev/relabel/rules"
)

var (
	clusterA    = ClusterID{ID: "uid-cluster-a", Source: ClusterIDKubeSystem, Server: "https://a.example.com:6443", Context: "a"}
	clusterB    = ClusterID{ID: "uid-cluster-b", Source: ClusterIDKubeSystem, Server: "https://b.example.com:6443", Context: "b"}
	backupLabel = rules.Label{Key: "stage", Value: "prod"}
)

// TestBackupsKeyedByCluster: two clusters sharing a directory and a
// namespace/name never see each other's backups or markers.
func TestBackupsKeyedByCluster(t *testing.T) {
	dir := t.TempDir()
	a, b := Backups{Dir: dir, Cluster: clusterA}, Backups{Dir: dir, Cluster: clusterB}
	for _, bk := range []Backups{a, b} {
		if err := bk.Check(); err != nil {
			t.Fatal(err)
		}
	}
	webA := restoreObject("Deployment", "shop", "web")
	webA.SetUID("uid-web-a")
	path, err := a.Write(restoreDeployments, webA)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "uid-cluster-a", "shop", "deployments.v1.apps", "web.yaml"); path != want {
		t.Errorf("written to %s, want %s", path, want)
	}
	if err := a.MarkAdopt(restoreDeployments, "shop", "web", "uid-web-a", backupLabel); err != nil {
		t.Fatal(err)
	}

	if got, err := b.Read(restoreDeployments, "shop", "web"); err != nil || got != nil {
		t.Errorf("cluster b reads a's backup: %v, %v", got, err)
	}
	if uid, _, err := b.AdoptMarker(restoreDeployments, "shop", "web"); err != nil || uid != "" {
		t.Errorf("cluster b sees a's adopt marker: %q, %v", uid, err)
	}
	if m, err := b.AdoptMarkers(restoreDeployments, ""); err != nil || len(m) != 0 {
		t.Errorf("cluster b lists a's adopt markers: %v, %v", m, err)
	}
	if m, err := a.AdoptMarkers(restoreDeployments, ""); err != nil || !slices.Equal(m, [][2]string{{"shop", "web"}}) {
		t.Errorf("cluster a's markers %v, %v", m, err)
	}
	if m, err := a.AdoptMarkers(restoreDeployments, "shop"); err != nil || len(m) != 1 {
		t.Errorf("cluster a's markers in shop %v, %v", m, err)
	}
	if found, err := b.Find(BackupQuery{Kinds: []rules.Kind{restoreDeployments}, Namespace: "shop"}); err != nil || len(found) != 0 {
		t.Errorf("cluster b finds %v, %v", found, err)
	}
	if found, err := a.Find(BackupQuery{Kinds: []rules.Kind{restoreDeployments}, Namespace: "shop"}); err != nil || len(found) != 1 {
		t.Errorf("cluster a finds %v, %v", found, err)
	}
	others, err := b.Elsewhere(BackupQuery{Kinds: []rules.Kind{restoreDeployments}, Namespace: "shop"})
	if err != nil || len(others) != 1 || others[0].Cluster != "uid-cluster-a" || others[0].UID != "uid-web-a" || !others[0].Marker {
		t.Errorf("elsewhere for b: %+v, %v", others, err)
	}

	entries, records, err := a.Entries()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Key() != "apps/v1/deployments shop/web" || entries[0].MarkerUID != "uid-web-a" || entries[0].Time.IsZero() {
		t.Errorf("entries %+v", entries)
	}
	var ids []string
	for _, r := range records {
		ids = append(ids, r.ID+" "+strings.Join(r.Contexts, ","))
	}
	if !slices.Equal(ids, []string{"uid-cluster-a a", "uid-cluster-b b"}) {
		t.Errorf("cluster records %v", ids)
	}
}

// TestBackupsClusterRecordListsContexts: every context a run came by is
// recorded in the cluster's tree.
func TestBackupsClusterRecordListsContexts(t *testing.T) {
	dir := t.TempDir()
	for _, ctx := range []string{"prod", "prod-admin", "prod"} {
		c := clusterA
		c.Context = ctx
		if err := (Backups{Dir: dir, Cluster: c}).Check(); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := readClusterRecord(filepath.Join(dir, clusterA.ID, clusterRecordFile))
	if err != nil {
		t.Fatal(err)
	}
	if rec.ID != clusterA.ID || rec.Source != ClusterIDKubeSystem || rec.Server != clusterA.Server || !slices.Equal(rec.Contexts, []string{"prod", "prod-admin"}) {
		t.Errorf("record %+v", rec)
	}
}

// TestReadUID: a backup is given only to the caller who asks for its UID.
func TestReadUID(t *testing.T) {
	b := Backups{Dir: t.TempDir(), Cluster: clusterA}
	web := restoreObject("Deployment", "shop", "web") // uid-web
	if _, err := b.Write(restoreDeployments, web); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, uid string
		want      bool
	}{
		{"the backup's UID", "uid-web", true},
		{"another object's UID", "uid-other", false},
		{"no UID", "", false},
	} {
		got, err := b.ReadUID(restoreDeployments, "shop", "web", tc.uid)
		if err != nil || (got != nil) != tc.want {
			t.Errorf("%s: %v, %v; want found %v", tc.name, got, err, tc.want)
		}
	}
	if got, err := b.ReadUID(restoreDeployments, "shop", "none", "uid-none"); err != nil || got != nil {
		t.Errorf("no backup: %v, %v", got, err)
	}
}

func TestIdentifyCluster(t *testing.T) {
	kubeSystem := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kube-system", UID: types.UID("0b7c5e1e-2d1c-4a4e-9d5e-1f2a3b4c5d6e")}}
	for _, tc := range []struct {
		name       string
		err        error
		wantID     string
		wantSource string
		wantErr    bool
	}{
		{name: "kube-system's UID", wantID: "0b7c5e1e-2d1c-4a4e-9d5e-1f2a3b4c5d6e", wantSource: ClusterIDKubeSystem},
		{name: "forbidden: the server's host", err: apierrors.NewForbidden(schema.GroupResource{Resource: "namespaces"}, "kube-system", errors.New("no")),
			wantID: "host-api.example.com_6443", wantSource: ClusterIDServer},
		{name: "transient error: no id", err: apierrors.NewServiceUnavailable("etcd is down"), wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kube := kubefake.NewClientset(kubeSystem)
			if tc.err != nil {
				kube.PrependReactor("get", "namespaces", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, tc.err })
			}
			id, err := IdentifyCluster(context.Background(), kube.CoreV1(), "https://API.example.com:6443", "prod")
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want one: %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if id.ID != tc.wantID || id.Source != tc.wantSource || id.Context != "prod" || (id.Fallback != "") != (tc.wantSource == ClusterIDServer) {
				t.Errorf("id %+v, want %s from %s", id, tc.wantID, tc.wantSource)
			}
		})
	}
}

// TestBackupsUnkeyedLayout: files of the layout before backups were keyed
// by cluster are listed as of no cluster, never found for one.
func TestBackupsUnkeyedLayout(t *testing.T) {
	dir := t.TempDir()
	if _, err := (Backups{Dir: dir}).Write(restoreDeployments, restoreObject("Deployment", "shop", "web")); err != nil {
		t.Fatal(err)
	}
	if _, err := (Backups{Dir: filepath.Join(dir, "prod")}).Write(restoreDeployments, restoreObject("Deployment", "shop", "api")); err != nil {
		t.Fatal(err)
	}
	b := Backups{Dir: dir, Cluster: clusterA}
	if found, err := b.Find(BackupQuery{Kinds: []rules.Kind{restoreDeployments}}); err != nil || len(found) != 0 {
		t.Errorf("found %v, %v", found, err)
	}
	entries, _, err := b.Entries()
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range entries {
		keys = append(keys, e.Cluster+"|"+e.Key())
	}
	slices.Sort(keys)
	if want := []string{"|apps/v1/deployments shop/api", "|apps/v1/deployments shop/web"}; !slices.Equal(keys, want) {
		t.Errorf("entries %v, want %v", keys, want)
	}
	if err := b.Remove(entries[0]); err == nil {
		t.Errorf("removed a file outside the cluster's tree")
	}
}

func TestBackupsRemove(t *testing.T) {
	dir := t.TempDir()
	b := Backups{Dir: dir, Cluster: clusterA}
	for _, name := range []string{"web", "api"} {
		if _, err := b.Write(restoreDeployments, restoreObject("Deployment", "shop", name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.MarkAdopt(restoreDeployments, "shop", "api", "uid-api", backupLabel); err != nil {
		t.Fatal(err)
	}
	entries, _, _ := b.Entries()
	for _, e := range entries {
		err := b.Remove(e)
		if (err != nil) != (e.Name == "api") {
			t.Errorf("removing %s: %v (only the one with an adopt marker must be kept)", e.Name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, clusterA.ID, "shop", "deployments.v1.apps", "api.yaml")); err != nil {
		t.Errorf("the backup with a marker is gone: %v", err)
	}
	entries, _, _ = (Backups{Dir: dir, Cluster: clusterB}).Entries()
	if err := (Backups{Dir: dir, Cluster: clusterB}).Remove(entries[0]); err == nil {
		t.Errorf("cluster b removed a backup of cluster a")
	}
}
