package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"relabel.dev/relabel/internal/testcluster"
)

// readyPods follows the Ready pods behind a selector, as a Service would
// count its endpoints, and keeps the fewest seen.
type readyPods struct {
	mu     sync.Mutex
	ready  map[string]bool
	fewest int
	total  int // pods seen, to tell "never watched" from "never dropped"
}

func watchReadyPods(t *testing.T, c *testcluster.Cluster, ns, selector string) *readyPods {
	t.Helper()
	r := &readyPods{ready: map[string]bool{}, fewest: -1}
	factory := informers.NewSharedInformerFactoryWithOptions(c.Kube, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector }))
	informer := factory.Core().V1().Pods().Informer()
	update := func(obj interface{}, gone bool) {
		pod, ok := obj.(*corev1.Pod)
		if !ok {
			if tomb, isTomb := obj.(cache.DeletedFinalStateUnknown); isTomb {
				pod, ok = tomb.Obj.(*corev1.Pod)
			}
			if !ok {
				return
			}
		}
		serving := !gone && pod.DeletionTimestamp == nil && isPodReady(pod)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.total++
		if serving {
			r.ready[pod.Name] = true
		} else {
			delete(r.ready, pod.Name)
		}
		if r.fewest < 0 || len(r.ready) < r.fewest {
			r.fewest = len(r.ready)
		}
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { update(obj, false) },
		UpdateFunc: func(_, obj interface{}) { update(obj, false) },
		DeleteFunc: func(obj interface{}) { update(obj, true) },
	}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	factory.Start(stop)
	if !cache.WaitForCacheSync(stop, informer.HasSynced) {
		t.Fatal("the pod informer did not sync")
	}
	// Counting starts from the synced state, not from the first pod listed.
	r.mu.Lock()
	r.fewest = len(r.ready)
	r.mu.Unlock()
	return r
}

func (r *readyPods) Fewest() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fewest
}

func isPodReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// rolloutHealth reads what Argo Rollouts says of a Rollout.
func rolloutHealth(ro *unstructured.Unstructured) (phase string, available int64, observed string) {
	phase, _, _ = unstructured.NestedString(ro.Object, "status", "phase")
	available, _, _ = unstructured.NestedInt64(ro.Object, "status", "availableReplicas")
	observed, _, _ = unstructured.NestedString(ro.Object, "status", "observedGeneration")
	return phase, available, observed
}

// TestMigrateArgoRolloutKeepsAvailability migrates a Rollout managed by the
// real Argo Rollouts controller, with pods that take 1–6 s to become ready:
// the ready pods behind its selector never drop below replicas −
// maxUnavailable, and when relabel reports it migrated Argo Rollouts calls
// the new Rollout Healthy with every replica available.
func TestMigrateArgoRolloutKeepsAvailability(t *testing.T) {
	c := testcluster.Rollouts(t)
	ns := c.Namespace(t)
	const replicas, maxUnavailable = 5, 1
	c.ApplyYAML(t, ns, []byte(fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: checkout, labels: {app: checkout}}
spec:
  replicas: %d
  selector: {matchLabels: {app: checkout}}
  strategy:
    canary: {maxUnavailable: %d, maxSurge: 1, steps: []}
  template:
    metadata:
      labels: {app: checkout}
      annotations: {%q: 1s, %q: 6s}
    spec: {containers: [{name: checkout, image: example.com/checkout:1}]}
`, replicas, maxUnavailable, testcluster.AnnotationPodReadyDelay, testcluster.AnnotationPodReadyJitter)))
	testcluster.Eventually(t, 3*time.Minute, "the Rollout to be Healthy", func(ctx context.Context) (bool, error) {
		ro, err := c.Dynamic.Resource(testcluster.ArgoRollouts).Namespace(ns).Get(ctx, "checkout", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		phase, available, _ := rolloutHealth(ro)
		return phase == "Healthy" && available == replicas, nil
	})
	before := get(t, c, testcluster.ArgoRollouts, ns, "checkout")
	pods := watchReadyPods(t, c, ns, "app=checkout")

	r := relabel(t, c, nil, "--label", "team=core", "--gvr", "rollouts.argoproj.io", "-n", ns, "--yes", "--backup-dir", t.TempDir(), "-v", "1")
	if r.code != 0 {
		t.Fatalf("exit %d, want 0", r.code)
	}
	// At the moment relabel said migrated:
	after := get(t, c, testcluster.ArgoRollouts, ns, "checkout")
	phase, available, observed := rolloutHealth(after)
	if phase != "Healthy" || available != replicas || observed != fmt.Sprint(after.GetGeneration()) {
		t.Errorf("the new Rollout is %s with %d/%d available, observed generation %q of %d; want Healthy, all available, observed",
			phase, available, replicas, observed, after.GetGeneration())
	}
	if after.GetUID() == before.GetUID() {
		t.Error("the Rollout was not recreated")
	}
	if sel, _, _ := unstructured.NestedStringMap(after.Object, "spec", "selector", "matchLabels"); sel["team"] != "core" {
		t.Errorf("selector %v, want team=core", sel)
	}
	if fewest := pods.Fewest(); fewest < replicas-maxUnavailable {
		t.Errorf("ready pods dropped to %d during the migration, want at least %d", fewest, replicas-maxUnavailable)
	} else {
		t.Logf("fewest ready pods behind app=checkout during the migration: %d of %d", fewest, replicas)
	}
	if _, err := c.Dynamic.Resource(testcluster.ArgoRollouts).Namespace(ns).Get(context.Background(), "checkout-temp", metav1.GetOptions{}); !isNotFound(err) {
		t.Errorf("the copy is left (err %v)", err)
	}
	if !strings.Contains(r.stderr, "copy-ready") {
		t.Errorf("no copy-ready step reported")
	}
}

// TestSlowStatusIsNotReady migrates a custom resource whose controller writes
// its status only seconds after each object appears: the original is
// deleted only after the copy's status said it serves, and relabel reports
// migrated only once the recreated object's status does.
func TestSlowStatusIsNotReady(t *testing.T) {
	c := testcluster.Get(t)
	installCRDs(t, c)
	ns := c.Namespace(t)

	// The order in which the watch saw things happen.
	var mu sync.Mutex
	var seen []string
	factory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(c.Dynamic, 0, ns, nil)
	informer := factory.ForResource(rollouts).Informer()
	record := func(obj interface{}, deleted bool) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			if tomb, isTomb := obj.(cache.DeletedFinalStateUnknown); isTomb {
				u, ok = tomb.Obj.(*unstructured.Unstructured)
			}
			if !ok {
				return
			}
		}
		event := u.GetName() + " " + string(u.GetUID())
		switch observed, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration"); {
		case deleted:
			event += " deleted"
		case observed == u.GetGeneration():
			event += " status"
		default:
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if len(seen) == 0 || seen[len(seen)-1] != event {
			seen = append(seen, event)
		}
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { record(obj, false) },
		UpdateFunc: func(_, obj interface{}) { record(obj, false) },
		DeleteFunc: func(obj interface{}) { record(obj, true) },
	}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	factory.Start(stop)
	factory.WaitForCacheSync(stop)

	c.ApplyYAML(t, ns, []byte(fmt.Sprintf(`apiVersion: demo.relabel.dev/v1alpha1
kind: Rollout
metadata:
  name: slow
  labels: {app: slow}
  annotations: {%q: 4s}
spec:
  replicas: 2
  selector: {matchLabels: {app: slow}}
  template:
    metadata: {labels: {app: slow}}
`, annotationStatusDelay)))
	testcluster.Eventually(t, time.Minute, "the original's status", func(ctx context.Context) (bool, error) {
		u, err := c.Dynamic.Resource(rollouts).Namespace(ns).Get(ctx, "slow", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		observed, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
		return observed == u.GetGeneration(), nil
	})
	original := get(t, c, rollouts, ns, "slow")

	r := relabel(t, c, nil, "--label", "team=core", "--gvr", "rollouts.demo.relabel.dev", "-n", ns, "--yes", "--backup-dir", t.TempDir())
	if r.code != 0 {
		t.Fatalf("exit %d, want 0", r.code)
	}
	recreated := get(t, c, rollouts, ns, "slow")
	if observed, _, _ := unstructured.NestedInt64(recreated.Object, "status", "observedGeneration"); observed != recreated.GetGeneration() {
		t.Errorf("relabel reported migrated before the recreated object's status was written")
	}
	mu.Lock()
	events := append([]string(nil), seen...)
	mu.Unlock()
	t.Logf("events: %v", events)
	index := func(prefix, suffix string) int {
		for i, e := range events {
			if strings.HasPrefix(e, prefix) && strings.HasSuffix(e, suffix) {
				return i
			}
		}
		return -1
	}
	copyStatus := index("slow-temp ", " status")
	originalDeleted := index("slow "+string(original.GetUID()), " deleted")
	if copyStatus < 0 || originalDeleted < 0 || copyStatus > originalDeleted {
		t.Errorf("the copy's status (event %d) must come before the original's deletion (event %d)", copyStatus, originalDeleted)
	}
}
