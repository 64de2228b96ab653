package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"relabel.dev/relabel/internal/testcluster"
)

// After a migration, the rewritten manifest applies cleanly, server-side as
// a GitOps tool's field manager and client-side, and keeps the label; the
// CI check flags the original and passes the rewritten file.
func TestManifestsKeepGitInStep(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	bin, err := testcluster.Script("bin")
	if err != nil {
		t.Fatal(err)
	}
	kubectl := filepath.Join(strings.TrimSpace(bin), "kubectl")
	env := []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
	manifest := fmt.Sprintf(`# The web tier, as kept in Git.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: %s
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web   # must match the template
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: example.com/web:1
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: %s
spec:
  selector:
    app: web
  ports:
  - port: 80
`, ns, ns)
	dir := t.TempDir()
	original := filepath.Join(dir, "original.yaml")
	rewritten := filepath.Join(dir, "web.yaml")
	for _, p := range []string{original, rewritten} {
		if err := os.WriteFile(p, []byte(manifest), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	apply := func(args ...string) run {
		return command(t, env, kubectl, append([]string{"--kubeconfig", c.Kubeconfig, "apply"}, args...)...)
	}
	if r := apply("--server-side", "--field-manager", "gitops", "-f", original); r.code != 0 {
		t.Fatalf("first apply: exit %d: %s", r.code, r.stderr)
	}
	waitRolledOut(t, c, ns)
	if r := relabel(t, c, nil, "--label", "stage=prod", "-n", ns, "--gvr", "deployments", "--yes", "--backup-dir", t.TempDir()); r.code != 0 {
		t.Fatalf("migration: exit %d", r.code)
	}
	waitRolledOut(t, c, ns)
	migrated := get(t, c, deployments, ns, "web")
	assertLabelled(t, migrated, "stage", "prod")

	if r := command(t, env, relabelBin, "manifests", "--label", "stage=prod", "--check", original); r.code != 3 || !strings.Contains(r.stdout, original+":3 Deployment "+ns+"/web") {
		t.Errorf("--check on the original: exit %d, stdout %q; want 3 naming the Deployment", r.code, r.stdout)
	}
	if r := command(t, env, relabelBin, "manifests", "--label", "stage=prod", rewritten); r.code != 0 {
		t.Fatalf("manifests: exit %d: %s", r.code, r.stderr)
	}
	if r := command(t, env, relabelBin, "manifests", "--label", "stage=prod", "--check", rewritten); r.code != 0 {
		t.Errorf("--check on the rewritten file: exit %d, want 0", r.code)
	}
	data, err := os.ReadFile(rewritten)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "# The web tier, as kept in Git.") || !strings.Contains(string(data), "app: web   # must match the template\n      stage: prod\n") {
		t.Errorf("the rewritten file lost its comments or the label is misplaced:\n%s", data)
	}

	if r := apply("--server-side", "--field-manager", "gitops", "-f", rewritten); r.code != 0 {
		t.Fatalf("server-side apply of the rewritten file: exit %d: %s", r.code, r.stderr)
	}
	if r := apply("-f", rewritten); r.code != 0 {
		t.Fatalf("client-side apply of the rewritten file: exit %d: %s", r.code, r.stderr)
	}
	after := get(t, c, deployments, ns, "web")
	assertLabelled(t, after, "stage", "prod")
	if after.GetUID() != migrated.GetUID() {
		t.Errorf("apply replaced the Deployment: UID %s, was %s", after.GetUID(), migrated.GetUID())
	}
	// Git now owns the label in the selector: the GitOps manager's fields name it.
	owns := false
	for _, m := range after.GetManagedFields() {
		if m.Manager == "gitops" && m.Operation == metav1.ManagedFieldsOperationApply && m.FieldsV1 != nil && strings.Contains(m.FieldsV1.GetRawString(), `"f:stage"`) {
			owns = true
		}
	}
	if !owns {
		t.Errorf("the gitops field manager does not own stage after applying the rewritten file")
	}
	svc, err := c.Kube.CoreV1().Services(ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := svc.Spec.Selector["stage"]; ok {
		t.Errorf("the Service's selector gained the label: %v", svc.Spec.Selector)
	}
	testcluster.Eventually(t, time.Minute, "web available after the applies", func(ctx context.Context) (bool, error) {
		d, err := c.Kube.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && d.Status.ObservedGeneration >= d.Generation && d.Status.AvailableReplicas == 2, err
	})
}
