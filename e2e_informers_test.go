package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"relabel.dev/relabel/engine"
	"relabel.dev/relabel/internal/testcluster"
)

// clusterWideFrom is one more than the namespaces relabel watches one by
// one: a plan over this many watches each kind cluster-wide.
const clusterWideFrom = 17

// tinyDeployment has no pods: the test is about where relabel watches.
func tinyDeployment(selectorLabel string) []byte {
	return fmt.Appendf(nil, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: tiny, labels: {app: tiny, %s}}
spec:
  replicas: 0
  selector: {matchLabels: {app: tiny}}
  template:
    metadata: {labels: {app: tiny}}
    spec: {containers: [{name: c, image: example.com/c:1}]}
`, strings.Replace(selectorLabel, "=", ": ", 1))
}

// generatedRules returns the rules of the role `relabel rbac args...` prints.
func generatedRules(t *testing.T, c *testcluster.Cluster, args ...string) []rbacv1.PolicyRule {
	t.Helper()
	r := relabel(t, c, nil, append([]string{"rbac"}, args...)...)
	if r.code != 0 {
		t.Fatalf("relabel rbac %s: exit %d", strings.Join(args, " "), r.code)
	}
	objs, err := testcluster.Decode([]byte(r.stdout))
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range objs {
		if obj.GetKind() == "Role" || obj.GetKind() == "ClusterRole" {
			var role rbacv1.ClusterRole
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &role); err != nil {
				t.Fatal(err)
			}
			return role.Rules
		}
	}
	t.Fatalf("relabel rbac %s printed no role:\n%s", strings.Join(args, " "), r.stdout)
	return nil
}

// clusterWideWatchesBy returns the watches of Deployments in every namespace
// at once that username started since t0.
func clusterWideWatchesBy(t *testing.T, c *testcluster.Cluster, t0 time.Time, username string) []auditEvent {
	t.Helper()
	var out []auditEvent
	for _, e := range auditEventsSince(t, c, t0) {
		if e.User.Username == username && e.Verb == "watch" && e.ObjectRef.Resource == "deployments" && e.ObjectRef.Namespace == "" {
			out = append(out, e)
		}
	}
	return out
}

// TestInformerClusterWideWatchIsChecked gives a ServiceAccount what an
// audit across the cluster and `relabel rbac -n` in each of 17 namespaces
// grant: list Deployments everywhere (to plan with -A), everything else,
// watch included, only in those namespaces. A plan over the 17 would watch
// Deployments cluster-wide: preflight names the missing watch, exit 1, no
// write. Over 16 of them relabel watches namespace by namespace and the
// Roles suffice.
func TestInformerClusterWideWatchIsChecked(t *testing.T) {
	c := testcluster.Get(t)
	ctx := context.Background()
	var namespaces []string
	for range clusterWideFrom {
		namespaces = append(namespaces, c.Namespace(t))
	}
	home := namespaces[0]
	selector := "relabel-e2e-informers=" + home
	before := map[string]types.UID{}
	for _, ns := range namespaces {
		before[ns] = c.ApplyYAML(t, ns, tinyDeployment(selector))[0].GetUID()
	}

	migration := generatedRules(t, c, "-n", home, "--gvr", "deployments", "--strategy", "temp-copy")
	kubeconfig := kubeconfigFor(t, c, home, migration) // ServiceAccount "restricted" and its Role in home
	username := "system:serviceaccount:" + home + ":restricted"
	for _, ns := range namespaces[1:] {
		if _, err := c.Kube.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "restricted"}, Rules: migration}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		binding := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "restricted"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "restricted"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "restricted", Namespace: home}},
		}
		if _, err := c.Kube.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	clusterRole := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: home + "-audit"}, Rules: generatedRules(t, c, "--audit-only", "--gvr", "deployments")}
	if _, err := c.Kube.RbacV1().ClusterRoles().Create(ctx, clusterRole, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Kube.RbacV1().ClusterRoles().Delete(context.Background(), clusterRole.Name, metav1.DeleteOptions{})
	})
	clusterBinding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: clusterRole.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "restricted", Namespace: home}},
	}
	if _, err := c.Kube.RbacV1().ClusterRoleBindings().Create(ctx, clusterBinding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Kube.RbacV1().ClusterRoleBindings().Delete(context.Background(), clusterBinding.Name, metav1.DeleteOptions{})
	})
	restricted, err := testcluster.Connect(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the authorizer grants all of it but the cluster-wide watch.
	clusterWatch := engine.Permission{Group: "apps", Resource: "deployments", Verb: "watch"}
	perms := []engine.Permission{{Group: "apps", Resource: "deployments", Verb: "list"}, clusterWatch}
	for _, ns := range namespaces {
		perms = append(perms, permissionsOf(migration, ns)...)
	}
	testcluster.Eventually(t, time.Minute, "RBAC of "+username+" to propagate", func(ctx context.Context) (bool, error) {
		missing, err := engine.Preflight(ctx, restricted.Kube.AuthorizationV1().SelfSubjectAccessReviews(), perms)
		return err == nil && len(missing) == 1 && missing[0] == clusterWatch, err
	})

	migrate := func() run {
		return relabel(t, restricted, nil, "--label", "stage=production", "-A", "-l", selector, "--gvr", "deployments",
			"--strategy", "temp-copy", "--yes", "--backup-dir", t.TempDir())
	}
	t0 := time.Now()
	r := migrate()
	if r.code != 1 || !strings.Contains(r.stderr, "missing permissions") || !strings.Contains(r.stderr, clusterWatch.String()) {
		t.Errorf("a plan over %d namespaces: exit %d, want 1 with a message naming %q", clusterWideFrom, r.code, clusterWatch)
	}
	for _, granted := range []string{"list deployments.apps in every namespace", "in namespace " + home} {
		if strings.Contains(r.stderr, granted) {
			t.Errorf("preflight lists %q, which the ServiceAccount holds", granted)
		}
	}
	if c.AuditLog != "" {
		if writes := writesBy(t, c, t0, username); len(writes) > 0 {
			t.Errorf("%d writes without the cluster-wide watch: %+v", len(writes), writes)
		}
	}
	for _, ns := range namespaces {
		if obj := get(t, c, deployments, ns, "tiny"); obj.GetUID() != before[ns] || obj.GetLabels()["stage"] != "" {
			t.Errorf("the Deployment of %s changed although preflight refused", ns)
		}
	}

	// One namespace fewer: one informer per namespace, which the Roles allow.
	left := namespaces[clusterWideFrom-1]
	tiny := get(t, c, deployments, left, "tiny")
	labels := tiny.GetLabels()
	delete(labels, "relabel-e2e-informers")
	tiny.SetLabels(labels)
	if _, err := c.Dynamic.Resource(deployments).Namespace(left).Update(ctx, tiny, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	if r := migrate(); r.code != 0 {
		t.Fatalf("a plan over %d namespaces with their Roles: exit %d, want 0", clusterWideFrom-1, r.code)
	}
	for _, ns := range namespaces[:clusterWideFrom-1] {
		obj := get(t, c, deployments, ns, "tiny")
		selector, template := selectorAndTemplateLabels(t, obj)
		if obj.GetUID() == before[ns] || selector["stage"] != "production" || template["stage"] != "production" {
			t.Errorf("the Deployment of %s was not migrated: selector %v, template labels %v", ns, selector, template)
		}
	}
	if obj := get(t, c, deployments, left, "tiny"); obj.GetUID() != before[left] {
		t.Errorf("the Deployment of %s, outside the selector, was replaced", left)
	}
	if c.AuditLog != "" {
		if watches := clusterWideWatchesBy(t, c, t0, username); len(watches) > 0 {
			t.Errorf("relabel watched Deployments in every namespace for a plan over %d: %+v", clusterWideFrom-1, watches)
		}
	}
}

// oneDeployment has pods, as a real workload does.
const oneDeployment = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx:1.27}]}
`

// TestInformerOneNamespaceRole: with exactly the Role `relabel rbac -n NS`
// generates, a migration in NS works as before; its informer watches NS only.
func TestInformerOneNamespaceRole(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	c.ApplyYAML(t, ns, []byte(oneDeployment))
	waitRolledOut(t, c, ns)
	before := get(t, c, deployments, ns, "web").GetUID()
	sa := asServiceAccount(t, c, ns, "--gvr", "deployments", "--strategy", "temp-copy")
	t0 := time.Now()
	r := relabel(t, sa.cluster, nil, "--label", "stage=production", "-n", ns, "--gvr", "deployments", "--strategy", "temp-copy",
		"--yes", "--backup-dir", t.TempDir())
	if r.code != 0 {
		t.Fatalf("migration with the generated Role: exit %d", r.code)
	}
	obj := get(t, c, deployments, ns, "web")
	selector, template := selectorAndTemplateLabels(t, obj)
	if obj.GetUID() == before || selector["stage"] != "production" || template["stage"] != "production" {
		t.Errorf("web: uid %s (was %s), selector %v, template labels %v; want a new object with stage=production", obj.GetUID(), before, selector, template)
	}
	if c.AuditLog != "" {
		if watches := clusterWideWatchesBy(t, c, t0, sa.username); len(watches) > 0 {
			t.Errorf("relabel watched Deployments in every namespace for a run in one: %+v", watches)
		}
	}
}
