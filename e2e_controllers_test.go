package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"relabel.dev/relabel/internal/testcluster"
)

// The tests of this file prove the test clusters' controllers and pod timing:
// Argo Rollouts' real controller makes a Rollout healthy, kwok's stages hold
// a pod that asks for it Pending for the delay before it is Ready, and pods
// that do not ask are Ready at once, as the other tests expect.

const controllersRollout = `
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  strategy:
    canary: {steps: []}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: example.com/web:1}]}
`

// podStates records, per pod of a namespace, whether kwok's general path was
// seen: Pending with a pod IP and containers creating, before Ready.
type podStates struct {
	mu      sync.Mutex
	pending map[string]bool
}

func watchPodStates(t *testing.T, c *testcluster.Cluster, ns string) *podStates {
	t.Helper()
	s := &podStates{pending: map[string]bool{}}
	factory := informers.NewSharedInformerFactoryWithOptions(c.Kube, 0, informers.WithNamespace(ns))
	informer := factory.Core().V1().Pods().Informer()
	on := func(obj interface{}) {
		pod, ok := obj.(*corev1.Pod)
		if !ok || pod.Status.Phase != corev1.PodPending || pod.Status.PodIP == "" || len(pod.Status.ContainerStatuses) == 0 {
			return
		}
		if w := pod.Status.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != "ContainerCreating" {
			return
		}
		if ready, _ := readyCondition(pod); ready != nil && ready.Status == corev1.ConditionFalse {
			s.mu.Lock()
			s.pending[pod.Name] = true
			s.mu.Unlock()
		}
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    on,
		UpdateFunc: func(_, obj interface{}) { on(obj) },
	}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	factory.Start(stop)
	if !cache.WaitForCacheSync(stop, informer.HasSynced) {
		t.Fatal("pod informer did not sync")
	}
	return s
}

func (s *podStates) sawPending(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending[name]
}

// readyCondition returns the pod's Ready condition and whether it is True.
func readyCondition(pod *corev1.Pod) (*corev1.PodCondition, bool) {
	for i := range pod.Status.Conditions {
		if cond := &pod.Status.Conditions[i]; cond.Type == corev1.PodReady {
			return cond, cond.Status == corev1.ConditionTrue
		}
	}
	return nil, false
}

// readyAfter is how long after its creation a ready pod became Ready, to the
// second (the API's timestamps have no more).
func readyAfter(t *testing.T, pod *corev1.Pod) time.Duration {
	t.Helper()
	cond, ready := readyCondition(pod)
	if !ready {
		t.Fatalf("pod %s is not ready: %+v", pod.Name, pod.Status.Conditions)
	}
	return cond.LastTransitionTime.Sub(pod.CreationTimestamp.Time)
}

// logRolloutsController logs the end of the controller's log when the test failed.
func logRolloutsController(t *testing.T, c *testcluster.Cluster) {
	t.Cleanup(func() {
		if !t.Failed() || c.RolloutsLog == "" {
			return
		}
		f, err := os.Open(c.RolloutsLog)
		if err != nil {
			t.Logf("controller log: %v", err)
			return
		}
		defer f.Close()
		if info, err := f.Stat(); err == nil && info.Size() > 8<<10 {
			_, _ = f.Seek(-8<<10, io.SeekEnd)
		}
		data, _ := io.ReadAll(f)
		t.Logf("the end of %s:\n%s", c.RolloutsLog, data)
	})
}

func TestControllersRolloutHealthy(t *testing.T) {
	c := testcluster.Rollouts(t)
	logRolloutsController(t, c)
	ns := c.Namespace(t)
	states := watchPodStates(t, c, ns)

	const delay = 3 * time.Second
	objs, err := testcluster.Decode([]byte(controllersRollout))
	if err != nil {
		t.Fatal(err)
	}
	rollout := objs[0]
	if err := unstructured.SetNestedStringMap(rollout.Object, testcluster.PodReadyDelay(delay), "spec", "template", "metadata", "annotations"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(context.Background(), ns, rollout); err != nil {
		t.Fatalf("creating the Rollout: %v", err)
	}

	rollouts := c.Dynamic.Resource(testcluster.ArgoRollouts).Namespace(ns)
	var status map[string]interface{}
	testcluster.Eventually(t, 2*time.Minute, "Rollout web Healthy with 3 available replicas", func(ctx context.Context) (bool, error) {
		got, err := rollouts.Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		status, _, _ = unstructured.NestedMap(got.Object, "status")
		available, _, _ := unstructured.NestedInt64(got.Object, "status", "availableReplicas")
		phase, _, _ := unstructured.NestedString(got.Object, "status", "phase")
		return phase == "Healthy" && available == 3 && fmt.Sprint(status["observedGeneration"]) == fmt.Sprint(got.GetGeneration()), nil
	})
	t.Logf("Rollout status: phase %v, replicas %v, ready %v, available %v, stableRS %v",
		status["phase"], status["replicas"], status["readyReplicas"], status["availableReplicas"], status["stableRS"])

	// Its ReplicaSet, owned by the Rollout and named by the pod template hash.
	rss, err := c.Kube.AppsV1().ReplicaSets(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var rs *appsv1.ReplicaSet
	for i := range rss.Items {
		if owner := metav1.GetControllerOf(&rss.Items[i]); owner != nil && owner.Kind == "Rollout" && owner.Name == "web" {
			rs = &rss.Items[i]
		}
	}
	if len(rss.Items) != 1 || rs == nil {
		t.Fatalf("%d ReplicaSets in %s, want 1 owned by Rollout web", len(rss.Items), ns)
	}
	hash := rs.Labels["rollouts-pod-template-hash"]
	if hash == "" || status["stableRS"] != hash || rs.Status.ReadyReplicas != 3 {
		t.Errorf("ReplicaSet %s: hash %q, ready %d; want the Rollout's stableRS %v and 3 ready", rs.Name, hash, rs.Status.ReadyReplicas, status["stableRS"])
	}

	// Its pods: each held Pending for the delay, then Ready.
	pods, err := c.Kube.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "rollouts-pod-template-hash=" + hash})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 3 {
		t.Fatalf("%d pods of ReplicaSet %s, want 3", len(pods.Items), rs.Name)
	}
	sort.Slice(pods.Items, func(i, j int) bool {
		return pods.Items[i].CreationTimestamp.Before(&pods.Items[j].CreationTimestamp)
	})
	var after []string
	for i := range pods.Items {
		pod := &pods.Items[i]
		if owner := metav1.GetControllerOf(pod); owner == nil || owner.Name != rs.Name {
			t.Errorf("pod %s is not ReplicaSet %s's", pod.Name, rs.Name)
		}
		d := readyAfter(t, pod)
		after = append(after, fmt.Sprintf("%s %s", pod.Name, d))
		// Both timestamps are whole seconds, rounded down: a wait of at least
		// the delay shows as at least the delay.
		if d < delay {
			t.Errorf("pod %s Ready %s after its creation, want at least %s", pod.Name, d, delay)
		}
		if !states.sawPending(pod.Name) {
			t.Errorf("pod %s was never seen Pending with containers creating before Ready", pod.Name)
		}
	}
	t.Logf("pods Ready after their creation (to the second): %s", strings.Join(after, ", "))
}

func TestControllersDeploymentReadyAtOnce(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	replicas := int32(3)
	labels := map[string]string{"app": "plain"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "plain", Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "plain", Image: "example.com/plain:1"}}},
			},
		},
	}
	if _, err := c.Kube.AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, time.Minute, "Deployment plain available", func(ctx context.Context) (bool, error) {
		got, err := c.Kube.AppsV1().Deployments(ns).Get(ctx, "plain", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return got.Status.ObservedGeneration == got.Generation && got.Status.AvailableReplicas == replicas, nil
	})
	pods, err := c.Kube.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=plain"})
	if err != nil {
		t.Fatal(err)
	}
	var after []string
	for i := range pods.Items {
		after = append(after, fmt.Sprintf("%s %s", pods.Items[i].Name, readyAfter(t, &pods.Items[i])))
	}
	if len(after) != int(replicas) {
		t.Errorf("%d pods, want %d", len(after), replicas)
	}
	t.Logf("pods Ready after their creation (to the second): %s", strings.Join(after, ", "))
}
