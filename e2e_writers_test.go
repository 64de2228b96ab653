package main

import (
	"context"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

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
