package testcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// EnvKubeconfigRollouts names a running cluster with Argo Rollouts (its CRDs
// and a running controller) to use instead of starting one.
const EnvKubeconfigRollouts = "RELABEL_TEST_KUBECONFIG_ROLLOUTS"

// NameRollouts is the cluster with Argo Rollouts the tests start when
// EnvKubeconfigRollouts is unset. It is apart from Get's: Argo Rollouts' CRDs
// take the names rollouts and ro, which the tests of Get's cluster give to
// their own workload CRD.
const NameRollouts = "relabel-test-rollouts"

// ArgoRollouts is the resource of Argo Rollouts' Rollout.
var ArgoRollouts = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}

// rolloutsCRDs are the CRDs cluster.sh rollouts installs.
var rolloutsCRDs = []string{
	"rollouts.argoproj.io",
	"analysisruns.argoproj.io",
	"analysistemplates.argoproj.io",
	"clusteranalysistemplates.argoproj.io",
	"experiments.argoproj.io",
}

var withRollouts struct {
	once    sync.Once
	cluster *Cluster
	skip    string
	err     error
}

// Rollouts returns a cluster where Argo Rollouts' CRDs are installed and its
// controller runs, started once per process if needed: the cluster named by
// EnvKubeconfigRollouts, else the one of EnvKubeconfig when it is not a cluster
// cluster.sh started, else NameRollouts through cluster.sh rollouts. cluster.sh
// builds the controller on first use (about 10 minutes) and restarts it when it
// died. On a cluster cluster.sh did not start nothing is installed: the test is
// skipped unless the CRDs are established and a controller is there.
func Rollouts(t testing.TB) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the local cluster; skipped in -short mode")
	}
	withRollouts.once.Do(func() {
		withRollouts.cluster, withRollouts.skip, withRollouts.err = startRollouts()
	})
	if withRollouts.err != nil {
		t.Fatalf("cluster with Argo Rollouts: %v", withRollouts.err)
	}
	if withRollouts.skip != "" {
		t.Skip(withRollouts.skip)
	}
	return withRollouts.cluster
}

func startRollouts() (*Cluster, string, error) {
	env, kubeconfig := EnvKubeconfigRollouts, os.Getenv(EnvKubeconfigRollouts)
	if kubeconfig == "" {
		if main := os.Getenv(EnvKubeconfig); main != "" {
			if _, ours := ourCluster(main); !ours {
				env, kubeconfig = EnvKubeconfig, main
			}
		}
	}
	name := NameRollouts
	if kubeconfig != "" {
		var ours bool
		if name, ours = ourCluster(kubeconfig); !ours {
			c, err := Connect(kubeconfig)
			if err != nil {
				return nil, "", err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if missing := c.missingRollouts(ctx); missing != "" {
				return nil, fmt.Sprintf("%s=%s is not a cluster cluster.sh started, and %s; the test needs Argo Rollouts' CRDs and a running controller", env, kubeconfig, missing), nil
			}
			return c, "", nil
		}
	}
	out, err := Script("rollouts", name)
	if err != nil {
		return nil, "", err
	}
	c, err := Connect(strings.TrimSpace(out))
	if err != nil {
		return nil, "", err
	}
	if log, err := Script("audit-log", name); err == nil {
		c.AuditLog = strings.TrimSpace(log)
	}
	c.RolloutsLog = filepath.Join(filepath.Dir(c.Kubeconfig), "clusters", name, "logs", "rollouts-controller.log")
	return c, "", nil
}

// ourCluster tells whether kubeconfig is that of a cluster cluster.sh
// started, and its name.
func ourCluster(kubeconfig string) (string, bool) {
	name := strings.TrimSuffix(filepath.Base(kubeconfig), ".kubeconfig")
	ours, err := Script("kubeconfig", name)
	return name, err == nil && strings.TrimSpace(ours) == kubeconfig
}

// missingRollouts says what of Argo Rollouts the cluster lacks: a CRD that is
// not established, or a controller (a ready pod labelled as the upstream
// manifests do, or a leader-election Lease renewed within its duration).
func (c *Cluster) missingRollouts(ctx context.Context) string {
	crds := c.Dynamic.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	for _, name := range rolloutsCRDs {
		crd, err := crds.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Sprintf("CRD %s: %v", name, err)
		}
		if !established(crd) {
			return fmt.Sprintf("CRD %s is not established", name)
		}
	}
	pods, err := c.Kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=argo-rollouts"})
	if err == nil {
		for _, pod := range pods.Items {
			if podReady(&pod) {
				return ""
			}
		}
	}
	leases, err := c.Kube.CoordinationV1().Leases("").List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=argo-rollouts-controller-lock"})
	if err == nil {
		for _, l := range leases.Items {
			if l.Spec.RenewTime != nil && l.Spec.LeaseDurationSeconds != nil &&
				time.Since(l.Spec.RenewTime.Time) < time.Duration(*l.Spec.LeaseDurationSeconds)*time.Second {
				return ""
			}
		}
	}
	return "no Argo Rollouts controller runs there (no ready pod labelled app.kubernetes.io/name=argo-rollouts, no live argo-rollouts-controller-lock Lease)"
}

func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, cond := range conds {
		m, _ := cond.(map[string]interface{})
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

func podReady(pod *corev1.Pod) bool {
	for _, cond := range pod.Status.Conditions {
		if cond.Type == corev1.PodReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}
