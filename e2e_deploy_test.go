package main

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"relabel.dev/relabel/engine"
	"relabel.dev/relabel/internal/testcluster"
)

// A Deployment (migrated with a temporary copy) and a StatefulSet (adopted).
const deployWorkloads = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx:1.27}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, labels: {app: db}}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: postgres:17}]}
`

// serviceAccount is a ServiceAccount made by `relabel rbac`, and its role.
type serviceAccount struct {
	cluster  *testcluster.Cluster // authenticates as the ServiceAccount
	username string
	role     *rbacv1.Role
}

// asServiceAccount applies what `relabel rbac -n ns args...` prints and
// returns its ServiceAccount once the API server grants it the whole role.
func asServiceAccount(t *testing.T, c *testcluster.Cluster, ns string, args ...string) serviceAccount {
	t.Helper()
	r := relabel(t, c, nil, append([]string{"rbac", "-n", ns}, args...)...)
	if r.code != 0 {
		t.Fatalf("relabel rbac: exit %d", r.code)
	}
	var sa serviceAccount
	var name string
	for _, obj := range c.ApplyYAML(t, ns, []byte(r.stdout)) {
		switch obj.GetKind() {
		case "ServiceAccount":
			name = obj.GetName()
		case "Role":
			sa.role = &rbacv1.Role{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, sa.role); err != nil {
				t.Fatal(err)
			}
		}
	}
	if name == "" || sa.role == nil {
		t.Fatalf("relabel rbac printed no ServiceAccount or no Role:\n%s", r.stdout)
	}
	token, err := c.Kube.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sa.cluster, err = testcluster.Connect(writeTokenKubeconfig(t, c, token.Status.Token)); err != nil {
		t.Fatal(err)
	}
	sa.username = "system:serviceaccount:" + ns + ":" + name
	sa.waitGranted(t, ns, sa.role.Rules, nil)
	return sa
}

// permissionsOf expands RBAC rules into the permissions they grant in ns.
func permissionsOf(policy []rbacv1.PolicyRule, ns string) []engine.Permission {
	var out []engine.Permission
	for _, rule := range policy {
		names := rule.ResourceNames
		if len(names) == 0 {
			names = []string{""}
		}
		for _, g := range rule.APIGroups {
			for _, res := range rule.Resources {
				for _, verb := range rule.Verbs {
					for _, name := range names {
						out = append(out, engine.Permission{Group: g, Resource: res, Verb: verb, Namespace: ns, Name: name})
					}
				}
			}
		}
	}
	return out
}

// waitGranted waits until the API server's authorizer, asked as the
// ServiceAccount, allows every permission of policy but denied.
func (sa serviceAccount) waitGranted(t *testing.T, ns string, policy []rbacv1.PolicyRule, denied *engine.Permission) {
	t.Helper()
	perms := permissionsOf(policy, ns)
	if denied != nil {
		perms = append(perms, *denied)
	}
	testcluster.Eventually(t, time.Minute, "RBAC of "+sa.username+" to propagate", func(ctx context.Context) (bool, error) {
		missing, err := engine.Preflight(ctx, sa.cluster.Kube.AuthorizationV1().SelfSubjectAccessReviews(), perms)
		if err != nil {
			return false, err
		}
		return denied == nil && len(missing) == 0 || denied != nil && len(missing) == 1 && missing[0] == *denied, nil
	})
}

// withoutPermission removes one verb on one resource from policy, leaving
// the rest of each rule as it was.
func withoutPermission(policy []rbacv1.PolicyRule, p engine.Permission) []rbacv1.PolicyRule {
	var out []rbacv1.PolicyRule
	for _, rule := range policy {
		matches := slices.Contains(rule.APIGroups, p.Group) && slices.Contains(rule.Resources, p.Resource) &&
			slices.Contains(rule.Verbs, p.Verb) && (len(rule.ResourceNames) == 0 || slices.Contains(rule.ResourceNames, p.Name))
		if !matches {
			out = append(out, rule)
			continue
		}
		if others := slices.DeleteFunc(slices.Clone(rule.Resources), func(r string) bool { return r == p.Resource }); len(others) > 0 {
			rest := *rule.DeepCopy()
			rest.Resources = others
			out = append(out, rest)
		}
		if verbs := slices.DeleteFunc(slices.Clone(rule.Verbs), func(v string) bool { return v == p.Verb }); len(verbs) > 0 {
			fewer := *rule.DeepCopy()
			fewer.Resources, fewer.Verbs = []string{p.Resource}, verbs
			out = append(out, fewer)
		}
	}
	return out
}

func writesBy(t *testing.T, c *testcluster.Cluster, t0 time.Time, username string) []auditEvent {
	t.Helper()
	writes, _ := writesSince(t, c, t0)
	return slices.DeleteFunc(writes, func(e auditEvent) bool { return e.User.Username != username })
}

func selectorAndTemplateLabels(t *testing.T, obj *unstructured.Unstructured) (map[string]string, map[string]string) {
	t.Helper()
	selector, _, err := unstructured.NestedStringMap(obj.Object, "spec", "selector", "matchLabels")
	if err != nil {
		t.Fatal(err)
	}
	template, _, err := unstructured.NestedStringMap(obj.Object, "spec", "template", "metadata", "labels")
	if err != nil {
		t.Fatal(err)
	}
	return selector, template
}

// TestDeployRBACSuffices runs relabel with exactly the permissions `relabel
// rbac` grants in one namespace: the read-only role audits and writes
// nothing; the migration role migrates a Deployment with a temporary copy and
// a StatefulSet by adoption.
func TestDeployRBACSuffices(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	c.ApplyYAML(t, ns, []byte(deployWorkloads))
	waitRolledOut(t, c, ns)
	before := map[string]types.UID{
		"web": get(t, c, deployments, ns, "web").GetUID(),
		"db":  get(t, c, statefulsets, ns, "db").GetUID(),
	}

	auditor := asServiceAccount(t, c, ns, "--audit-only")
	r := relabel(t, auditor.cluster, nil, "audit", "--label", "stage=production", "-n", ns, "-o", "json")
	var report struct {
		Summary struct{ Objects, Lacking int }
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &report) != nil || report.Summary.Objects != 2 || report.Summary.Lacking != 2 {
		t.Fatalf("audit with the read-only role: exit %d, summary %+v; want exit 0 and 2 of 2 objects lacking the label", r.code, report.Summary)
	}
	t0 := time.Now()
	r = relabel(t, auditor.cluster, nil, "--label", "stage=production", "-n", ns, "--yes", "--backup-dir", t.TempDir())
	if r.code != 1 || !strings.Contains(r.stderr, "missing permissions") {
		t.Errorf("a migration with the read-only role: exit %d, want 1 with the missing permissions", r.code)
	}
	if c.AuditLog != "" {
		if writes := writesBy(t, c, t0, auditor.username); len(writes) > 0 {
			t.Errorf("the read-only role wrote %d times: %+v", len(writes), writes)
		}
	}

	migrator := asServiceAccount(t, c, ns)
	t0 = time.Now()
	r = relabel(t, migrator.cluster, nil, "--label", "stage=production", "-n", ns, "--yes", "--backup-dir", t.TempDir())
	if r.code != 0 {
		t.Fatalf("migration with the generated role: exit %d", r.code)
	}
	// The audit log attributes the writes to the ServiceAccount, so the
	// zero-write checks look in the right place.
	if c.AuditLog != "" && len(writesBy(t, c, t0, migrator.username)) == 0 {
		t.Errorf("no writes by %s in the audit log after a migration", migrator.username)
	}
	for _, w := range []struct {
		name string
		gvr  schema.GroupVersionResource
	}{{"web", deployments}, {"db", statefulsets}} {
		obj := get(t, c, w.gvr, ns, w.name)
		selector, template := selectorAndTemplateLabels(t, obj)
		if obj.GetUID() == before[w.name] || selector["stage"] != "production" || template["stage"] != "production" || obj.GetLabels()["stage"] != "production" {
			t.Errorf("%s %s: uid %s (was %s), selector %v, template labels %v, labels %v; want a new object with stage=production everywhere",
				w.gvr.Resource, w.name, obj.GetUID(), before[w.name], selector, template, obj.GetLabels())
		}
		for _, o := range list(t, c, w.gvr, ns) {
			if strings.HasSuffix(o.GetName(), "-temp") {
				t.Errorf("%s %s is left", w.gvr.Resource, o.GetName())
			}
		}
	}
	r = relabel(t, auditor.cluster, nil, "audit", "--label", "stage=production", "-n", ns, "--exit-code")
	if r.code != 0 {
		t.Errorf("audit after the migration: exit %d, want 0 (nothing lacks the label)", r.code)
	}
}

// TestDeployRBACEachVerbIsChecked takes one verb at a time out of the role
// `relabel rbac` generates and proves that preflight names it and that
// relabel then writes nothing.
func TestDeployRBACEachVerbIsChecked(t *testing.T) {
	c := testcluster.Get(t)
	if c.AuditLog == "" {
		t.Skip("the audit log is only known for the cluster the tests start")
	}
	ns := c.Namespace(t)
	c.ApplyYAML(t, ns, []byte(deployWorkloads))
	waitRolledOut(t, c, ns)
	before := map[string]types.UID{
		"web": get(t, c, deployments, ns, "web").GetUID(),
		"db":  get(t, c, statefulsets, ns, "db").GetUID(),
	}
	sa := asServiceAccount(t, c, ns)
	generated := sa.role.Rules
	for _, drop := range []engine.Permission{
		{Group: "apps", Resource: "deployments", Verb: "delete"},
		{Group: "apps", Resource: "statefulsets", Verb: "create"},
		{Group: "coordination.k8s.io", Resource: "leases", Verb: "create"},
		{Group: "coordination.k8s.io", Resource: "leases", Verb: "update", Name: engine.LockName},
		{Resource: "pods", Verb: "patch"},
		{Group: "apps", Resource: "controllerrevisions", Verb: "patch"},
		{Group: "apps", Resource: "controllerrevisions", Verb: "delete"},
		{Resource: "events", Verb: "create"},
	} {
		drop.Namespace = ns
		t.Run(drop.Verb+" "+drop.Resource, func(t *testing.T) {
			fewer := withoutPermission(generated, drop)
			if len(permissionsOf(fewer, ns)) != len(permissionsOf(generated, ns))-1 {
				t.Fatalf("the generated role does not grant %s", drop)
			}
			role := sa.role.DeepCopy()
			role.Rules, role.ResourceVersion = fewer, "" // an unconditional update
			if _, err := c.Kube.RbacV1().Roles(ns).Update(context.Background(), role, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			sa.waitGranted(t, ns, fewer, &drop)
			t0 := time.Now()
			r := relabel(t, sa.cluster, nil, "--label", "stage=production", "-n", ns, "--yes", "--backup-dir", t.TempDir())
			if r.code != 1 || !strings.Contains(r.stderr, "missing permissions") || !strings.Contains(r.stderr, drop.String()) {
				t.Errorf("exit %d, want 1 with a message naming %q", r.code, drop)
			}
			if writes := writesBy(t, c, t0, sa.username); len(writes) > 0 {
				t.Errorf("%d writes without %s: %+v", len(writes), drop, writes)
			}
		})
	}
	for name, gvr := range map[string]schema.GroupVersionResource{"web": deployments, "db": statefulsets} {
		if obj := get(t, c, gvr, ns, name); obj.GetUID() != before[name] || obj.GetLabels()["stage"] != "" {
			t.Errorf("%s %s changed although every run was refused", gvr.Resource, name)
		}
	}
}

// TestInClusterConfig runs relabel as a pod would: no kubeconfig, the
// ServiceAccount's token, CA and namespace under
// /var/run/secrets/kubernetes.io/serviceaccount, and KUBERNETES_SERVICE_HOST
// and _PORT set. Those files are put on a tmpfs in a private mount
// namespace, so the machine's own /run is never touched.
func TestInClusterConfig(t *testing.T) {
	c := testcluster.Get(t)
	if err := exec.Command("unshare", "--mount", "--propagation", "private", "true").Run(); err != nil {
		t.Skipf("cannot make a private mount namespace (needs unshare and CAP_SYS_ADMIN): %v", err)
	}
	ns := c.Namespace(t)
	c.ApplyYAML(t, ns, []byte(deployWorkloads))
	auditor := asServiceAccount(t, c, ns, "--audit-only")
	token, err := c.Kube.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), "relabel-audit", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ca := c.Config.TLSClientConfig.CAData
	if len(ca) == 0 {
		if ca, err = os.ReadFile(c.Config.TLSClientConfig.CAFile); err != nil {
			t.Fatal(err)
		}
	}
	server, err := url.Parse(c.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	secrets := t.TempDir()
	for name, data := range map[string][]byte{"token": []byte(token.Status.Token), "ca.crt": ca, "namespace": []byte(ns)} {
		if err := os.WriteFile(filepath.Join(secrets, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const script = `mount -t tmpfs relabel-test /run && mkdir -p /run/secrets/kubernetes.io &&
cp -r "$1" /run/secrets/kubernetes.io/serviceaccount && shift && exec "$@"`
	// No -n: the namespace comes from the ServiceAccount's, as in a pod.
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", secrets,
		relabelBin, "audit", "--label", "stage=production", "-o", "json")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "KUBERNETES_SERVICE_HOST=" + server.Hostname(), "KUBERNETES_SERVICE_PORT=" + server.Port()}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var report struct {
		Items []struct{ Namespace, Name string }
	}
	if err != nil || json.Unmarshal(out, &report) != nil || len(report.Items) != 2 || report.Items[0].Namespace != ns {
		t.Fatalf("relabel audit with the in-cluster configuration of %s: %v\nstdout:\n%s\nstderr:\n%s", auditor.username, err, out, stderr.String())
	}
}

// warnings collects the API server's warnings (Pod Security among them).
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

// TestDeployManifestsOnTheCluster sends every manifest of deploy/ to the API
// server with dryRun=All, in a namespace that enforces and warns on the
// restricted Pod Security Standard: validation and admission accept them,
// without a warning.
func TestDeployManifestsOnTheCluster(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	ctx := context.Background()
	namespace, err := c.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	namespace.Labels["pod-security.kubernetes.io/enforce"] = "restricted"
	namespace.Labels["pod-security.kubernetes.io/warn"] = "restricted"
	if _, err := c.Kube.CoreV1().Namespaces().Update(ctx, namespace, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	config := rest.CopyConfig(c.Config)
	seen := &warnings{}
	config.WarningHandlerWithContext = seen
	client, err := dynamic.NewForConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("deploy/*.yaml")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := testcluster.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		for _, obj := range objs {
			if obj.GetKind() == "Namespace" {
				continue // the test's namespace stands in for it
			}
			mapping, err := c.Mapper.RESTMapping(obj.GroupVersionKind().GroupKind(), obj.GroupVersionKind().Version)
			if err != nil {
				t.Fatal(err)
			}
			var res dynamic.ResourceInterface = client.Resource(mapping.Resource)
			if obj.GetNamespace() != "" {
				obj.SetNamespace(ns)
				res = client.Resource(mapping.Resource).Namespace(ns)
			} else {
				obj.SetName(ns + "-" + obj.GetName()) // clear of any real ClusterRole
			}
			if _, err := res.Create(ctx, obj, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
				t.Errorf("%s: %s %s: %v", f, obj.GetKind(), obj.GetName(), err)
			}
		}
	}
	if len(seen.list) > 0 {
		t.Errorf("the API server warned: %s", strings.Join(seen.list, "; "))
	}
}
