package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"relabel.dev/relabel/internal/testcluster"
)

// kubeconfigFor writes a kubeconfig that authenticates as a new
// ServiceAccount holding exactly the given rules in ns.
func kubeconfigFor(t *testing.T, c *testcluster.Cluster, ns string, policy []rbacv1.PolicyRule) string {
	t.Helper()
	ctx := context.Background()
	sa, err := c.Kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "restricted"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Kube.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "restricted"}, Rules: policy}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "restricted"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "restricted"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa.Name, Namespace: ns}},
	}
	if _, err := c.Kube.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	token, err := c.Kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return writeTokenKubeconfig(t, c, token.Status.Token)
}

// writeTokenKubeconfig writes a kubeconfig for the cluster that authenticates with token.
func writeTokenKubeconfig(t *testing.T, c *testcluster.Cluster, token string) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{
		Server:                   c.Config.Host,
		CertificateAuthority:     c.Config.TLSClientConfig.CAFile,
		CertificateAuthorityData: c.Config.TLSClientConfig.CAData,
		InsecureSkipTLSVerify:    c.Config.TLSClientConfig.Insecure,
	}
	cfg.AuthInfos["restricted"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["restricted"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: "restricted"}
	cfg.CurrentContext = "restricted"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPreflightListsMissingPermissions(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	applyDemo(t, c, ns)
	waitRolledOut(t, c, ns)
	before := get(t, c, deployments, ns, "web")
	readOnly := []rbacv1.PolicyRule{{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list", "watch"}}}
	restricted := &testcluster.Cluster{Kubeconfig: kubeconfigFor(t, c, ns, readOnly)}

	r := relabel(t, restricted, nil, "--label", "stage=production", "-n", ns, "--gvr", "deployments", "--yes", "--backup-dir", t.TempDir())
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	for _, want := range []string{"missing permissions", "create deployments.apps in namespace " + ns, "delete deployments.apps", "create events"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not list %q:\n%s", want, r.stderr)
		}
	}
	after := get(t, c, deployments, ns, "web")
	if after.GetUID() != before.GetUID() || after.GetGeneration() != before.GetGeneration() {
		t.Errorf("the deployment changed although preflight failed")
	}
	if _, err := c.Dynamic.Resource(deployments).Namespace(ns).Get(context.Background(), "web-temp", metav1.GetOptions{}); !isNotFound(err) {
		t.Errorf("a copy was created although preflight failed (err %v)", err)
	}
}
