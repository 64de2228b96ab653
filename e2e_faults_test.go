package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"relabel.dev/relabel/engine"
	"relabel.dev/relabel/internal/cli"
	"relabel.dev/relabel/internal/testcluster"
)

// twentyWorkloads: 14 Deployments, a StatefulSet, a DaemonSet and 4 custom resources.
func twentyWorkloads() (string, []workloadRef) {
	var b strings.Builder
	var refs []workloadRef
	for i := range 14 {
		fmt.Fprintf(&b, `---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d%02d, labels: {app: d%02d}}
spec:
  replicas: 2
  selector: {matchLabels: {app: d%02d}}
  template:
    metadata:
      labels: {app: d%02d}
      annotations: {pod-ready.stage.kwok.x-k8s.io/delay: 1s, pod-ready.stage.kwok.x-k8s.io/jitter-delay: 2s}
    spec: {containers: [{name: c, image: example.com/c:1}]}
`, i, i, i, i)
		refs = append(refs, workloadRef{deployments, fmt.Sprintf("d%02d", i)})
	}
	for i := range 4 {
		fmt.Fprintf(&b, `---
apiVersion: demo.relabel.dev/v1alpha1
kind: Rollout
metadata: {name: r%d, labels: {app: r%d}}
spec:
  replicas: 1
  selector: {matchLabels: {app: r%d}}
  template:
    metadata: {labels: {app: r%d}}
`, i, i, i, i)
		refs = append(refs, workloadRef{rollouts, fmt.Sprintf("r%d", i)})
	}
	data, _ := os.ReadFile("testdata/demo/workloads.yaml")
	for _, doc := range strings.Split(string(data), "\n---\n") {
		if strings.Contains(doc, "kind: StatefulSet") || strings.Contains(doc, "kind: DaemonSet") {
			b.WriteString("---\n" + doc + "\n")
		}
	}
	refs = append(refs, workloadRef{statefulsets, "db"}, workloadRef{daemonsets, "agent"})
	return b.String(), refs
}

// TestRandomKills SIGKILLs a 20-workload migration at seeded random points
// (the Nth time any object reaches a random step) and reruns it each time.
func TestRandomKills(t *testing.T) {
	c := testcluster.Get(t)
	installCRDs(t, c)
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("RELABEL_TEST_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (rerun with RELABEL_TEST_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	trials := 20
	if testing.Short() {
		trials = 5
	}

	ns := c.Namespace(t)
	manifest, refs := twentyWorkloads()
	c.ApplyYAML(t, ns, []byte(manifest))
	waitRolledOut(t, c, ns)
	before := map[workloadRef]*unstructuredObj{}
	trackers := map[string]*podTracker{}
	for _, w := range refs {
		before[w] = get(t, c, w.gvr, ns, w.name)
		if w.gvr == deployments {
			trackers[w.name] = trackPods(t, c, ns, w.name)
		}
	}
	steps := []engine.Step{engine.StepBackedUp, engine.StepCopyCreated, engine.StepCopyReady, engine.StepOriginalDeleted,
		engine.StepRecreated, engine.StepReady, engine.StepCopyDeleted, engine.StepDependentsLabelled, engine.StepOrphaned, engine.StepOrphansDeleted}
	backups := t.TempDir()
	run := func(label string, env ...string) run {
		return relabel(t, c, env, "--label", label, "-n", ns, "--yes", "--backup-dir", backups, "--concurrency", "5", "-v", "1")
	}
	// Each trial adds its own key, so that every trial has work to do; it
	// also finishes whatever the trial before it left half done.
	var keys []string
	kills := 0
	for trial := range trials {
		key := fmt.Sprintf("trial%02d", trial)
		keys = append(keys, key)
		point := fmt.Sprintf("%s:%d", steps[rng.IntN(len(steps))], 1+rng.IntN(8))
		r := run(key+"=yes", cli.EnvCrashAfter+"="+point)
		switch {
		case r.killed:
			kills++
		case r.code != 0:
			t.Fatalf("trial %d (%s): exit %d", trial, point, r.code)
		}
	}
	// The last runs finish what is left; an object resumed for an earlier
	// label gets the final one on the next run.
	for final := 0; ; final++ {
		r := run("stage=production")
		if r.code != 0 {
			t.Fatalf("final run: exit %d", r.code)
		}
		if strings.Contains(r.stdout, "Nothing to migrate") {
			break
		}
		if final == 3 {
			t.Fatalf("still migrating after %d final runs", final+1)
		}
	}
	t.Logf("%d trials, %d of them killed mid-run", trials, kills)

	lost := 0
	for _, w := range refs {
		_, err := c.Dynamic.Resource(w.gvr).Namespace(ns).Get(t.Context(), w.name, metav1.GetOptions{})
		if err != nil {
			lost++
			t.Errorf("%s %s lost: %v", w.gvr.Resource, w.name, err)
			continue
		}
		assertMigrated(t, c, ns, w, before[w], "stage", "production", keys...)
	}
	waitRolledOut(t, c, ns)
	assertNoLeftovers(t, c, ns)
	fewest := -1
	for app, tr := range trackers {
		ready, _ := tr.lowest()
		if ready < 1 {
			t.Errorf("ready pods of app=%s dropped to %d", app, ready)
		}
		if fewest == -1 || ready < fewest {
			fewest = ready
		}
	}
	t.Logf("losses: %d; fewest ready pods of any Deployment: %d", lost, fewest)
}
