package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"relabel.dev/relabel/internal/testcluster"
)

// TestImpersonatedUserIsRefusedThenMigrates impersonates a user with --as,
// as a break-glass check would: without permissions preflight refuses and
// nothing is written; bound to the Role `relabel rbac` prints, the same
// user migrates.
func TestImpersonatedUserIsRefusedThenMigrates(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	c.ApplyYAML(t, ns, []byte(bareDeployment))
	waitRolledOut(t, c, ns)
	before := get(t, c, deployments, ns, "web").GetUID()
	user := "jane-" + ns
	// jane may read Deployments, so the plan is made and preflight speaks.
	reader := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "deployment-reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list", "watch"}}},
	}
	if _, err := c.Kube.RbacV1().Roles(ns).Create(context.Background(), reader, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bind(t, c, ns, user, reader.Name)
	waitAllowed(t, c, ns, user, "list")

	t0 := time.Now()
	r := relabel(t, c, nil, "--label", "stage=production", "-n", ns, "--gvr", "deployments", "--yes", "--backup-dir", t.TempDir(), "--as", user, "--as-group", "developers")
	if r.code != 1 || !strings.Contains(r.stderr, "missing permissions") {
		t.Fatalf("as %s without permissions: exit %d, want 1 with the missing permissions", user, r.code)
	}
	if writes, _ := writesSince(t, c, t0, ns); len(writes) > 0 {
		t.Errorf("%d writes although preflight refused: %+v", len(writes), writes)
	}
	if got := get(t, c, deployments, ns, "web").GetUID(); got != before {
		t.Fatalf("web was replaced although preflight refused")
	}

	r = relabel(t, c, nil, "rbac", "-n", ns, "--gvr", "deployments", "--strategy", "temp-copy")
	if r.code != 0 {
		t.Fatalf("relabel rbac: exit %d", r.code)
	}
	var role *rbacv1.Role
	for _, obj := range c.ApplyYAML(t, ns, []byte(r.stdout)) {
		if obj.GetKind() == "Role" {
			role = &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: obj.GetName()}}
		}
	}
	if role == nil {
		t.Fatalf("relabel rbac printed no Role:\n%s", r.stdout)
	}
	bind(t, c, ns, user, role.Name)
	waitAllowed(t, c, ns, user, "delete")
	r = relabel(t, c, nil, "--label", "stage=production", "-n", ns, "--gvr", "deployments", "--yes", "--backup-dir", t.TempDir(), "--as", user)
	if r.code != 0 {
		t.Fatalf("as %s with the generated Role: exit %d", user, r.code)
	}
	after := get(t, c, deployments, ns, "web")
	if after.GetUID() == before || after.GetLabels()["stage"] != "production" {
		t.Errorf("web: uid %s (was %s), labels %v; want a new object with stage=production", after.GetUID(), before, after.GetLabels())
	}
}

// bind gives user the Role named role in ns.
func bind(t *testing.T, c *testcluster.Cluster, ns, user, role string) {
	t.Helper()
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role + "-" + user},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role},
	}
	if _, err := c.Kube.RbacV1().RoleBindings(ns).Create(context.Background(), binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitAllowed waits until the authorizer lets user verb Deployments in ns.
func waitAllowed(t *testing.T, c *testcluster.Cluster, ns, user, verb string) {
	t.Helper()
	testcluster.Eventually(t, time.Minute, "RBAC to let "+user+" "+verb+" deployments", func(ctx context.Context) (bool, error) {
		review, err := c.Kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:               user,
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb, Group: "apps", Resource: "deployments"},
		}}, metav1.CreateOptions{})
		return err == nil && review.Status.Allowed, err
	})
}

// TestConnectionFlagsWithoutKubeconfig audits with only --server,
// --certificate-authority and --token, over an empty kubeconfig: the flags
// alone reach and authenticate to the cluster, as the ServiceAccount whose
// token they carry.
func TestConnectionFlagsWithoutKubeconfig(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	c.ApplyYAML(t, ns, []byte(bareDeployment))
	sa := asServiceAccount(t, c, ns, "--audit-only")
	name := sa.username[strings.LastIndex(sa.username, ":")+1:]
	token, err := c.Kube.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	empty, ca := filepath.Join(dir, "empty"), c.Config.TLSClientConfig.CAFile
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if ca == "" {
		ca = filepath.Join(dir, "ca.crt")
		if err := os.WriteFile(ca, c.Config.TLSClientConfig.CAData, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	flags := []string{"--server", c.Config.Host, "--certificate-authority", ca, "--token", token.Status.Token}
	bare := &testcluster.Cluster{Kubeconfig: empty}

	r := relabel(t, bare, nil, append([]string{"audit", "--label", "stage=production", "-n", ns, "-o", "json"}, flags...)...)
	report := decodeJSON[struct {
		Items []struct{ Name string }
	}](t, r.stdout)
	if r.code != 0 || len(report.Items) != 1 || report.Items[0].Name != "web" {
		t.Fatalf("audit with the connection flags: exit %d, items %+v; want web", r.code, report.Items)
	}
	// The token is the ServiceAccount's: another namespace is forbidden to it.
	r = relabel(t, bare, nil, append([]string{"audit", "--label", "stage=production", "-n", "default"}, flags...)...)
	if r.code == 0 || !strings.Contains(r.stderr, "forbidden") {
		t.Errorf("audit of default as %s: exit %d, want a forbidden error", sa.username, r.code)
	}
}
