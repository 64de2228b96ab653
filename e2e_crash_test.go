package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"relabel.dev/relabel/engine"
	"relabel.dev/relabel/internal/cli"
	"relabel.dev/relabel/internal/testcluster"
)

// killWhenTerminating runs relabel with args and SIGKILLs it, from outside,
// once the Deployment ns/name it deletes is terminating (a finalizer holds it).
func killWhenTerminating(t *testing.T, c *testcluster.Cluster, ns, name string, args []string) {
	t.Helper()
	cmd := exec.Command(relabelBin, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	testcluster.Eventually(t, time.Minute, name+" to be terminating", func(ctx context.Context) (bool, error) {
		obj, err := c.Dynamic.Resource(deployments).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && obj.GetDeletionTimestamp() != nil, err
	})
}

// TestCrashWhileOriginalTerminating kills relabel from outside while a
// finalizer holds the deleted original. The rerun must not take the
// terminating original for "nothing to do": it waits, and once the finalizer
// is removed the original comes back labelled and the copy goes.
func TestCrashWhileOriginalTerminating(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	c.ApplyYAML(t, ns, []byte(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: held, labels: {app: held}, finalizers: [example.com/hold]}
spec:
  replicas: 1
  selector: {matchLabels: {app: held}}
  template:
    metadata: {labels: {app: held}}
    spec: {containers: [{name: c, image: example.com/c:1}]}
`))
	waitRolledOut(t, c, ns)
	clearFinalizers := func() {
		patch := []byte(`{"metadata":{"finalizers":null}}`)
		if _, err := c.Dynamic.Resource(deployments).Namespace(ns).Patch(context.Background(), "held", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !isNotFound(err) {
			t.Error(err)
		}
	}
	t.Cleanup(clearFinalizers) // the recreated object has it too
	before := get(t, c, deployments, ns, "held")
	backups := t.TempDir()
	args := []string{"--kubeconfig", c.Kubeconfig, "--label", "stage=production", "-n", ns, "--yes", "--backup-dir", backups}

	killWhenTerminating(t, c, ns, "held", args)

	rerun := exec.Command(relabelBin, args...)
	var stderr bytes.Buffer
	rerun.Stderr = &stderr
	if err := rerun.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- rerun.Wait() }()
	defer func() { _ = rerun.Process.Kill() }()
	// The rerun holds the namespace's Lease once it has planned; while the
	// finalizer holds the original it must keep waiting, not end.
	holder := fmt.Sprintf("/%d/", rerun.Process.Pid)
	testcluster.Eventually(t, time.Minute, "the rerun to take the Lease", func(ctx context.Context) (bool, error) {
		lease, err := c.Kube.CoordinationV1().Leases(ns).Get(ctx, engine.LockName, metav1.GetOptions{})
		if isNotFound(err) {
			return false, nil
		}
		return err == nil && lease.Spec.HolderIdentity != nil && strings.Contains(*lease.Spec.HolderIdentity, holder), err
	})
	select {
	case err := <-done:
		t.Fatalf("the rerun ended while the original was terminating: %v\n%s", err, stderr.String())
	default:
	}
	if obj := get(t, c, deployments, ns, "held"); obj.GetUID() != before.GetUID() || obj.GetDeletionTimestamp() == nil {
		t.Fatal("the original is no longer the terminating one")
	}
	clearFinalizers()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("rerun: %v\n%s", err, stderr.String())
		}
	case <-time.After(2 * time.Minute):
		_ = rerun.Process.Kill()
		<-done
		t.Fatalf("the rerun did not finish after the finalizer was removed\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "resume   Deployment "+ns+"/held") {
		t.Errorf("the rerun did not resume the terminating original:\n%s", stderr.String())
	}
	after := get(t, c, deployments, ns, "held")
	if after.GetUID() == before.GetUID() {
		t.Errorf("the original was not recreated")
	}
	assertLabelled(t, after, "stage", "production")
	testcluster.Eventually(t, 30*time.Second, "the copy to be gone", func(ctx context.Context) (bool, error) {
		_, err := c.Dynamic.Resource(deployments).Namespace(ns).Get(ctx, "held-temp", metav1.GetOptions{})
		return isNotFound(err), nil
	})
}

// TestAdoptResumesFromAnotherMachine interrupts an adopt migration right
// after its orphan delete and reruns it with an empty backup directory, as
// from another machine or a Job pod with a fresh volume: the record on the
// pods says the StatefulSet must come back, and what it was.
func TestAdoptResumesFromAnotherMachine(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	applyDemo(t, c, ns)
	waitRolledOut(t, c, ns)
	before := get(t, c, statefulsets, ns, "db")
	args := func(dir string) []string {
		return []string{"--label", "stage=production", "-n", ns, "--gvr", "sts", "--yes", "--backup-dir", dir}
	}
	if r := relabel(t, c, []string{cli.EnvCrashAfter + "=" + string(engine.StepOrphaned)}, args(t.TempDir())...); !r.killed {
		t.Fatalf("relabel was not killed after the orphan delete (exit %d)", r.code)
	}
	if _, err := c.Dynamic.Resource(statefulsets).Namespace(ns).Get(context.Background(), "db", metav1.GetOptions{}); !isNotFound(err) {
		testcluster.Eventually(t, time.Minute, "the orphan-deleted StatefulSet to be gone", func(ctx context.Context) (bool, error) {
			_, err := c.Dynamic.Resource(statefulsets).Namespace(ns).Get(ctx, "db", metav1.GetOptions{})
			return isNotFound(err), nil
		})
	}
	r := relabel(t, c, nil, args(t.TempDir())...)
	if r.code != 0 || !strings.Contains(r.stderr, "recorded on its pods") {
		t.Fatalf("rerun from a clean backup directory: exit %d, want 0 and a resume from the pods' record", r.code)
	}
	waitRolledOut(t, c, ns)
	assertMigrated(t, c, ns, workloadRef{statefulsets, "db"}, before, "stage", "production")
	if got := podNames(t, c, ns, "app=db,stage=production"); strings.Join(got, ",") != "db-0,db-1" {
		t.Errorf("pods %v, want db-0 and db-1 with the label", got)
	}
	if left := podNames(t, c, ns, engine.AdoptUIDLabel); len(left) > 0 {
		t.Errorf("pods %v still carry the adopt record", left)
	}
}
