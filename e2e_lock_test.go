package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
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

// slowDeployment's pods are Ready only 30s after kwok set them Pending: its
// copy keeps relabel waiting that long.
var slowDeployment = fmt.Sprintf(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: slow, labels: {app: slow}}
spec:
  replicas: 1
  selector: {matchLabels: {app: slow}}
  template:
    metadata: {labels: {app: slow}, annotations: {%s: %%s}}
    spec: {containers: [{name: c, image: example.com/c:1}]}
`, testcluster.AnnotationPodReadyDelay)

// background is a relabel run the test does not wait for at once.
type background struct {
	cmd            *exec.Cmd
	stdout, stderr syncBuffer
	done           chan struct{}
	err            error
}

func startRelabel(t *testing.T, c *testcluster.Cluster, args ...string) *background {
	t.Helper()
	b := &background{done: make(chan struct{})}
	b.cmd = exec.Command(relabelBin, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	b.cmd.Stdout, b.cmd.Stderr = &b.stdout, &b.stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.err = b.cmd.Wait(); close(b.done) }()
	t.Cleanup(func() {
		_ = b.cmd.Process.Kill() // stopped or not
		<-b.done
	})
	return b
}

func (b *background) exited() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// wait returns the run's exit code; the test fails when it takes longer than timeout.
func (b *background) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(timeout):
		_ = b.cmd.Process.Kill()
		<-b.done // the output is written until the process is gone
		t.Fatalf("relabel did not exit within %s\nstderr:\n%s", timeout, b.stderr.String())
	}
	t.Logf("relabel %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(b.cmd.Args[3:], " "), b.err, b.stdout.String(), b.stderr.String())
	var exit *exec.ExitError
	switch {
	case b.err == nil:
		return 0
	case errors.As(b.err, &exit):
		return exit.ExitCode()
	}
	t.Fatalf("relabel: %v", b.err)
	return -1
}

func getLease(ctx context.Context, c *testcluster.Cluster, ns string) (*coordinationv1.Lease, error) {
	return c.Kube.CoordinationV1().Leases(ns).Get(ctx, engine.LockName, metav1.GetOptions{})
}

func leaseHolder(lease *coordinationv1.Lease) string {
	if lease == nil || lease.Spec.HolderIdentity == nil {
		return ""
	}
	return *lease.Spec.HolderIdentity
}

// TestLockLostToAnotherRun: another run takes the Lease over while the
// first waits for a copy to be ready (as it may once the first was paused
// past the lease duration). The first's next renewal is refused: it starts
// no further step, exits 1 saying so, and leaves the other run's Lease
// alone. When the other run is done, the same command finishes.
func TestLockLostToAnotherRun(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	c.ApplyYAML(t, ns, []byte(fmt.Sprintf(slowDeployment, "30s")))
	waitRolledOut(t, c, ns)
	before := get(t, c, deployments, ns, "slow")
	args := []string{"--label", "stage=production", "-n", ns, "--yes", "--backup-dir", t.TempDir()}

	first := startRelabel(t, c, args...)
	testcluster.Eventually(t, time.Minute, "the first run to create the copy", func(ctx context.Context) (bool, error) {
		_, err := c.Dynamic.Resource(deployments).Namespace(ns).Get(ctx, "slow-temp", metav1.GetOptions{})
		return err == nil, err
	})
	// What a second run does to an expired Lease; the copy is 30s from ready.
	const second = "relabel@second-run.example/42/zzzzz"
	var theirs *coordinationv1.Lease
	testcluster.Eventually(t, 30*time.Second, "taking the Lease over", func(ctx context.Context) (bool, error) {
		lease, err := getLease(ctx, c, ns)
		if err != nil {
			return false, err
		}
		if !strings.HasPrefix(leaseHolder(lease), "relabel@") {
			return false, fmt.Errorf("held by %q", leaseHolder(lease))
		}
		now := metav1.NewMicroTime(time.Now())
		holder := second
		lease.Spec.HolderIdentity, lease.Spec.AcquireTime, lease.Spec.RenewTime = &holder, &now, &now
		theirs, err = c.Kube.CoordinationV1().Leases(ns).Update(ctx, lease, metav1.UpdateOptions{})
		return err == nil, err // a conflict: the first renewed meanwhile
	})
	takenAt := time.Now()

	code := first.wait(t, 2*time.Minute)
	stoppedAfter := time.Since(takenAt)
	t.Logf("the first run exited %s after the takeover", stoppedAfter.Round(100*time.Millisecond))
	if code != 1 {
		t.Errorf("the first run: exit %d, want 1", code)
	}
	want := "lost the lock relabel-lock in namespace " + ns + " to " + second +
		": stopped before any new step; objects in flight were brought to a safe point; rerun to finish"
	if !strings.Contains(first.stderr.String(), want) {
		t.Errorf("the first run does not say %q", want)
	}
	// A renewal every 10s: the next one finds the Lease taken.
	if stoppedAfter > 20*time.Second {
		t.Errorf("the first run stopped %s after the takeover, want within about one renewal period (10s)", stoppedAfter)
	}
	// It stopped waiting for the copy: the original was never deleted.
	if after := get(t, c, deployments, ns, "slow"); after.GetUID() != before.GetUID() || after.GetDeletionTimestamp() != nil {
		t.Errorf("the original was deleted after the lock was lost")
	}
	lease, err := getLease(context.Background(), c, ns)
	switch {
	case err != nil:
		t.Fatalf("the other run's Lease is gone: %v", err)
	case lease.UID != theirs.UID || lease.ResourceVersion != theirs.ResourceVersion || leaseHolder(lease) != second:
		t.Fatalf("the other run's Lease was written by the first: holder %q, resourceVersion %s (was %s)",
			leaseHolder(lease), lease.ResourceVersion, theirs.ResourceVersion)
	}

	// The other run is done and releases it; the same command finishes.
	uid, rv := lease.UID, lease.ResourceVersion
	if err := c.Kube.CoordinationV1().Leases(ns).Delete(context.Background(), engine.LockName, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}}); err != nil {
		t.Fatal(err)
	}
	if r := relabel(t, c, nil, args...); r.code != 0 {
		t.Fatalf("rerun: exit %d", r.code)
	}
	assertMigrated(t, c, ns, workloadRef{deployments, "slow"}, before, "stage", "production")
	assertNoLeftovers(t, c, ns)
	if _, err := getLease(context.Background(), c, ns); !isNotFound(err) {
		t.Errorf("the rerun did not release the lock (err %v)", err)
	}
}

// TestLeaseLostWhilePaused: a run paused (SIGSTOP, a
// laptop asleep) past the lease duration has its Lease taken over by a
// second run; when it goes on (SIGCONT), it finds it did not renew in time,
// stops and exits 1, and its release does not delete the second run's
// Lease, which it would with a UID-only precondition (the takeover is an
// update of the same object).
func TestLeaseLostWhilePaused(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs SIGSTOP")
	}
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	c.ApplyYAML(t, ns, []byte(fmt.Sprintf(slowDeployment, "20s")))
	waitRolledOut(t, c, ns)
	// The first run waits on stuck's copy, which never gets ready: the
	// pause cannot end in a step the run would take anyway.
	c.ApplyYAML(t, ns, []byte(stuckDeployment))
	stuck := get(t, c, deployments, ns, "stuck")

	first := startRelabel(t, c, "--label", "stage=production", "-n", ns, "-l", "app=stuck", "--yes", "--timeout", "5m", "--backup-dir", t.TempDir())
	var held *coordinationv1.Lease
	testcluster.Eventually(t, time.Minute, "the first run to create the copy", func(ctx context.Context) (bool, error) {
		_, err := c.Dynamic.Resource(deployments).Namespace(ns).Get(ctx, "stuck-temp", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		held, err = getLease(ctx, c, ns)
		return err == nil, err
	})
	pid := strconv.Itoa(first.cmd.Process.Pid)
	if out, err := exec.Command("kill", "-STOP", pid).CombinedOutput(); err != nil {
		t.Fatalf("kill -STOP: %v %s", err, out)
	}
	pausedAt := time.Now()
	testcluster.Eventually(t, time.Minute, "the paused run's Lease to expire", func(ctx context.Context) (bool, error) {
		lease, err := getLease(ctx, c, ns)
		if err != nil {
			return false, err
		}
		expiry := lease.Spec.RenewTime.Add(time.Duration(*lease.Spec.LeaseDurationSeconds)*time.Second + time.Second)
		return time.Now().After(expiry), nil
	})

	// A second run on another object of the namespace takes it over; its
	// copy and the recreated slow take 20s each to be ready.
	secondRun := startRelabel(t, c, "--label", "stage=production", "-n", ns, "-l", "app=slow", "--yes", "--backup-dir", t.TempDir())
	var theirs *coordinationv1.Lease
	testcluster.Eventually(t, time.Minute, "the second run to take the Lease over", func(ctx context.Context) (bool, error) {
		var err error
		theirs, err = getLease(ctx, c, ns)
		return err == nil && leaseHolder(theirs) != leaseHolder(held), err
	})
	if out, err := exec.Command("kill", "-CONT", pid).CombinedOutput(); err != nil {
		t.Fatalf("kill -CONT: %v %s", err, out)
	}
	resumedAt := time.Now()
	code := first.wait(t, time.Minute)
	t.Logf("the first run was paused %s, then exited %s after it went on",
		resumedAt.Sub(pausedAt).Round(100*time.Millisecond), time.Since(resumedAt).Round(10*time.Millisecond))
	if code != 1 {
		t.Errorf("the first run: exit %d, want 1", code)
	}
	want := "lost the lock relabel-lock in namespace " + ns + ": not renewed for "
	if out := first.stderr.String(); !strings.Contains(out, want) || !strings.Contains(out, "stopped before any new step; objects in flight were brought to a safe point; rerun to finish") {
		t.Errorf("the first run does not say it lost the lock (%q...)", want)
	}
	if after := get(t, c, deployments, ns, "stuck"); after.GetUID() != stuck.GetUID() || after.GetDeletionTimestamp() != nil {
		t.Errorf("the first run deleted stuck after it lost the lock")
	}
	if secondRun.exited() {
		t.Fatalf("the second run ended before the first: its Lease cannot be checked")
	}
	lease, err := getLease(context.Background(), c, ns)
	switch {
	case err != nil:
		t.Fatalf("the second run's Lease was deleted when the first exited: %v", err)
	case lease.UID != theirs.UID || leaseHolder(lease) != leaseHolder(theirs):
		t.Fatalf("the second run's Lease is now held by %q", leaseHolder(lease))
	}

	if code := secondRun.wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("the second run: exit %d", code)
	}
	assertLabelled(t, get(t, c, deployments, ns, "slow"), "stage", "production")
	if _, err := getLease(context.Background(), c, ns); !isNotFound(err) {
		t.Errorf("the second run did not release the lock (err %v)", err)
	}
}
