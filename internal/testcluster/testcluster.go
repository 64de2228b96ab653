// Package testcluster gives tests a real local Kubernetes cluster (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler and kwok): the one
// named by RELABEL_TEST_KUBECONFIG, or one started through
// internal/cluster/cluster.sh and shared by every test process. Second gives
// the multi-cluster tests another, smaller one; Rollouts one where Argo
// Rollouts' controller runs. PodReadyDelay and the Annotation constants give
// pods realistic timing (kwok's stages, see internal/cluster/kwok-stages.yaml).
package testcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
)

// EnvKubeconfig names a running cluster to use instead of starting one.
const EnvKubeconfig = "RELABEL_TEST_KUBECONFIG"

// Name is the cluster the tests start when EnvKubeconfig is unset.
const Name = "relabel-test"

// EnvKubeconfigB names a running second cluster to use instead of starting one.
const EnvKubeconfigB = "RELABEL_TEST_KUBECONFIG_B"

// NameB is the second cluster the tests start when EnvKubeconfigB is unset.
const NameB = "relabel-test-b"

// nodesB keeps the second cluster cheap: each node is a kwok-simulated
// kubelet, and the tests only need pods to be scheduled somewhere.
const nodesB = 1

// Cluster is a running cluster and clients for it.
type Cluster struct {
	Kubeconfig string
	// AuditLog is the API server's audit log, when the cluster is the one
	// cluster.sh started; empty otherwise.
	AuditLog string
	// RolloutsLog is the log of the Argo Rollouts controller cluster.sh
	// runs for the cluster, when Rollouts returned it; empty otherwise.
	RolloutsLog string
	Config      *rest.Config
	Dynamic     dynamic.Interface
	Kube        kubernetes.Interface
	Mapper      meta.RESTMapper
}

// lazyCluster is started at most once per process.
type lazyCluster struct {
	once    sync.Once
	cluster *Cluster
	err     error
	env     string // names a running cluster's kubeconfig
	name    string // else the cluster to start
	nodes   int    // 0: cluster.sh's default
}

var (
	shared = &lazyCluster{env: EnvKubeconfig, name: Name}
	second = &lazyCluster{env: EnvKubeconfigB, name: NameB, nodes: nodesB}
)

// Get returns the cluster, starting it once per process if needed. Tests are
// skipped in -short mode, which runs only the tests without a cluster.
func Get(t testing.TB) *Cluster {
	t.Helper()
	return shared.get(t)
}

// Second returns another cluster, apart from Get's, for tests that work on
// several clusters; it is started once per process if needed.
func Second(t testing.TB) *Cluster {
	t.Helper()
	return second.get(t)
}

func (l *lazyCluster) get(t testing.TB) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the local cluster; skipped in -short mode")
	}
	l.once.Do(func() { l.cluster, l.err = l.start() })
	if l.err != nil {
		t.Fatalf("local cluster %s: %v", l.name, l.err)
	}
	return l.cluster
}

func (l *lazyCluster) start() (*Cluster, error) {
	kubeconfig := os.Getenv(l.env)
	if kubeconfig == "" {
		var env []string
		if l.nodes > 0 {
			env = []string{fmt.Sprintf("RELABEL_CLUSTER_NODES=%d", l.nodes)}
		}
		out, err := script(env, "up", l.name)
		if err != nil {
			return nil, err
		}
		kubeconfig = strings.TrimSpace(out)
	}
	c, err := Connect(kubeconfig)
	if err != nil {
		return nil, err
	}
	if ours, err := Script("kubeconfig", l.name); err == nil && strings.TrimSpace(ours) == kubeconfig {
		if log, err := Script("audit-log", l.name); err == nil {
			c.AuditLog = strings.TrimSpace(log)
		}
	}
	return c, nil
}

// Connect builds clients for the cluster of a kubeconfig file.
func Connect(kubeconfig string) (*Cluster, error) {
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", kubeconfig, err)
	}
	config.QPS, config.Burst = 200, 400
	c := &Cluster{Kubeconfig: kubeconfig, Config: config}
	if c.Dynamic, err = dynamic.NewForConfig(config); err != nil {
		return nil, err
	}
	if c.Kube, err = kubernetes.NewForConfig(config); err != nil {
		return nil, err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(config)
	if err != nil {
		return nil, err
	}
	c.Mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))
	return c, nil
}

// Script runs internal/cluster/cluster.sh and returns what it printed.
func Script(args ...string) (string, error) {
	return script(nil, args...)
}

// script runs cluster.sh with env added to the environment.
func script(env []string, args ...string) (string, error) {
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "cluster", "cluster.sh")
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("bash", append([]string{path}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("cluster.sh %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// Namespace creates a namespace for one test and deletes it afterwards.
func (c *Cluster) Namespace(t testing.TB) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	return c.createNamespace(t, metav1.ObjectMeta{GenerateName: strings.TrimRight(name, "-") + "-"})
}

// NamespaceNamed creates the namespace name for one test and deletes it
// afterwards: the same namespace in several clusters.
func (c *Cluster) NamespaceNamed(t testing.TB, name string) string {
	t.Helper()
	return c.createNamespace(t, metav1.ObjectMeta{Name: name})
}

func (c *Cluster) createNamespace(t testing.TB, meta metav1.ObjectMeta) string {
	t.Helper()
	created, err := c.Kube.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: meta}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = c.Kube.CoreV1().Namespaces().Delete(context.Background(), created.Name, metav1.DeleteOptions{})
	})
	return created.Name
}

// Apply creates every object of a multi-document YAML file; namespaced
// objects go to ns. It returns the created objects.
func (c *Cluster) Apply(t testing.TB, ns, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return c.ApplyYAML(t, ns, data)
}

// ApplyYAML is Apply for YAML in memory.
func (c *Cluster) ApplyYAML(t testing.TB, ns string, data []byte) []*unstructured.Unstructured {
	t.Helper()
	objs, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	var out []*unstructured.Unstructured
	for _, obj := range objs {
		created, err := c.Create(context.Background(), ns, obj)
		if err != nil {
			t.Fatalf("creating %s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
		out = append(out, created)
	}
	return out
}

// Create creates obj, in ns when its kind is namespaced.
func (c *Cluster) Create(ctx context.Context, ns string, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	client, err := c.ResourceFor(obj.GroupVersionKind(), ns)
	if err != nil {
		return nil, err
	}
	return client.Create(ctx, obj, metav1.CreateOptions{})
}

// ResourceFor maps a kind to its resource client.
func (c *Cluster) ResourceFor(gvk schema.GroupVersionKind, ns string) (dynamic.ResourceInterface, error) {
	mapping, err := c.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		// A CRD created a moment ago is not in the cached discovery yet.
		c.Mapper.(meta.ResettableRESTMapper).Reset()
		if mapping, err = c.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			return nil, fmt.Errorf("mapping %s: %w", gvk, err)
		}
	}
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		return c.Dynamic.Resource(mapping.Resource).Namespace(ns), nil
	}
	return c.Dynamic.Resource(mapping.Resource), nil
}

// Decode reads a multi-document YAML stream into objects.
func Decode(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if len(obj.Object) > 0 {
			out = append(out, obj)
		}
	}
}

// Eventually polls cond until it holds or the deadline passes. It is for
// test assertions on cluster state; relabel itself waits on watches.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last error
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		ok, err := cond(ctx)
		if err != nil && !apierrors.IsNotFound(err) {
			last = err
		}
		return ok, nil
	})
	if err != nil {
		t.Fatalf("waiting %s for %s: %v (last error: %v)", timeout, what, err, last)
	}
}

// CreateCRD creates a CustomResourceDefinition from YAML and waits until it is served.
func (c *Cluster) CreateCRD(t testing.TB, data []byte) *unstructured.Unstructured {
	t.Helper()
	objs, err := Decode(data)
	if err != nil || len(objs) != 1 {
		t.Fatalf("decoding CRD: %v (%d objects)", err, len(objs))
	}
	crdClient := c.Dynamic.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	crd, err := crdClient.Create(context.Background(), objs[0], metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		crd, err = crdClient.Get(context.Background(), objs[0].GetName(), metav1.GetOptions{})
	}
	if err != nil {
		t.Fatalf("creating CRD %s: %v", objs[0].GetName(), err)
	}
	Eventually(t, time.Minute, "CRD "+crd.GetName()+" established", func(ctx context.Context) (bool, error) {
		got, err := crdClient.Get(ctx, crd.GetName(), metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		for _, cond := range conds {
			m, _ := cond.(map[string]interface{})
			if m["type"] == "Established" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
	c.Mapper.(meta.ResettableRESTMapper).Reset()
	return crd
}
