package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"relabel.dev/relabel/engine"
	"relabel.dev/relabel/internal/cli"
	"relabel.dev/relabel/internal/testcluster"
)

// podTracker records, while a migration runs, the fewest ready pods of an
// app at once and the most nodes that had none of its ready pods at once.
type podTracker struct {
	mu           sync.Mutex
	pods         map[string]*corev1.Pod
	app          string
	nodes        []string
	lowestReady  int
	mostNodesOut int
	synced       bool
	lowestAt     string // the pods when the fewest were ready, for the failure message
}

func (p *podTracker) snapshot() string {
	var lines []string
	for _, q := range p.pods {
		lines = append(lines, fmt.Sprintf("%s node=%s ready=%v deleting=%v phase=%s", q.Name, q.Spec.NodeName, podReady(q), q.DeletionTimestamp != nil, q.Status.Phase))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func trackPods(t *testing.T, c *testcluster.Cluster, ns, app string) *podTracker {
	t.Helper()
	nodes, err := c.Kube.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := &podTracker{pods: map[string]*corev1.Pod{}, app: app, lowestReady: -1}
	for _, n := range nodes.Items {
		p.nodes = append(p.nodes, n.Name)
	}
	stop := make(chan struct{})
	factory := informers.NewSharedInformerFactoryWithOptions(c.Kube, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = "app=" + app }))
	informer := factory.Core().V1().Pods().Informer()
	on := func(obj interface{}, deleted bool) {
		pod, ok := obj.(*corev1.Pod)
		if !ok {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				pod, _ = tomb.Obj.(*corev1.Pod)
			}
		}
		if pod == nil {
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if deleted {
			delete(p.pods, pod.Name)
		} else {
			p.pods[pod.Name] = pod
		}
		p.measure()
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { on(obj, false) },
		UpdateFunc: func(_, obj interface{}) { on(obj, false) },
		DeleteFunc: func(obj interface{}) { on(obj, true) },
	}); err != nil {
		t.Fatal(err)
	}
	factory.Start(stop)
	factory.WaitForCacheSync(stop)
	// Counting starts from the full initial list, read from the store: the
	// handlers may not have seen all of it yet.
	p.mu.Lock()
	for _, obj := range informer.GetStore().List() {
		pod := obj.(*corev1.Pod)
		p.pods[pod.Name] = pod
	}
	p.synced = true
	p.measure()
	p.mu.Unlock()
	t.Cleanup(func() { close(stop) })
	return p
}

// measure updates the records; p.mu is held.
func (p *podTracker) measure() {
	if !p.synced {
		return
	}
	ready, perNode := 0, map[string]int{}
	for _, q := range p.pods {
		if q.DeletionTimestamp == nil && podReady(q) {
			ready++
			perNode[q.Spec.NodeName]++
		}
	}
	if p.lowestReady == -1 || ready < p.lowestReady {
		p.lowestReady = ready
		p.lowestAt = p.snapshot()
	}
	out := 0
	for _, n := range p.nodes {
		if perNode[n] == 0 {
			out++
		}
	}
	p.mostNodesOut = max(p.mostNodesOut, out)
}

func (p *podTracker) lowest() (ready, nodesOut int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lowestReady, p.mostNodesOut
}

// statefulSetWithVolumes creates PersistentVolumes for a StatefulSet's claims
// up front, so the claims bind to known volumes.
func statefulSetWithVolumes(t *testing.T, c *testcluster.Cluster, ns string, replicas int) {
	t.Helper()
	for i := range replicas {
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-data-%d", ns, i)},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				StorageClassName:              "relabel-static",
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp/" + ns}},
				ClaimRef:                      &corev1.ObjectReference{Namespace: ns, Name: fmt.Sprintf("data-vol-%d", i)},
			},
		}
		if _, err := c.Kube.CoreV1().PersistentVolumes().Create(context.Background(), pv, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = c.Kube.CoreV1().PersistentVolumes().Delete(context.Background(), pv.Name, metav1.DeleteOptions{})
		})
	}
	c.ApplyYAML(t, ns, []byte(fmt.Sprintf(`
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: vol, labels: {app: vol}}
spec:
  replicas: %d
  serviceName: vol
  selector: {matchLabels: {app: vol}}
  template:
    metadata: {labels: {app: vol}}
    spec:
      containers:
      - name: db
        image: example.com/db:1
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      storageClassName: relabel-static
      resources: {requests: {storage: 1Gi}}
`, replicas)))
}

// claims returns the StatefulSet's claims: name -> UID, all of them bound.
func claims(t *testing.T, c *testcluster.Cluster, ns string) map[string]string {
	t.Helper()
	l, err := c.Kube.CoreV1().PersistentVolumeClaims(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, pvc := range l.Items {
		if pvc.Status.Phase != corev1.ClaimBound {
			t.Errorf("claim %s is %s, not bound", pvc.Name, pvc.Status.Phase)
		}
		out[pvc.Name] = string(pvc.UID)
	}
	return out
}

func podNames(t *testing.T, c *testcluster.Cluster, ns, selector string) []string {
	t.Helper()
	l, err := c.Kube.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range l.Items {
		names = append(names, p.Name)
	}
	sort.Strings(names)
	return names
}

func TestAdoptStatefulSetKeepsPodsAndVolumes(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	statefulSetWithVolumes(t, c, ns, 3)
	waitRolledOut(t, c, ns)
	before := get(t, c, statefulsets, ns, "vol")
	claimsBefore := claims(t, c, ns)
	if len(claimsBefore) != 3 {
		t.Fatalf("claims %v, want 3", claimsBefore)
	}
	pods := trackPods(t, c, ns, "vol")

	r := relabel(t, c, nil, "--label", "stage=production", "-n", ns, "--gvr", "sts", "--yes", "--backup-dir", t.TempDir())
	if r.code != 0 || !strings.Contains(r.stderr, "(adopt)") {
		t.Fatalf("exit %d; want a migration with the adopt strategy", r.code)
	}
	waitRolledOut(t, c, ns)
	assertMigrated(t, c, ns, workloadRef{statefulsets, "vol"}, before, "stage", "production")
	if got := podNames(t, c, ns, "app=vol,stage=production"); strings.Join(got, ",") != "vol-0,vol-1,vol-2" {
		t.Errorf("pods %v, want vol-0, vol-1, vol-2 with the label", got)
	}
	if after := claims(t, c, ns); fmt.Sprint(after) != fmt.Sprint(claimsBefore) {
		t.Errorf("claims changed:\nbefore %v\nafter  %v", claimsBefore, after)
	}
	ready, _ := pods.lowest()
	t.Logf("fewest ready pods during the migration: %d of 3", ready)
	if ready < 2 {
		t.Errorf("ready pods dropped to %d, want never below replicas-1 = 2", ready)
	}
	assertNoLeftovers(t, c, ns)
}

const hostPortDaemonSet = `
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: exporter, labels: {app: exporter}}
spec:
  selector: {matchLabels: {app: exporter}}
  template:
    metadata: {labels: {app: exporter}}
    spec:
      containers:
      - name: exporter
        image: example.com/node-exporter:1
        ports: [{containerPort: 9100, hostPort: 9100}]
`

func TestAdoptDaemonSetWithHostPort(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	c.ApplyYAML(t, ns, []byte(hostPortDaemonSet))
	waitRolledOut(t, c, ns)
	before := get(t, c, daemonsets, ns, "exporter")

	t.Run("temp-copy is refused", func(t *testing.T) {
		r := relabel(t, c, nil, "--label", "stage=production", "-n", ns, "--strategy", "temp-copy", "--yes", "--backup-dir", t.TempDir())
		if r.code != 2 || !strings.Contains(r.stderr, "host ports") {
			t.Errorf("exit %d, stderr %q; want 2 naming the host ports", r.code, r.stderr)
		}
		assertUntouched(t, c, ns, map[workloadRef]*unstructuredObj{{daemonsets, "exporter"}: before})
	})

	pods := trackPods(t, c, ns, "exporter")
	r := relabel(t, c, nil, "--label", "stage=production", "-n", ns, "--yes", "--backup-dir", t.TempDir())
	if r.code != 0 || !strings.Contains(r.stderr, "(adopt)") {
		t.Fatalf("exit %d; want auto to choose adopt", r.code)
	}
	waitRolledOut(t, c, ns)
	assertMigrated(t, c, ns, workloadRef{daemonsets, "exporter"}, before, "stage", "production")
	_, out := pods.lowest()
	t.Logf("most nodes without a ready exporter at once: %d", out)
	if out > 1 {
		t.Errorf("%d nodes were without a ready pod at once, want at most one rolling step", out)
	}
	assertNoLeftovers(t, c, ns)
}

func TestAdoptDeploymentEndsWithOneReplicaSet(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	applyDemo(t, c, ns)
	waitRolledOut(t, c, ns)
	before := get(t, c, deployments, ns, "web")
	pods := trackPods(t, c, ns, "web")

	r := relabel(t, c, nil, "--label", "stage=production", "-n", ns, "--gvr", "deploy", "-l", "app=web", "--strategy", "adopt", "--yes", "--backup-dir", t.TempDir())
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	waitRolledOut(t, c, ns)
	assertMigrated(t, c, ns, workloadRef{deployments, "web"}, before, "stage", "production")
	if ready, _ := pods.lowest(); ready < 1 {
		t.Errorf("ready pods of app=web dropped to %d", ready)
	}
	web := get(t, c, deployments, ns, "web")
	testcluster.Eventually(t, time.Minute, "one ReplicaSet of web serving", func(ctx context.Context) (bool, error) {
		serving := 0
		for _, rs := range list(t, c, replicasets, ns) {
			ref := metav1.GetControllerOf(&rs)
			if ref == nil || ref.UID != web.GetUID() {
				continue
			}
			if n, _, _ := unstructuredInt(rs.Object, "spec", "replicas"); n > 0 {
				serving++
			}
		}
		return serving == 1, nil
	})
	assertNoLeftovers(t, c, ns)
}

// TestAdoptCrashSafety kills relabel right after each adopt step and reruns it.
func TestAdoptCrashSafety(t *testing.T) {
	c := testcluster.Get(t)
	steps := []engine.Step{engine.StepBackedUp, engine.StepDependentsLabelled, engine.StepOrphaned,
		engine.StepRecreated, engine.StepReady, engine.StepOrphansDeleted}
	for _, step := range steps {
		t.Run(string(step), func(t *testing.T) {
			ns := c.Namespace(t)
			applyDemo(t, c, ns)
			waitRolledOut(t, c, ns)
			before := get(t, c, statefulsets, ns, "db")
			args := []string{"--label", "stage=production", "-n", ns, "--gvr", "sts", "--yes", "--backup-dir", t.TempDir()}
			if r := relabel(t, c, []string{cli.EnvCrashAfter + "=" + string(step)}, args...); !r.killed {
				t.Fatalf("relabel was not killed after %s (exit %d)", step, r.code)
			}
			if r := relabel(t, c, nil, args...); r.code != 0 {
				t.Fatalf("rerun after a crash at %s: exit %d", step, r.code)
			}
			waitRolledOut(t, c, ns)
			assertMigrated(t, c, ns, workloadRef{statefulsets, "db"}, before, "stage", "production")
			if got := podNames(t, c, ns, "app=db,stage=production"); strings.Join(got, ",") != "db-0,db-1" {
				t.Errorf("pods %v, want db-0 and db-1 with the label", got)
			}
			assertNoLeftovers(t, c, ns)
			// Finished: a third run has nothing left to do.
			if r := relabel(t, c, nil, args...); r.code != 0 || !strings.Contains(r.stdout, "Nothing to migrate") {
				t.Errorf("third run: exit %d, stdout %q", r.code, r.stdout)
			}
		})
	}
}

type unstructuredObj = unstructured.Unstructured

func unstructuredInt(obj map[string]interface{}, path ...string) (int64, bool, error) {
	return unstructured.NestedInt64(obj, path...)
}
