package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"relabel.dev/relabel/internal/testcluster"
)

var workloads = schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "workloads"}

// A workload CRD whose selector is not at spec.selector: discovery cannot
// recognise it, a rules file can.
const workloadCRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: workloads.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Workload, plural: workloads, singular: workload}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-preserve-unknown-fields: true
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
`

const rulesFile = `
apiVersion: relabel.dev/v1
kind: Rules
kinds:
- group: example.com
  version: v1
  kind: Workload
  resource: workloads
  namespaced: true
  selectorPath: spec.workload.selector
  templateLabelsPath: spec.workload.template.metadata.labels
  extraLabelPaths: [spec.serviceSelector]
  readiness: >-
    self.status.observedGeneration >= self.metadata.generation &&
    self.status.readyReplicas == self.spec.replicas
rules:
- name: payments
  gvrs: [example.com/v1/workloads]
  label: {key: team, value: payments}
- name: name-from-app
  gvrs: [apps/v1/deployments]
  label: {key: app.kubernetes.io/name, valueFrom: app}
`

const workloadObject = `
apiVersion: example.com/v1
kind: Workload
metadata: {name: pay, labels: {app: pay}}
spec:
  replicas: 2
  serviceSelector: {app: pay}
  workload:
    selector: {matchLabels: {app: pay}}
    template:
      metadata: {labels: {app: pay}}
      spec: {containers: [{name: pay, image: example.com/pay:1}]}
`

// fakeWorkloadController reports every Workload ready once it has "seen" it,
// as a real controller would after rolling out its pods.
func fakeWorkloadController(t *testing.T, c *testcluster.Cluster, ns string) {
	t.Helper()
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	factory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(c.Dynamic, 0, ns, nil)
	informer := factory.ForResource(workloads).Informer()
	reconcile := func(obj interface{}) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return
		}
		replicas, _, _ := unstructured.NestedInt64(u.Object, "spec", "replicas")
		ready, _, _ := unstructured.NestedInt64(u.Object, "status", "readyReplicas")
		observed, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
		if ready == replicas && observed == u.GetGeneration() {
			return
		}
		u = u.DeepCopy()
		_ = unstructured.SetNestedField(u.Object, replicas, "status", "readyReplicas")
		_ = unstructured.SetNestedField(u.Object, u.GetGeneration(), "status", "observedGeneration")
		_, _ = c.Dynamic.Resource(workloads).Namespace(ns).UpdateStatus(context.Background(), u, metav1.UpdateOptions{})
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    reconcile,
		UpdateFunc: func(_, obj interface{}) { reconcile(obj) },
	}); err != nil {
		t.Fatal(err)
	}
	factory.Start(stop)
	factory.WaitForCacheSync(stop)
}

func writeRules(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRulesFileMigratesCustomPathsWithCELReadiness(t *testing.T) {
	c := testcluster.Get(t)
	c.CreateCRD(t, []byte(workloadCRD))
	ns := c.Namespace(t)
	fakeWorkloadController(t, c, ns)
	c.ApplyYAML(t, ns, []byte(workloadObject))
	applyDemo(t, c, ns)
	waitRolledOut(t, c, ns)
	rules := writeRules(t, rulesFile)
	beforeWeb := get(t, c, deployments, ns, "web")

	// Without the rules file, the kind is unknown.
	if r := relabel(t, c, nil, "audit", "--label", "team", "-n", ns, "--gvr", "workloads.example.com"); r.code != 2 {
		t.Errorf("exit %d for a kind only a rules file describes, want 2", r.code)
	}

	r := relabel(t, c, nil, "--rules", rules, "-n", ns, "--gvr", "workloads.example.com", "--gvr", "deploy", "-l", "app in (pay,web)", "--yes", "--backup-dir", t.TempDir())
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	pay := get(t, c, workloads, ns, "pay")
	for _, path := range [][]string{
		{"spec", "workload", "selector", "matchLabels"},
		{"spec", "workload", "template", "metadata", "labels"},
		{"spec", "serviceSelector"},
		{"metadata", "labels"},
	} {
		if got := stringsAt(t, pay, path...)["team"]; got != "payments" {
			t.Errorf("workload pay: team=%q at %s, want payments", got, strings.Join(path, "."))
		}
	}
	// Another rule, another label, in the same run.
	assertMigrated(t, c, ns, workloadRef{deployments, "web"}, beforeWeb, "app.kubernetes.io/name", "web")
	if _, err := c.Dynamic.Resource(workloads).Namespace(ns).Get(context.Background(), "pay-temp", metav1.GetOptions{}); !isNotFound(err) {
		t.Errorf("the copy pay-temp remains (err %v)", err)
	}
}

func TestBadRulesWriteNothing(t *testing.T) {
	c := testcluster.Get(t)
	c.CreateCRD(t, []byte(workloadCRD))
	ns := c.Namespace(t)
	c.ApplyYAML(t, ns, []byte(workloadObject))
	before := map[workloadRef]*unstructuredObj{{workloads, "pay"}: get(t, c, workloads, ns, "pay")}
	for _, tc := range []struct {
		name, rules, want string
	}{
		{"malformed", "apiVersion: relabel.dev/v1\nkind: Rules\nkinds: [\n", "rules.yaml"},
		{"unknown field", strings.Replace(rulesFile, "selectorPath:", "selectorpath:", 1), "rules.yaml:10: kinds[0].selectorpath: unknown field"},
		{"invalid CEL", strings.Replace(rulesFile, "self.status.readyReplicas == self.spec.replicas", "self.status.readyReplicas ==", 1), "kinds[0].readiness"},
		{"path not in the objects", strings.Replace(rulesFile, "spec.workload.selector", "spec.nothere.selector", 1), "no selector at spec.nothere.selector"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := relabel(t, c, nil, "--rules", writeRules(t, tc.rules), "-n", ns, "--gvr", "workloads.example.com", "--yes", "--backup-dir", t.TempDir())
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 mentioning %q", r.code, r.stderr, tc.want)
			}
			assertUntouched(t, c, ns, before)
		})
	}
	t.Run("rules check", func(t *testing.T) {
		if r := relabel(t, c, nil, "rules", "check", "testdata/rules/example.yaml"); r.code != 0 {
			t.Errorf("example: exit %d", r.code)
		}
		if r := relabel(t, c, nil, "rules", "check", writeRules(t, "kind: Rules\n")); r.code != 2 {
			t.Errorf("bad file: exit %d, want 2", r.code)
		}
	})
}
