package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"relabel.dev/relabel/engine"
	"relabel.dev/relabel/rules"
)

func runAppErr(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	app := NewApp("relabel", BuildInfo{}, strings.NewReader(""), &stdout, &stderr)
	err := app.Run(append([]string{"relabel"}, args...))
	return stdout.String(), stderr.String(), err
}

// TestBackupsListOffline lists the files of two clusters' trees, and one
// written before backups were keyed by cluster, without a cluster.
func TestBackupsListOffline(t *testing.T) {
	dir := t.TempDir()
	deployments, _ := rules.Builtin(rules.Kind{Group: "apps", Kind: "Deployment"}.GroupKind())
	web := &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]interface{}{"name": "web", "namespace": "shop", "uid": "uid-web"},
	}}
	for _, b := range []engine.Backups{
		{Dir: dir, Cluster: engine.ClusterID{ID: "uid-a", Source: engine.ClusterIDKubeSystem, Context: "a"}},
		{Dir: dir, Cluster: engine.ClusterID{ID: "uid-b", Source: engine.ClusterIDKubeSystem, Context: "b"}},
		{Dir: dir},
	} {
		if _, err := b.Write(deployments, web); err != nil {
			t.Fatal(err)
		}
	}
	out, _, err := runAppErr(t, "backups", "list", "--backup-dir", dir, "--offline", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var doc BackupList
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range doc.Items {
		got = append(got, it.Cluster+" "+it.Namespace+"/"+it.Name+" "+it.UID+" "+it.Kind+" "+it.Exists)
	}
	if want := []string{" shop/web uid-web Deployment ", "uid-a shop/web uid-web Deployment ", "uid-b shop/web uid-web Deployment "}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("items %q, want %q", got, want)
	}
	if doc.Kind != "BackupList" || doc.Cluster != nil || len(doc.Clusters) != 2 {
		t.Errorf("document %+v", doc)
	}
	table, _, err := runAppErr(t, "backups", "list", "--backup-dir", dir, "--offline")
	if err != nil || !strings.Contains(table, "uid-a") || !strings.Contains(table, "unknown") || !strings.Contains(table, "EXISTS not checked") {
		t.Errorf("table %v:\n%s", err, table)
	}
}

func TestBackupsUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"backups", "prune"},
		{"backups", "prune", "--older-than", "-1h"},
		{"backups", "list", "--offline", "-o", "yaml"},
		{"backups", "list", "--offline", "stray"},
		{"restore", "--backup-dir", ""},
	} {
		_, _, err := runAppErr(t, args...)
		var usage UsageError
		if !errors.As(err, &usage) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}
