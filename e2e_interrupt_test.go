package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"relabel.dev/relabel/internal/cli"
	"relabel.dev/relabel/internal/testcluster"
)

// syncBuffer collects a process's output while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestInterruptStages: Ctrl-C while a finalizer holds a deleted original.
// The first stops the run gracefully, which here means waiting for the
// original to be gone; the second says what stopping at once would leave
// and does not stop; the third forces the exit, with code 130. A rerun then
// finishes.
func TestInterruptStages(t *testing.T) {
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
	args := []string{"--label", "stage=production", "-n", ns, "--yes", "--backup-dir", t.TempDir()}

	cmd := exec.Command(relabelBin, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	var stderr syncBuffer
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
	// Signals that reach a Go program before it handled the previous one
	// are folded into one, so each Ctrl-C waits for relabel's answer to the
	// last; what the answers say is checked after the exit.
	interrupt := func(n int, answer string) {
		t.Helper()
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatalf("Ctrl-C #%d: %v\n%s", n, err, stderr.String())
		}
		if answer != "" {
			testcluster.Eventually(t, 30*time.Second, "relabel to answer Ctrl-C", func(context.Context) (bool, error) {
				return strings.Contains(stderr.String(), answer), nil
			})
		}
	}
	interrupt(1, "Ctrl-C again to see what stopping now would leave behind")
	interrupt(2, "Ctrl-C again within 10s to stop now anyway")
	select {
	case err := <-done:
		t.Fatalf("relabel ended after the second Ctrl-C: %v\n%s", err, stderr.String())
	default:
	}
	if obj := get(t, c, deployments, ns, "held"); obj.GetUID() != before.GetUID() || obj.GetDeletionTimestamp() == nil {
		t.Fatal("the original is no longer the terminating one")
	}

	interrupt(3, "")
	var err error
	select {
	case err = <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("relabel did not exit after the third Ctrl-C\n%s", stderr.String())
	}
	out := stderr.String()
	t.Logf("stderr:\n%s", out)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 130 {
		t.Errorf("exit %v, want code 130", err)
	}
	_, rest, found := strings.Cut(out, "stopping: finishing ")
	if !found {
		t.Fatalf("no answer to the first Ctrl-C")
	}
	_, forced, found := strings.Cut(rest, "stopping now would leave behind:")
	if !found {
		t.Fatalf("no answer to the second Ctrl-C")
	}
	object := "apps/v1/deployments " + ns + "/held: "
	if !strings.Contains(forced, object) || !strings.Contains(forced, "rerun") {
		t.Errorf("the second Ctrl-C's answer does not name %s and say rerun:\n%s", object, forced)
	}
	_, last, found := strings.Cut(forced, "stopping now; left behind:")
	if want := object + "the original is deleted and not recreated yet; held-temp serves; rerun the same command to finish"; !found || !strings.Contains(last, want) {
		t.Errorf("the forced exit does not say %q:\n%s", want, last)
	}
	if strings.Contains(out, "interrupted with") {
		t.Errorf("relabel wound down instead of exiting at once:\n%s", out)
	}

	// What the forced exit left is finished by the same command.
	clearFinalizers()
	if r := relabel(t, c, nil, args...); r.code != 0 {
		t.Fatalf("rerun: exit %d", r.code)
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

// TestInterruptWhileOriginalTerminates: one Ctrl-C while a finalizer holds
// the deleted original. Once the finalizer goes, the run still recreates the
// original, with the label, before it ends: the passes after a Ctrl-C read
// the cluster whatever the signal cancelled.
func TestInterruptWhileOriginalTerminates(t *testing.T) {
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
	t.Cleanup(clearFinalizers)
	before := get(t, c, deployments, ns, "held")

	cmd := exec.Command(relabelBin, "--kubeconfig", c.Kubeconfig, "--label", "stage=production", "-n", ns, "--yes", "--backup-dir", t.TempDir())
	var stderr syncBuffer
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
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, 30*time.Second, "relabel to answer Ctrl-C", func(context.Context) (bool, error) {
		return strings.Contains(stderr.String(), "stopping: finishing 1 objects whose original is deleted"), nil
	})
	clearFinalizers()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("relabel did not end after the original was gone\n%s", stderr.String())
	}
	t.Logf("stderr:\n%s", stderr.String())
	after := get(t, c, deployments, ns, "held")
	if after.GetUID() == before.GetUID() {
		t.Fatal("the original was not recreated")
	}
	assertLabelled(t, after, "stage", "production")
}

// TestNoTestHookInShippedBinary: relabel built without -tags relabeltest
// has no crash hook, not even its variable's name.
func TestNoTestHookInShippedBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds relabel")
	}
	bin := filepath.Join(t.TempDir(), "relabel")
	if out, err := exec.Command("go", "build", "-o", bin, "./").CombinedOutput(); err != nil {
		t.Fatalf("building relabel: %v\n%s", err, out)
	}
	for _, b := range []struct {
		path   string
		tagged bool
	}{{bin, false}, {relabelBin, true}} {
		data, err := os.ReadFile(b.path)
		if err != nil {
			t.Fatal(err)
		}
		// The tests' binary has it: the check would see it.
		if has := bytes.Contains(data, []byte(cli.EnvCrashAfter)); has != b.tagged {
			t.Errorf("%s (relabeltest tag %v) contains %q: %v", b.path, b.tagged, cli.EnvCrashAfter, has)
		}
	}
}
