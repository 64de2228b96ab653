package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"relabel.dev/relabel/internal/testcluster"
)

// helmCLI runs the real helm binary against one namespace of the test cluster,
// with its own configuration, cache and data directories.
type helmCLI struct {
	bin, kubeconfig, ns string
	env                 []string
}

func newHelm(t *testing.T, c *testcluster.Cluster, ns string) helmCLI {
	home := t.TempDir()
	return helmCLI{
		bin: testcluster.Helm(t), kubeconfig: c.Kubeconfig, ns: ns,
		env: []string{
			"HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
			"HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
			"HELM_DATA_HOME=" + filepath.Join(home, "data"),
		},
	}
}

func (h helmCLI) run(t *testing.T, args ...string) run {
	t.Helper()
	return commandWithin(t, 5*time.Minute, append(os.Environ(), h.env...), h.bin, append(args, "--kubeconfig", h.kubeconfig, "-n", h.ns)...)
}

// helmRevision is an entry of helm history -o json.
type helmRevision struct {
	Revision    int    `json:"revision"`
	Status      string `json:"status"`
	Description string `json:"description"`
}

func (h helmCLI) history(t *testing.T, release string) []helmRevision {
	t.Helper()
	r := h.run(t, "history", release, "-o", "json")
	if r.code != 0 {
		t.Fatalf("helm history %s: exit %d: %s", release, r.code, r.stderr)
	}
	return decodeJSON[[]helmRevision](t, r.stdout)
}

// assertHistory checks the status of every revision of the release, oldest
// first, and returns the last one.
func (h helmCLI) assertHistory(t *testing.T, release string, want ...string) helmRevision {
	t.Helper()
	hist := h.history(t, release)
	var got []string
	for _, rev := range hist {
		got = append(got, rev.Status)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("helm history %s: statuses %v, want %v", release, got, want)
	}
	return hist[len(hist)-1]
}

// deployedStatus is what helm status -o json says of the release.
func (h helmCLI) status(t *testing.T, release string) (status string, revision int) {
	t.Helper()
	r := h.run(t, "status", release, "-o", "json")
	if r.code != 0 {
		t.Fatalf("helm status %s: exit %d: %s", release, r.code, r.stderr)
	}
	s := decodeJSON[struct {
		Version int `json:"version"`
		Info    struct {
			Status string `json:"status"`
		} `json:"info"`
	}](t, r.stdout)
	return s.Info.Status, s.Version
}

// servingWatch records, from its start to the end of the test, every event
// where a Deployment or StatefulSet of ns is deleted or has no ready replica.
type servingWatch struct {
	mu     sync.Mutex
	losses []string
}

func watchServing(t *testing.T, c *testcluster.Cluster, ns string) *servingWatch {
	t.Helper()
	w := &servingWatch{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, gvr := range []schema.GroupVersionResource{deployments, statefulsets} {
		watcher, err := c.Dynamic.Resource(gvr).Namespace(ns).Watch(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("watching %s in %s: %v", gvr.Resource, ns, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer watcher.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case ev, ok := <-watcher.ResultChan():
					if !ok {
						w.record(fmt.Sprintf("the watch of %s ended", gvr.Resource))
						return
					}
					obj, isObj := ev.Object.(*unstructured.Unstructured)
					if !isObj {
						w.record(fmt.Sprintf("watch of %s: %v", gvr.Resource, ev.Object))
						continue
					}
					ready, _, _ := unstructured.NestedInt64(obj.Object, "status", "readyReplicas")
					switch {
					case ev.Type == watch.Deleted:
						w.record(fmt.Sprintf("%s %s deleted", obj.GetKind(), obj.GetName()))
					case ready < 1:
						w.record(fmt.Sprintf("%s %s (uid %s) had no ready replica", obj.GetKind(), obj.GetName(), obj.GetUID()))
					}
				}
			}
		}()
	}
	return w
}

func (w *servingWatch) record(s string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.losses = append(w.losses, s)
}

func (w *servingWatch) assertServed(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.losses) > 0 {
		t.Errorf("the workloads stopped serving: %v", w.losses)
	}
}

// configVersion is CONFIG_VERSION in the first container of obj's pod
// template: the value each chart revision sets.
func configVersion(t *testing.T, obj *unstructured.Unstructured) string {
	t.Helper()
	containers, _, err := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
	if err != nil || len(containers) == 0 {
		t.Fatalf("%s %s: no containers (%v)", obj.GetKind(), obj.GetName(), err)
	}
	env, _, _ := unstructured.NestedSlice(containers[0].(map[string]interface{}), "env")
	for _, e := range env {
		if m, _ := e.(map[string]interface{}); m["name"] == "CONFIG_VERSION" {
			s, _ := m["value"].(string)
			return s
		}
	}
	return ""
}

// rewriteChart copies the chart to a new directory and rewrites it with
// relabel manifests: the label goes into the selectorLabels define, so that
// selectors, pod templates, Services and metadata all carry it.
func rewriteChart(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if out, err := exec.Command("cp", "-R", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("copying %s: %v\n%s", src, err, out)
	}
	if out, err := exec.Command(relabelBin, "manifests", "--label", "stage=prod", dst).CombinedOutput(); err != nil {
		t.Fatalf("relabel manifests %s: %v\n%s", dst, err, out)
	}
	data, err := os.ReadFile(filepath.Join(dst, "templates", "_helpers.tpl"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte("stage: prod\n")) {
		t.Fatalf("relabel manifests left the selectorLabels define without stage: prod:\n%s", data)
	}
	return dst
}

// TestHelmAfterMigration installs a chart with the real Helm, migrates its
// workloads with relabel, then upgrades, force-upgrades and rolls the release
// back, with the chart as it was and rewritten to carry the label, and records
// what Helm does to the migrated workloads. The workloads are never deleted
// and never without a ready replica, whatever Helm does.
func TestHelmAfterMigration(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	h := newHelm(t, c, ns)
	const release, chart = "shop", "testdata/helm/web"
	rewritten := rewriteChart(t, chart)
	deploy, sts, svc := "shop-web", "shop-web-cache", "shop-web"
	services := schema.GroupVersionResource{Version: "v1", Resource: "services"}

	// Every step needs the ones before it.
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}
	var uids map[string]types.UID
	// assertWorkloads checks both workloads kept their UIDs and the label, and
	// run the pod template of the given chart revision.
	assertWorkloads := func(t *testing.T, version string) {
		t.Helper()
		for _, o := range []*unstructured.Unstructured{get(t, c, deployments, ns, deploy), get(t, c, statefulsets, ns, sts)} {
			if o.GetUID() != uids[o.GetKind()] {
				t.Errorf("%s %s: uid %s, want %s (recreated)", o.GetKind(), o.GetName(), o.GetUID(), uids[o.GetKind()])
			}
			assertLabelled(t, o, "stage", "prod")
			if got := configVersion(t, o); got != version {
				t.Errorf("%s %s: CONFIG_VERSION %q, want %q", o.GetKind(), o.GetName(), got, version)
			}
		}
	}
	// assertPodsLabelled waits for the rollout, then checks that the current
	// ReplicaSet and every running pod carry the label.
	assertPodsLabelled := func(t *testing.T) {
		t.Helper()
		waitRolledOut(t, c, ns)
		d, err := c.Kube.AppsV1().Deployments(ns).Get(context.Background(), deploy, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rss, err := c.Kube.AppsV1().ReplicaSets(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		current := 0
		for _, rs := range rss.Items {
			if rs.Annotations["deployment.kubernetes.io/revision"] != d.Annotations["deployment.kubernetes.io/revision"] {
				continue
			}
			current++
			if rs.Spec.Selector.MatchLabels["stage"] != "prod" || rs.Spec.Template.Labels["stage"] != "prod" {
				t.Errorf("current ReplicaSet %s: selector %v, template labels %v, want stage=prod in both", rs.Name, rs.Spec.Selector.MatchLabels, rs.Spec.Template.Labels)
			}
		}
		if current != 1 {
			t.Errorf("%d ReplicaSets of Deployment %s's current revision, want 1", current, deploy)
		}
		pods, err := c.Kube.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil && p.Labels["stage"] != "prod" {
				t.Errorf("pod %s: labels %v, want stage=prod", p.Name, p.Labels)
			}
		}
	}
	serviceSelector := func(t *testing.T) map[string]string {
		t.Helper()
		return stringsAt(t, get(t, c, services, ns, svc), "spec", "selector")
	}
	step("install and migrate", func(t *testing.T) {
		if r := h.run(t, "install", release, chart, "--wait", "--timeout", "2m"); r.code != 0 {
			t.Fatalf("helm install: exit %d", r.code)
		}
		before := map[string]types.UID{
			"Deployment":  get(t, c, deployments, ns, deploy).GetUID(),
			"StatefulSet": get(t, c, statefulsets, ns, sts).GetUID(),
		}
		if r := relabel(t, c, nil, "--label", "stage=prod", "-n", ns, "--yes"); r.code != 0 {
			t.Fatalf("relabel: exit %d", r.code)
		}
		uids = map[string]types.UID{
			"Deployment":  get(t, c, deployments, ns, deploy).GetUID(),
			"StatefulSet": get(t, c, statefulsets, ns, sts).GetUID(),
		}
		for kind, uid := range uids {
			if uid == before[kind] {
				t.Errorf("%s: uid unchanged, want a recreated object", kind)
			}
		}
		assertWorkloads(t, "1")
		assertPodsLabelled(t)
		if s, rev := h.status(t, release); s != "deployed" || rev != 1 {
			t.Errorf("helm status: %s revision %d, want deployed revision 1", s, rev)
		}
	})
	serving := watchServing(t, c, ns)

	// Helm 3 patches with a three-way merge of the release's manifest, the
	// chart's and the live object: the label is in neither manifest, so it is
	// left where relabel put it.
	step("upgrade with the unchanged chart keeps the label", func(t *testing.T) {
		if r := h.run(t, "upgrade", release, chart, "--set", "config.version=2", "--wait", "--timeout", "2m"); r.code != 0 {
			t.Fatalf("helm upgrade: exit %d", r.code)
		}
		h.assertHistory(t, release, "superseded", "deployed")
		assertWorkloads(t, "2")
		assertPodsLabelled(t)
	})

	// --force replaces (PUT) each object with the chart's: the selector without
	// the label is refused as immutable, and nothing is deleted.
	step("upgrade --force with the unchanged chart is refused", func(t *testing.T) {
		if r := h.run(t, "upgrade", release, chart, "--force", "--set", "config.version=3", "--wait", "--timeout", "2m"); r.code == 0 {
			t.Fatal("helm upgrade --force: exit 0, want a failure")
		}
		last := h.assertHistory(t, release, "superseded", "deployed", "failed")
		if !strings.Contains(last.Description, "field is immutable") {
			t.Errorf("revision %d: description %q, want field is immutable", last.Revision, last.Description)
		}
		assertWorkloads(t, "2")
	})

	step("upgrade with the rewritten chart", func(t *testing.T) {
		if r := h.run(t, "upgrade", release, rewritten, "--set", "config.version=4", "--wait", "--timeout", "2m"); r.code != 0 {
			t.Fatalf("helm upgrade: exit %d", r.code)
		}
		h.assertHistory(t, release, "superseded", "superseded", "failed", "deployed")
		assertWorkloads(t, "4")
		assertPodsLabelled(t)
		if got := serviceSelector(t)["stage"]; got != "prod" {
			t.Errorf("Service %s: stage=%q in its selector, want prod (the rewritten chart has it)", svc, got)
		}
	})

	// Rolling back across the rewrite removes the label from the selector in
	// the patch: the API server refuses it for the workloads, while the
	// Service, whose selector is mutable, is rolled back.
	step("rollback to the revision before the rewrite is refused", func(t *testing.T) {
		if r := h.run(t, "rollback", release, "2", "--wait", "--timeout", "2m"); r.code == 0 {
			t.Fatal("helm rollback 2: exit 0, want a failure")
		}
		last := h.assertHistory(t, release, "superseded", "superseded", "failed", "superseded", "failed")
		if !strings.Contains(last.Description, "field is immutable") {
			t.Errorf("revision %d: description %q, want field is immutable", last.Revision, last.Description)
		}
		assertWorkloads(t, "4")
		if got, ok := serviceSelector(t)["stage"]; ok {
			t.Errorf("Service %s: stage=%q in its selector, want it rolled back (removed)", svc, got)
		}
	})

	// The failed rollback's manifest (revision 2's) is now the release's, so
	// a second rollback to revision 2 no longer removes the label: Helm's
	// three-way patch only deletes what the last manifest had. It succeeds,
	// runs revision 2's pod template, and keeps the label everywhere.
	step("rollback again succeeds and keeps the label", func(t *testing.T) {
		if r := h.run(t, "rollback", release, "2", "--wait", "--timeout", "2m"); r.code != 0 {
			t.Fatalf("helm rollback 2: exit %d", r.code)
		}
		h.assertHistory(t, release, "superseded", "superseded", "failed", "superseded", "failed", "deployed")
		assertWorkloads(t, "2")
		assertPodsLabelled(t)
	})

	// What to do instead: upgrade with the rewritten chart and the values of
	// the revision to go back to.
	step("upgrade with the rewritten chart and the old values rolls back", func(t *testing.T) {
		values := filepath.Join(t.TempDir(), "values.yaml")
		r := h.run(t, "get", "values", release, "--revision", "2", "-o", "yaml")
		if r.code != 0 {
			t.Fatalf("helm get values: exit %d", r.code)
		}
		if err := os.WriteFile(values, []byte(r.stdout), 0o644); err != nil {
			t.Fatal(err)
		}
		if r := h.run(t, "upgrade", release, rewritten, "-f", values, "--wait", "--timeout", "2m"); r.code != 0 {
			t.Fatalf("helm upgrade: exit %d", r.code)
		}
		if s, rev := h.status(t, release); s != "deployed" || rev != 7 {
			t.Errorf("helm status: %s revision %d, want deployed revision 7", s, rev)
		}
		assertWorkloads(t, "2")
		assertPodsLabelled(t)
		if got := serviceSelector(t)["stage"]; got != "prod" {
			t.Errorf("Service %s: stage=%q in its selector, want prod", svc, got)
		}
	})

	step("rollback to revision 1 is refused", func(t *testing.T) {
		if r := h.run(t, "rollback", release, "1", "--wait", "--timeout", "2m"); r.code == 0 {
			t.Fatal("helm rollback 1: exit 0, want a failure")
		}
		last := h.history(t, release)[7]
		if last.Status != "failed" || !strings.Contains(last.Description, "field is immutable") {
			t.Errorf("revision %d: %s, %q, want failed, field is immutable", last.Revision, last.Status, last.Description)
		}
		assertWorkloads(t, "2")
	})

	serving.assertServed(t)
	if _, err := c.Kube.AppsV1().Deployments(ns).Get(context.Background(), deploy+"-temp", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Deployment %s-temp: %v, want not found", deploy, err)
	}
}
