package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"relabel.dev/relabel/internal/testcluster"
)

// TestAPIServerRestart stops and starts kube-apiserver while relabel waits for
// an original that a finalizer holds and other objects are in flight. relabel
// either rides it out or exits with an error; a rerun then finishes. Nothing
// is lost and no workload's ready pods reach zero.
func TestAPIServerRestart(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	apps := []string{"held", "web-a", "web-b"}
	for _, app := range apps {
		finalizers := ""
		if app == "held" {
			finalizers = ", finalizers: [example.com/hold]"
		}
		c.ApplyYAML(t, ns, []byte(fmt.Sprintf(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s, labels: {app: %[1]s}%[2]s}
spec:
  replicas: 2
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec: {containers: [{name: c, image: example.com/c:1}]}
`, app, finalizers)))
	}
	clearFinalizers := func() error {
		patch := []byte(`{"metadata":{"finalizers":null}}`)
		_, err := c.Dynamic.Resource(deployments).Namespace(ns).Patch(context.Background(), "held", types.MergePatchType, patch, metav1.PatchOptions{})
		if isNotFound(err) {
			return nil
		}
		return err
	}
	t.Cleanup(func() { _ = clearFinalizers() }) // the recreated object has it too
	waitRolledOut(t, c, ns)
	before := map[string]types.UID{}
	trackers := map[string]*podTracker{}
	for _, app := range apps {
		before[app] = get(t, c, deployments, ns, app).GetUID()
		trackers[app] = trackPods(t, c, ns, app)
	}
	backups := t.TempDir()

	cmd := exec.Command(relabelBin, "--kubeconfig", c.Kubeconfig, "--label", "stage=production", "-n", ns, "--yes", "--backup-dir", backups)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() { _ = cmd.Process.Kill() }()

	testcluster.Eventually(t, 2*time.Minute, "the held original to be terminating", func(ctx context.Context) (bool, error) {
		obj, err := c.Dynamic.Resource(deployments).Namespace(ns).Get(ctx, "held", metav1.GetOptions{})
		return err == nil && obj.GetDeletionTimestamp() != nil, err
	})
	c.RestartAPIServer(t)
	if err := clearFinalizers(); err != nil {
		t.Fatalf("removing the finalizer: %v", err)
	}

	select {
	case err := <-done:
		var exit *exec.ExitError
		switch {
		case err == nil:
			t.Logf("relabel rode out the restart")
		case errors.As(err, &exit):
			t.Logf("relabel exited %d after the restart; rerunning\n%s", exit.ExitCode(), stderr.String())
			if r := relabel(t, c, nil, "--label", "stage=production", "-n", ns, "--yes", "--backup-dir", backups); r.code != 0 {
				t.Fatalf("the rerun after the restart exited %d", r.code)
			}
		default:
			t.Fatal(err)
		}
	case <-time.After(4 * time.Minute):
		_ = cmd.Process.Kill()
		<-done // stderr is written until the process is gone
		t.Fatalf("relabel neither finished nor gave up within 4 minutes of the restart\n%s", stderr.String())
	}

	for _, app := range apps {
		after := get(t, c, deployments, ns, app)
		assertLabelled(t, after, "stage", "production")
		if after.GetUID() == before[app] {
			t.Errorf("%s was not recreated", app)
		}
		if ready, _ := trackers[app].lowest(); ready < 1 {
			t.Errorf("%s: its ready pods reached %d during the migration", app, ready)
		}
	}
	assertNoCopies(t, c, ns)
	// After a restart kube-controller-manager's garbage collector sometimes
	// misses an owner's deletion and keeps its old ReplicaSet; that is the
	// cluster's to collect, and only a ReplicaSet of an original may be left.
	for _, rs := range list(t, c, replicasets, ns) {
		ref := metav1.GetControllerOf(&rs)
		if ref == nil {
			t.Errorf("ReplicaSet %s has no owner", rs.GetName())
			continue
		}
		if _, err := c.Dynamic.Resource(deployments).Namespace(ns).Get(context.Background(), ref.Name, metav1.GetOptions{}); err != nil {
			t.Errorf("ReplicaSet %s belongs to %s, which is gone: %v", rs.GetName(), ref.Name, err)
			continue
		}
		if isOriginal := ref.UID == before[ref.Name]; isOriginal {
			t.Logf("the garbage collector has not yet removed %s of the original %s", rs.GetName(), ref.Name)
		}
	}
}
