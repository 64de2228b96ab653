package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"relabel.dev/relabel/engine"
	"relabel.dev/relabel/internal/cli"
	"relabel.dev/relabel/internal/testcluster"
)

// clusterUID is the UID of the cluster's kube-system Namespace: the name of
// its tree in a backup directory.
func clusterUID(t *testing.T, c *testcluster.Cluster) string {
	t.Helper()
	ns, err := c.Kube.CoreV1().Namespaces().Get(context.Background(), "kube-system", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return string(ns.UID)
}

// deleteAndWait deletes a Deployment and waits until it is gone.
func deleteAndWait(t *testing.T, c *testcluster.Cluster, ns, name string) {
	t.Helper()
	if err := c.Dynamic.Resource(deployments).Namespace(ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, c, ns, name)
}

// waitGone waits until a Deployment is gone: an orphan delete holds it
// until the garbage collector has released what it owns.
func waitGone(t *testing.T, c *testcluster.Cluster, ns, name string) {
	t.Helper()
	testcluster.Eventually(t, time.Minute, name+" to be gone", func(ctx context.Context) (bool, error) {
		_, err := c.Dynamic.Resource(deployments).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		return isNotFound(err), nil
	})
}

// relabelSub runs a subcommand of a subcommand (relabel backups list), with
// the connection flags after both names.
func relabelSub(t *testing.T, c *testcluster.Cluster, args ...string) run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, relabelBin, append([]string{args[0], args[1], "--kubeconfig", c.Kubeconfig}, args[2:]...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := run{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("running relabel %v: %v", args, err)
	}
	t.Logf("relabel %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

func exists(t *testing.T, c *testcluster.Cluster, ns, name string) bool {
	t.Helper()
	_, err := c.Dynamic.Resource(deployments).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil && !isNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

// TestBackupsOfOneClusterNeverUsedInAnother: cluster a's migration of
// shop/web is killed right after its orphan delete, which leaves a's backup
// and adopt marker in the shared directory. In cluster b, whose web of the
// same namespace and name was deleted on purpose, neither a migration nor
// restore (not even with --force) uses them: exit 2 naming both clusters,
// 0 writes in b's audit log. Back on a, the rerun finishes from the marker.
func TestBackupsOfOneClusterNeverUsedInAnother(t *testing.T) {
	a, b, ns := twoClusters(t)
	a.ApplyYAML(t, ns, []byte(bareDeployment))
	b.ApplyYAML(t, ns, []byte(bareDeployment))
	waitRolledOut(t, a, ns)
	waitRolledOut(t, b, ns)
	backups := t.TempDir()
	migrate := []string{"--label", "stage=prod", "-n", ns, "--gvr", "deployments", "--strategy", "adopt", "--yes", "--backup-dir", backups}
	idA, idB := clusterUID(t, a), clusterUID(t, b)
	if idA == idB {
		t.Fatalf("both clusters have kube-system UID %s", idA)
	}

	r := relabel(t, a, []string{cli.EnvCrashAfter + "=" + string(engine.StepOrphaned)}, migrate...)
	if !r.killed {
		t.Fatalf("not killed after the orphan delete (exit %d)", r.code)
	}
	if _, err := os.Stat(filepath.Join(backups, idA, ns, "deployments.v1.apps", "web.adopt")); err != nil {
		t.Fatalf("no adopt marker in cluster a's tree: %v", err)
	}
	waitGone(t, a, ns, "web")
	deleteAndWait(t, b, ns, "web")

	countable := b.AuditLog != ""
	t0 := time.Now().Add(-time.Second)
	r = relabel(t, b, nil, migrate...)
	if r.code != 0 || strings.Contains(r.stderr, "resume") {
		t.Errorf("migration in b: exit %d; want 0 and nothing resumed from a's marker", r.code)
	}
	for _, args := range [][]string{
		{"restore", "-n", ns, "--backup-dir", backups, "--yes"},
		{"restore", "-n", ns, "--backup-dir", backups, "--yes", "--force", "web"},
		{"restore", "-n", ns, "--backup-dir", backups, "--dry-run"},
	} {
		r = relabel(t, b, nil, args...)
		if r.code != 2 || !strings.Contains(r.stderr, idA) || !strings.Contains(r.stderr, idB) || !strings.Contains(r.stderr, "nothing was restored") {
			t.Errorf("%v in b: exit %d, stderr %q; want 2 naming both clusters", args, r.code, r.stderr)
		}
	}
	if exists(t, b, ns, "web") {
		t.Error("cluster a's web was created in cluster b")
	}
	if countable {
		if n := nsWrites(t, b, ns, t0); n != 0 {
			t.Errorf("%d writes to cluster b from a's backups", n)
		}
	} else {
		t.Log("the audit log is only known for the clusters the tests start: writes are not counted")
	}

	r = relabel(t, a, nil, migrate...)
	if r.code != 0 || !strings.Contains(r.stderr, "resume") {
		t.Fatalf("rerun in a: exit %d; want it to resume from its marker", r.code)
	}
	assertLabelled(t, get(t, a, deployments, ns, "web"), "stage", "prod")
	if countable && nsWrites(t, a, ns, t0) == 0 {
		t.Error("no writes counted in cluster a: the zero-write check on b proves nothing")
	}
}

// TestRestoreRefusesObjectDeletedAfterMigration: once a migration has
// finished, an object deleted on purpose is not brought back by restore
// (exit 1, 0 writes), unless --force.
func TestRestoreRefusesObjectDeletedAfterMigration(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	c.ApplyYAML(t, ns, []byte(bareDeployment))
	waitRolledOut(t, c, ns)
	backups := t.TempDir()
	if r := relabel(t, c, nil, "--label", "stage=prod", "-n", ns, "--gvr", "deployments", "--yes", "--backup-dir", backups); r.code != 0 {
		t.Fatalf("migration: exit %d", r.code)
	}
	deleteAndWait(t, c, ns, "web")

	t0 := time.Now()
	r := relabel(t, c, nil, "restore", "-n", ns, "--backup-dir", backups, "--yes")
	if r.code != 1 || !strings.Contains(r.stderr, "deleted after the migration? pass --force to restore it anyway") || !strings.Contains(r.stdout, "refused 1") {
		t.Errorf("restore: exit %d; want 1 refusing web", r.code)
	}
	if !strings.Contains(r.stdout, clusterUID(t, c)) {
		t.Errorf("restore does not say which cluster's backups it read:\n%s", r.stdout)
	}
	if exists(t, c, ns, "web") {
		t.Error("restore recreated an object deleted after its migration")
	}
	if c.AuditLog != "" {
		if writes, _ := writesSince(t, c, t0, ns); len(writes) != 0 {
			t.Errorf("%d writes although refused: %+v", len(writes), writes)
		}
	}

	r = relabel(t, c, nil, "restore", "-n", ns, "--backup-dir", backups, "--yes", "--force", "web")
	if r.code != 0 || !strings.Contains(r.stdout, "restored 1") {
		t.Fatalf("restore --force: exit %d", r.code)
	}
	if !exists(t, c, ns, "web") {
		t.Error("restore --force did not recreate web")
	}
}

// TestRestoreAfterOrphanDelete: a migration killed right after it
// orphan-deleted the original leaves only its adopt marker to say the object
// must come back; restore brings it back from the backup and clears the
// marker, and a later migration starts afresh.
func TestRestoreAfterOrphanDelete(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	c.ApplyYAML(t, ns, []byte(bareDeployment))
	waitRolledOut(t, c, ns)
	before := get(t, c, deployments, ns, "web")
	backups := t.TempDir()
	migrate := []string{"--label", "stage=prod", "-n", ns, "--gvr", "deployments", "--strategy", "adopt", "--yes", "--backup-dir", backups}
	if r := relabel(t, c, []string{cli.EnvCrashAfter + "=" + string(engine.StepOrphaned)}, migrate...); !r.killed {
		t.Fatalf("not killed after the orphan delete (exit %d)", r.code)
	}
	waitGone(t, c, ns, "web")

	r := relabel(t, c, nil, "restore", "-n", ns, "--backup-dir", backups, "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "would restore apps/v1/deployments "+ns+"/web") || !strings.Contains(r.stdout, "adopt marker") {
		t.Fatalf("dry run: exit %d", r.code)
	}
	if r := relabel(t, c, nil, "restore", "-n", ns, "--backup-dir", backups); r.code != 2 || !strings.Contains(r.stderr, "--yes") {
		t.Errorf("restore without --yes and without a terminal: exit %d, want 2", r.code)
	}
	r = relabel(t, c, nil, "restore", "-n", ns, "--backup-dir", backups, "--yes")
	if r.code != 0 || !strings.Contains(r.stdout, "restored 1") {
		t.Fatalf("restore: exit %d", r.code)
	}
	after := get(t, c, deployments, ns, "web")
	if after.GetUID() == before.GetUID() || after.GetLabels()["stage"] != "" {
		t.Errorf("web restored with uid %s and labels %v; want a new object as backed up", after.GetUID(), after.GetLabels())
	}
	if _, err := os.Stat(filepath.Join(backups, clusterUID(t, c), ns, "deployments.v1.apps", "web.adopt")); !os.IsNotExist(err) {
		t.Errorf("the adopt marker is left after the restore: %v", err)
	}
	if r := relabel(t, c, nil, migrate...); r.code != 0 {
		t.Fatalf("migration after the restore: exit %d", r.code)
	}
	assertLabelled(t, get(t, c, deployments, ns, "web"), "stage", "prod")
}

// TestBackupsListAndPrune: list shows each backup with its cluster, UID
// and whether its object still exists; prune removes those of migrated
// objects, never the one an interrupted migration still needs.
func TestBackupsListAndPrune(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	c.ApplyYAML(t, ns, []byte(bareDeployment+"---"+strings.ReplaceAll(bareDeployment, "web", "api")+"---"+strings.ReplaceAll(bareDeployment, "web", "held")))
	waitRolledOut(t, c, ns)
	backups := t.TempDir()
	migrate := []string{"--label", "stage=prod", "-n", ns, "--gvr", "deployments", "--yes", "--backup-dir", backups}
	if r := relabel(t, c, nil, append(migrate, "-l", "app in (web,api)")...); r.code != 0 {
		t.Fatalf("migration: exit %d", r.code)
	}
	// held: interrupted once its copy serves, the original gone.
	if r := relabel(t, c, []string{cli.EnvCrashAfter + "=" + string(engine.StepOriginalDeleted)}, append(migrate, "-l", "app=held")...); !r.killed {
		t.Fatalf("not killed after the delete (exit %d)", r.code)
	}
	id := clusterUID(t, c)

	r := relabelSub(t, c, "backups", "list", "--backup-dir", backups, "-n", ns, "-o", "json")
	if r.code != 0 {
		t.Fatalf("list: exit %d", r.code)
	}
	doc := decodeJSON[cli.BackupList](t, r.stdout)
	got := map[string]string{}
	for _, it := range doc.Items {
		if it.Cluster != id || it.UID == "" || it.Kind != "Deployment" || it.Time.IsZero() {
			t.Errorf("item %+v", it)
		}
		got[it.Name] = it.Exists
	}
	if want := map[string]string{"web": "replaced", "api": "replaced", "held": "missing"}; len(got) != 3 || got["web"] != want["web"] || got["api"] != want["api"] || got["held"] != want["held"] {
		t.Errorf("exists %v, want %v", got, want)
	}
	if doc.Cluster == nil || doc.Cluster.ID != id || len(doc.Clusters) != 1 || doc.Clusters[0].ID != id {
		t.Errorf("cluster %+v, clusters %+v; want %s", doc.Cluster, doc.Clusters, id)
	}
	r = relabelSub(t, c, "backups", "list", "--backup-dir", backups, "--offline")
	if r.code != 0 || !strings.Contains(r.stdout, id) || !strings.Contains(r.stdout, "EXISTS not checked") {
		t.Errorf("offline list: exit %d", r.code)
	}

	prune := []string{"backups", "prune", "--backup-dir", backups, "-n", ns}
	if r := relabelSub(t, c, append(prune, "--older-than", "720h", "--yes")...); r.code != 0 || !strings.Contains(r.stdout, "removed 0 backups, kept 3") {
		t.Errorf("prune of recent backups: exit %d", r.code)
	}
	time.Sleep(1100 * time.Millisecond)
	if r := relabelSub(t, c, append(prune, "--older-than", "1s")...); r.code != 2 {
		t.Errorf("prune without --yes and without a terminal: exit %d, want 2", r.code)
	}
	t0 := time.Now().Add(-time.Second)
	r = relabelSub(t, c, append(prune, "--older-than", "1s", "--yes")...)
	if r.code != 0 || !strings.Contains(r.stdout, "removed 2 backups, kept 1") || !strings.Contains(r.stdout, "held-temp") {
		t.Errorf("prune: exit %d; want web and api removed, held kept for its copy", r.code)
	}
	for name, want := range map[string]bool{"web": false, "api": false, "held": true} {
		_, err := os.Stat(filepath.Join(backups, id, ns, "deployments.v1.apps", name+".yaml"))
		if (err == nil) != want {
			t.Errorf("backup of %s: %v, want kept %v", name, err, want)
		}
	}
	if c.AuditLog != "" {
		if writes, _ := writesSince(t, c, t0, ns); len(writes) != 0 {
			t.Errorf("prune wrote to the cluster: %+v", writes)
		}
	}
	// The interrupted migration still finishes from what prune kept.
	if r := relabel(t, c, nil, append(migrate, "-l", "app=held")...); r.code != 0 {
		t.Fatalf("rerun of held: exit %d", r.code)
	}
	assertLabelled(t, get(t, c, deployments, ns, "held"), "stage", "prod")
}

// TestServiceAccountKeysBackupsByCluster runs a migration as a
// ServiceAccount with exactly the ClusterRole `relabel rbac` prints, as the
// in-cluster Job does: it may read the kube-system Namespace, so its backups
// are keyed by the cluster's UID, not by the API server's address (in a pod,
// the same Service address in every cluster).
func TestServiceAccountKeysBackupsByCluster(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	c.ApplyYAML(t, ns, []byte(bareDeployment))
	waitRolledOut(t, c, ns)

	name := "relabel-" + ns // clear of any other test's ClusterRole
	r := relabel(t, c, nil, "rbac", "--gvr", "deployments", "--strategy", "temp-copy", "--name", name, "--service-account-namespace", ns)
	if r.code != 0 {
		t.Fatalf("relabel rbac: exit %d", r.code)
	}
	var policy []rbacv1.PolicyRule
	for _, obj := range c.ApplyYAML(t, ns, []byte(r.stdout)) {
		if obj.GetKind() != "ClusterRole" {
			continue
		}
		var role rbacv1.ClusterRole
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &role); err != nil {
			t.Fatal(err)
		}
		policy = role.Rules
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = c.Kube.RbacV1().ClusterRoleBindings().Delete(ctx, name, metav1.DeleteOptions{})
		_ = c.Kube.RbacV1().ClusterRoles().Delete(ctx, name, metav1.DeleteOptions{})
	})
	if !slices.ContainsFunc(policy, func(rule rbacv1.PolicyRule) bool {
		return slices.Contains(rule.Resources, "namespaces") && slices.Equal(rule.ResourceNames, []string{"kube-system"}) && slices.Equal(rule.Verbs, []string{"get"})
	}) {
		t.Fatalf("the ClusterRole does not grant get on the kube-system Namespace: %+v", policy)
	}
	token, err := c.Kube.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sa := serviceAccount{username: "system:serviceaccount:" + ns + ":" + name}
	if sa.cluster, err = testcluster.Connect(writeTokenKubeconfig(t, c, token.Status.Token)); err != nil {
		t.Fatal(err)
	}
	sa.waitGranted(t, ns, policy, nil)

	backups := t.TempDir()
	r = relabel(t, sa.cluster, nil, "--label", "stage=production", "-n", ns, "--gvr", "deployments", "--yes", "--backup-dir", backups)
	if r.code != 0 {
		t.Fatalf("migration as %s: exit %d", sa.username, r.code)
	}
	entries, err := os.ReadDir(backups)
	if err != nil {
		t.Fatal(err)
	}
	var trees []string
	for _, e := range entries {
		trees = append(trees, e.Name())
	}
	if want := clusterUID(t, c); !slices.Equal(trees, []string{want}) {
		t.Fatalf("backup trees %v, want only the cluster's UID %s", trees, want)
	}
	if _, err := os.Stat(filepath.Join(backups, trees[0], ns, "deployments.v1.apps", "web.yaml")); err != nil {
		t.Errorf("no backup of web under the cluster's UID: %v", err)
	}
}
