package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"relabel.dev/relabel/engine"
	"relabel.dev/relabel/internal/testcluster"
)

func TestConcurrentRunsAreLocked(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	applyDemo(t, c, ns)
	waitRolledOut(t, c, ns)
	// A copy of this one never becomes ready: the first run holds the lock while it waits.
	c.ApplyYAML(t, ns, []byte(stuckDeployment))
	first := exec.Command(relabelBin, "--kubeconfig", c.Kubeconfig, "--label", "stage=production", "-n", ns, "-l", "app=stuck",
		"--yes", "--timeout", "5m", "--backup-dir", t.TempDir())
	var firstErr bytes.Buffer
	first.Stderr = &firstErr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = first.Process.Kill(); _ = first.Wait() }()
	testcluster.Eventually(t, time.Minute, "the first run to take the lock", func(ctx context.Context) (bool, error) {
		_, err := c.Kube.CoordinationV1().Leases(ns).Get(ctx, engine.LockName, metav1.GetOptions{})
		return err == nil, nil
	})

	before := get(t, c, deployments, ns, "web")
	args := []string{"--label", "stage=production", "-n", ns, "-l", "app=web", "--yes", "--backup-dir", t.TempDir()}
	r := relabel(t, c, nil, args...)
	if r.code != 1 || !strings.Contains(r.stderr, "another relabel run is working here") || !strings.Contains(r.stderr, "relabel@") {
		t.Fatalf("exit %d, stderr %q; want a refusal naming the holder", r.code, r.stderr)
	}
	if after := get(t, c, deployments, ns, "web"); after.GetUID() != before.GetUID() || after.GetGeneration() != before.GetGeneration() {
		t.Errorf("the refused run changed web")
	}

	// A holder that died on this machine does not block the next run.
	_ = first.Process.Kill()
	_ = first.Wait()
	r = relabel(t, c, nil, args...)
	if r.code != 0 {
		t.Fatalf("after the holder died: exit %d", r.code)
	}
	assertLabelled(t, get(t, c, deployments, ns, "web"), "stage", "production")
	if _, err := c.Kube.CoordinationV1().Leases(ns).Get(context.Background(), engine.LockName, metav1.GetOptions{}); !isNotFound(err) {
		t.Errorf("the lock was not released at the end (err %v)", err)
	}
}

// TestFinalizerDelaysRecreation: an original whose finalizer someone else
// removes later is recreated only once it is really gone.
func TestFinalizerDelaysRecreation(t *testing.T) {
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
	clearFinalizers := func(name string) {
		patch := []byte(`{"metadata":{"finalizers":null}}`)
		if _, err := c.Dynamic.Resource(deployments).Namespace(ns).Patch(context.Background(), name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !isNotFound(err) {
			t.Error(err)
		}
	}
	// The recreated object carries the finalizer too; the namespace must be able to go.
	t.Cleanup(func() { clearFinalizers("held") })
	before := get(t, c, deployments, ns, "held")

	cmd := exec.Command(relabelBin, "--kubeconfig", c.Kubeconfig, "--label", "stage=production", "-n", ns, "--yes", "--backup-dir", t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() { _ = cmd.Process.Kill() }()

	testcluster.Eventually(t, time.Minute, "the original to be terminating", func(ctx context.Context) (bool, error) {
		obj, err := c.Dynamic.Resource(deployments).Namespace(ns).Get(ctx, "held", metav1.GetOptions{})
		return err == nil && obj.GetDeletionTimestamp() != nil, err
	})
	// While the finalizer holds it, the original is the old object and relabel keeps waiting.
	select {
	case err := <-done:
		t.Fatalf("relabel ended while the original was still terminating: %v\n%s", err, stderr.String())
	default:
	}
	if obj := get(t, c, deployments, ns, "held"); obj.GetUID() != before.GetUID() {
		t.Fatalf("the original was recreated before it was gone")
	}
	clearFinalizers("held")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("relabel: %v\n%s", err, stderr.String())
		}
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-done // stderr is written until the process is gone
		t.Fatalf("relabel did not finish after the finalizer was removed\n%s", stderr.String())
	}
	after := get(t, c, deployments, ns, "held")
	if after.GetUID() == before.GetUID() {
		t.Errorf("the original was not recreated")
	}
	assertLabelled(t, after, "stage", "production")
}
