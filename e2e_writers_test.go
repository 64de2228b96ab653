package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"relabel.dev/relabel/internal/cli"
	"relabel.dev/relabel/internal/testcluster"
)

// A ValidatingAdmissionPolicy that forbids the new label is learnt from a
// server-side dry run before anything is written: no copy, the original
// untouched, the policy's message in the result.
func TestAdmissionRefusalLeavesTheOriginal(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	c.ApplyYAML(t, ns, []byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: guarded, labels: {app: guarded}}
spec:
  replicas: 1
  selector: {matchLabels: {app: guarded}}
  template:
    metadata: {labels: {app: guarded}}
    spec: {containers: [{name: c, image: example.com/c:1}]}
`))
	waitRolledOut(t, c, ns)
	ctx := context.Background()
	policy := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "no-stage-" + ns},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr(admissionv1.Fail),
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Create, admissionv1.Update},
					Rule:       admissionv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}},
				},
			}}},
			Validations: []admissionv1.Validation{{
				Expression: "!has(object.spec.selector.matchLabels) || !('stage' in object.spec.selector.matchLabels)",
				Message:    "the stage label is owned by the platform team",
			}},
		},
	}
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "no-stage-" + ns},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        policy.Name,
			ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			MatchResources: &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}},
		},
	}
	policies := c.Kube.AdmissionregistrationV1()
	if _, err := policies.ValidatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = policies.ValidatingAdmissionPolicies().Delete(context.Background(), policy.Name, metav1.DeleteOptions{})
	})
	if _, err := policies.ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = policies.ValidatingAdmissionPolicyBindings().Delete(context.Background(), binding.Name, metav1.DeleteOptions{})
	})
	// Policies take effect once the API server has loaded them: wait until a
	// dry run of the labelled object is refused.
	before := get(t, c, deployments, ns, "guarded")
	testcluster.Eventually(t, time.Minute, "the policy to be in force", func(ctx context.Context) (bool, error) {
		probe := before.DeepCopy()
		probe.SetResourceVersion("")
		probe.SetName("probe")
		labels := map[string]interface{}{"app": "guarded", "stage": "production"}
		_ = unstructured.SetNestedMap(probe.Object, labels, "spec", "selector", "matchLabels")
		_ = unstructured.SetNestedMap(probe.Object, labels, "spec", "template", "metadata", "labels")
		_, err := c.Dynamic.Resource(deployments).Namespace(ns).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && strings.Contains(err.Error(), "platform team"), nil
	})

	t0 := time.Now()
	r := relabel(t, c, nil, "--label", "stage=production", "-n", ns, "--yes", "--backup-dir", t.TempDir(), "-o", "json")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	report := decodeJSON[cli.MigrationReport](t, r.stdout)
	if report.Summary["failed"] != 1 || !strings.Contains(report.Items[0].Message, "platform team") {
		t.Errorf("report %+v, want one failure with the policy's message", report)
	}
	after := get(t, c, deployments, ns, "guarded")
	if after.GetUID() != before.GetUID() || after.GetGeneration() != before.GetGeneration() {
		t.Error("the original was replaced or changed")
	}
	for _, w := range writesOnly(t, c, t0, ns) {
		if w.ObjectRef.Resource == "deployments" {
			t.Errorf("a Deployment was written: %s %s", w.Verb, w.ObjectRef.Name)
		}
	}
}

// A pod template that already has the key with another value is refused in
// the plan: relabelling would move its pods out of a Service selecting the
// old value. Nothing is written.
func TestTemplateLabelConflictIsRefused(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	c.ApplyYAML(t, ns, []byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: tl, labels: {app: tl}}
spec:
  replicas: 1
  selector: {matchLabels: {app: tl}}
  template:
    metadata: {labels: {app: tl, team: b}}
    spec: {containers: [{name: c, image: example.com/c:1}]}
`))
	t0 := time.Now()
	r := relabel(t, c, nil, "--label", "team=a", "-n", ns, "--yes", "--backup-dir", t.TempDir())
	if r.code != 2 || !strings.Contains(r.stderr, "team=b") {
		t.Errorf("exit %d, want 2 with a message naming team=b", r.code)
	}
	if writes := writesOnly(t, c, t0, ns); len(writes) > 0 {
		t.Errorf("%d writes, want none: %+v", len(writes), writes)
	}
}

// writesOnly is writesSince without events, which say what relabel did but
// change no object.
func writesOnly(t *testing.T, c *testcluster.Cluster, t0 time.Time, ns string) []auditEvent {
	writes, _ := writesSince(t, c, t0, ns)
	var out []auditEvent
	for _, w := range writes {
		if w.ObjectRef.Resource != "events" {
			out = append(out, w)
		}
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// An object applied server-side by a GitOps tool keeps that tool's field
// ownership through the migration: its next apply still prunes what was
// removed from Git, and leaves the new label alone.
func TestServerSideApplyOwnershipSurvives(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	apply := func(labels, env string) {
		t.Helper()
		manifest := fmt.Sprintf(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"synced","namespace":%q,"labels":{%[2]s}},
"spec":{"replicas":1,"selector":{"matchLabels":{%[2]s}},"template":{"metadata":{"labels":{%[2]s}},
"spec":{"containers":[{"name":"c","image":"example.com/c:1","env":[%[3]s]}]}}}}`, ns, labels, env)
		force := true
		if _, err := c.Dynamic.Resource(deployments).Namespace(ns).Patch(context.Background(), "synced", types.ApplyPatchType, []byte(manifest),
			metav1.PatchOptions{FieldManager: "gitops", Force: &force}); err != nil {
			t.Fatalf("applying as gitops: %v", err)
		}
	}
	apply(`"app":"synced"`, `{"name":"KEEP","value":"1"},{"name":"DROP","value":"2"}`)
	waitRolledOut(t, c, ns)
	r := relabel(t, c, nil, "--label", "stage=production", "-n", ns, "--yes", "--backup-dir", t.TempDir())
	if r.code != 0 {
		t.Fatalf("exit %d, want 0", r.code)
	}
	migrated := get(t, c, deployments, ns, "synced")
	managers := map[string]bool{}
	for _, e := range migrated.GetManagedFields() {
		managers[e.Manager] = true
	}
	if !managers["gitops"] {
		t.Errorf("managers after the migration %v, want gitops among them", managers)
	}
	// Git gets the label (a selector is atomic for server-side apply: the old
	// one would be refused as immutable) and drops DROP: the tool's next
	// apply must remove it. Had relabel kept the fields it created, DROP would
	// stay, owned by relabel.
	apply(`"app":"synced","stage":"production"`, `{"name":"KEEP","value":"1"}`)
	after := get(t, c, deployments, ns, "synced")
	containers, _, _ := unstructured.NestedSlice(after.Object, "spec", "template", "spec", "containers")
	env := fmt.Sprint(containers)
	if strings.Contains(env, "DROP") || !strings.Contains(env, "KEEP") {
		t.Errorf("env after gitops' next apply: %s; want KEEP only (DROP pruned)", env)
	}
	assertLabelled(t, after, "stage", "production")
}

// Someone else creates the original while relabel's copy serves for it (a
// GitOps tool restoring it from Git, say): the rerun stops with a message
// naming the writer, and deletes neither object.
func TestAnotherWriterRecreatingTheOriginalStopsRelabel(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	const manifest = `apiVersion: apps/v1
kind: Deployment
metadata: {name: fought, labels: {app: fought}%s}
spec:
  replicas: 1
  selector: {matchLabels: {app: fought}}
  template:
    metadata: {labels: {app: fought}}
    spec: {containers: [{name: c, image: example.com/c:1}]}
`
	c.ApplyYAML(t, ns, []byte(fmt.Sprintf(manifest, ", finalizers: [example.com/hold]")))
	waitRolledOut(t, c, ns)
	backups := t.TempDir()
	args := []string{"--kubeconfig", c.Kubeconfig, "--label", "stage=production", "-n", ns, "--yes", "--backup-dir", backups}
	killWhenTerminating(t, c, ns, "fought", args)
	// The finalizer goes, and another writer puts its own object in place.
	patch := []byte(`{"metadata":{"finalizers":null}}`)
	if _, err := c.Dynamic.Resource(deployments).Namespace(ns).Patch(context.Background(), "fought", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, time.Minute, "the original to be gone", func(ctx context.Context) (bool, error) {
		_, err := c.Dynamic.Resource(deployments).Namespace(ns).Get(ctx, "fought", metav1.GetOptions{})
		return isNotFound(err), nil
	})
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(fmt.Sprintf(manifest, "")), &obj.Object); err != nil {
		t.Fatal(err)
	}
	theirs, err := c.Dynamic.Resource(deployments).Namespace(ns).Create(context.Background(), obj, metav1.CreateOptions{FieldManager: "argocd-controller"})
	if err != nil {
		t.Fatal(err)
	}

	r := relabel(t, c, nil, "--label", "stage=production", "-n", ns, "--yes", "--backup-dir", backups)
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, `"argocd-controller"`) {
		t.Errorf("exit %d, want 1 with a message naming argocd-controller", r.code)
	}
	if now := get(t, c, deployments, ns, "fought"); now.GetUID() != theirs.GetUID() {
		t.Error("the other writer's object was replaced")
	}
	get(t, c, deployments, ns, "fought-temp") // the copy still serves
}
