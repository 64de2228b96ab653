package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"relabel.dev/relabel/engine"
	"relabel.dev/relabel/internal/testcluster"
)

func TestConcurrentRunsAreLocked(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	c.Apply(t, ns, "testdata/demo/workloads.yaml")
	waitRolledOut(t, c, ns)
	// A copy of this one never becomes ready: the first run holds the lock while it waits.
	c.ApplyYAML(t, ns, []byte(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: stuck, labels: {app: stuck}}
spec:
  replicas: 1
  selector: {matchLabels: {app: stuck}}
  template:
    metadata: {labels: {app: stuck}}
    spec:
      nodeSelector: {no-such-node: "true"}
      containers: [{name: c, image: example.com/c:1}]
`))
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
