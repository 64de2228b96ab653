package testcluster

import (
	"path/filepath"
	"strings"
	"testing"
)

// RestartAPIServer stops kube-apiserver (SIGTERM, SIGKILL after 5 s) and
// starts it again, leaving etcd, the controllers and kwok running. It returns
// once the API server is ready. Only clusters cluster.sh started can be
// restarted; the test is skipped on others.
func (c *Cluster) RestartAPIServer(t testing.TB) {
	t.Helper()
	name := strings.TrimSuffix(filepath.Base(c.Kubeconfig), ".kubeconfig")
	if ours, err := Script("kubeconfig", name); err != nil || strings.TrimSpace(ours) != c.Kubeconfig {
		t.Skipf("%s is not a cluster cluster.sh started; cannot restart its API server", c.Kubeconfig)
	}
	if out, err := Script("restart-apiserver", name); err != nil {
		t.Fatalf("restarting the API server of %s: %v\n%s", name, err, out)
	}
}
