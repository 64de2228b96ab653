package main

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"relabel.dev/relabel/internal/cli"
	"relabel.dev/relabel/internal/testcluster"
)

// A copy whose pods a ResourceQuota refuses is rolled back as soon as the
// deployment controller reports ReplicaFailure, whatever --timeout says.
func TestQuotaBlockedCopyFailsFast(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	c.ApplyYAML(t, ns, []byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: full, labels: {app: full}}
spec:
  replicas: 2
  selector: {matchLabels: {app: full}}
  template:
    metadata: {labels: {app: full}}
    spec: {containers: [{name: c, image: example.com/c:1}]}
`))
	waitRolledOut(t, c, ns)
	quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "pods"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("2")}}}
	if _, err := c.Kube.CoreV1().ResourceQuotas(ns).Create(context.Background(), quota, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, time.Minute, "the quota to count the pods", func(ctx context.Context) (bool, error) {
		q, err := c.Kube.CoreV1().ResourceQuotas(ns).Get(ctx, "pods", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		used := q.Status.Used[corev1.ResourcePods]
		return used.Value() == 2, nil
	})
	before := get(t, c, deployments, ns, "full")

	r := relabel(t, c, nil, "--label", "stage=production", "-n", ns, "--yes", "--timeout", "10m", "--backup-dir", t.TempDir(), "-o", "json")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	report := decodeJSON[cli.MigrationReport](t, r.stdout)
	if report.Summary["failed"] != 1 || !strings.Contains(report.Items[0].Message, "exceeded quota") ||
		!strings.Contains(report.Items[0].Message, "rolled back") {
		t.Errorf("report %+v, want one failure, rolled back, naming the quota", report)
	}
	after := get(t, c, deployments, ns, "full")
	if after.GetUID() != before.GetUID() || after.GetLabels()["stage"] != "" {
		t.Errorf("the original was touched: uid %s -> %s, labels %v", before.GetUID(), after.GetUID(), after.GetLabels())
	}
	testcluster.Eventually(t, 30*time.Second, "the copy to be gone", func(ctx context.Context) (bool, error) {
		_, err := c.Dynamic.Resource(deployments).Namespace(ns).Get(ctx, "full-temp", metav1.GetOptions{})
		return isNotFound(err), nil
	})
}

// A paused Deployment is skipped with the reason: its copy would never get
// pods. Nothing is written.
func TestPausedDeploymentIsSkipped(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	c.ApplyYAML(t, ns, []byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: held, labels: {app: held}}
spec:
  replicas: 1
  paused: true
  selector: {matchLabels: {app: held}}
  template:
    metadata: {labels: {app: held}}
    spec: {containers: [{name: c, image: example.com/c:1}]}
`))
	before := get(t, c, deployments, ns, "held")
	t0 := time.Now()
	r := relabel(t, c, nil, "--label", "stage=production", "-n", ns, "--yes", "--backup-dir", t.TempDir(), "-o", "json")
	if r.code != 0 {
		t.Fatalf("exit %d, want 0", r.code)
	}
	if !strings.Contains(r.stderr, "skip     Deployment "+ns+"/held: paused") {
		t.Errorf("the plan does not say why the paused Deployment is skipped")
	}
	if after := get(t, c, deployments, ns, "held"); after.GetUID() != before.GetUID() || after.GetGeneration() != before.GetGeneration() {
		t.Error("the paused Deployment was changed")
	}
	if writes, _ := writesSince(t, c, t0, ns); len(writes) > 0 {
		t.Errorf("%d writes, want none: %+v", len(writes), writes)
	}
}

// An explicit temp-copy of a StatefulSet with volume claim templates would
// run the copy on new, empty volumes: refused before any write.
func TestTempCopyOfStatefulSetWithVolumesIsRefused(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	c.ApplyYAML(t, ns, []byte(`apiVersion: apps/v1
kind: StatefulSet
metadata: {name: store, labels: {app: store}}
spec:
  replicas: 1
  serviceName: store
  selector: {matchLabels: {app: store}}
  template:
    metadata: {labels: {app: store}}
    spec: {containers: [{name: c, image: example.com/c:1}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
`))
	t0 := time.Now()
	r := relabel(t, c, nil, "--label", "stage=production", "-n", ns, "--gvr", "statefulsets", "--strategy", "temp-copy", "--yes", "--backup-dir", t.TempDir())
	if r.code != 2 {
		t.Fatalf("exit %d, want 2", r.code)
	}
	if !strings.Contains(r.stderr, "volumeClaimTemplates") {
		t.Errorf("stderr does not say why: %s", r.stderr)
	}
	if writes, _ := writesSince(t, c, t0, ns); len(writes) > 0 {
		t.Errorf("%d writes, want none: %+v", len(writes), writes)
	}
}

// A Recreate Deployment is never copied: auto adopts it, and the plan says
// its pods are replaced all at once. No object named NAME-temp is ever created.
func TestRecreateDeploymentIsAdopted(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	c.ApplyYAML(t, ns, []byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: single, labels: {app: single}}
spec:
  replicas: 2
  strategy: {type: Recreate}
  selector: {matchLabels: {app: single}}
  template:
    metadata: {labels: {app: single}}
    spec: {containers: [{name: c, image: example.com/c:1}]}
`))
	waitRolledOut(t, c, ns)
	t0 := time.Now()
	plan := relabel(t, c, nil, "--label", "stage=production", "-n", ns, "--dry-run=client")
	if plan.code != 0 || !strings.Contains(plan.stdout+plan.stderr, "all at once") {
		t.Errorf("exit %d; the plan does not say the pods are replaced all at once", plan.code)
	}
	r := relabel(t, c, nil, "--label", "stage=production", "-n", ns, "--yes", "--backup-dir", t.TempDir())
	if r.code != 0 {
		t.Fatalf("exit %d, want 0", r.code)
	}
	after := get(t, c, deployments, ns, "single")
	if after.GetLabels()["stage"] != "production" {
		t.Errorf("labels %v, want stage=production", after.GetLabels())
	}
	writes, _ := writesSince(t, c, t0, ns)
	for _, w := range writes {
		if w.ObjectRef.Resource == "deployments" && w.ObjectRef.Name == "single-temp" {
			t.Errorf("a copy was written: %+v", w)
		}
	}
}

// A custom resource whose schema has no status cannot be judged ready:
// migrating it is refused before any write, with a rule to give it.
func TestKindWithoutStatusIsRefused(t *testing.T) {
	c := testcluster.Get(t)
	c.CreateCRD(t, []byte(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.demo.relabel.dev}
spec:
  group: demo.relabel.dev
  scope: Namespaced
  names: {kind: Gadget, plural: gadgets, singular: gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              selector:
                type: object
                properties:
                  matchLabels: {type: object, additionalProperties: {type: string}}
              template:
                type: object
                x-kubernetes-preserve-unknown-fields: true
`))
	ns := c.Namespace(t)
	c.ApplyYAML(t, ns, []byte(`apiVersion: demo.relabel.dev/v1
kind: Gadget
metadata: {name: g, labels: {app: g}}
spec:
  selector: {matchLabels: {app: g}}
  template: {metadata: {labels: {app: g}}}
`))
	t0 := time.Now()
	r := relabel(t, c, nil, "--label", "stage=production", "-n", ns, "--gvr", "gadgets.demo.relabel.dev", "--yes", "--backup-dir", t.TempDir())
	if r.code != 2 || !strings.Contains(r.stderr, "readiness:") {
		t.Errorf("exit %d, want 2 with a readiness rule to give", r.code)
	}
	if writes := writesOnly(t, c, t0, ns); len(writes) > 0 {
		t.Errorf("%d writes, want none: %+v", len(writes), writes)
	}
}
