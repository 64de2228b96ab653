package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"relabel.dev/relabel/internal/cli"
	"relabel.dev/relabel/internal/testcluster"
)

// The end-to-end tests run the relabel binary against the local cluster.
var relabelBin string

func TestMain(m *testing.M) {
	flag.Parse()
	code := func() int {
		if !testing.Short() {
			dir, err := os.MkdirTemp("", "relabel-e2e-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			relabelBin = filepath.Join(dir, "relabel")
			if out, err := exec.Command("go", "build", "-tags", "relabeltest", "-o", relabelBin, ".").CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "building relabel: %v\n%s", err, out)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

type run struct {
	stdout, stderr string
	code           int
	killed         bool
}

// relabel runs the binary against the test cluster.
func relabel(t *testing.T, c *testcluster.Cluster, env []string, args ...string) run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, relabelBin, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	// Subcommands take the connection flags after their name.
	switch {
	case len(args) > 0 && (args[0] == "rules" || args[0] == "rbac"): // need no cluster
		cmd.Args = append([]string{relabelBin}, args...)
	case len(args) > 0 && !strings.HasPrefix(args[0], "-"):
		cmd.Args = append([]string{relabelBin, args[0], "--kubeconfig", c.Kubeconfig}, args[1:]...)
	}
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := run{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
		r.killed = exit.ExitCode() == -1
	default:
		t.Fatalf("running relabel %v: %v", args, err)
	}
	t.Logf("relabel %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

var (
	deployments  = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	statefulsets = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"}
	daemonsets   = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"}
	replicasets  = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"}
	revisions    = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "controllerrevisions"}
	rollouts     = schema.GroupVersionResource{Group: "demo.relabel.dev", Version: "v1alpha1", Resource: "rollouts"}
)

func installCRDs(t *testing.T, c *testcluster.Cluster) {
	t.Helper()
	for _, f := range []string{"testdata/crd-rollout.yaml", "testdata/crd-widget.yaml"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c.CreateCRD(t, data)
	}
	startRolloutStatusWriter(t, c)
}

var rolloutStatusWriter sync.Once

// AnnotationStatusDelay makes the demo Rollout status writer report on an
// object (and on its copy and recreation, which keep the annotation) only
// that long after it saw it: a controller that is slow to write status.
const annotationStatusDelay = "demo.relabel.dev/status-delay"

// startRolloutStatusWriter stands in for the controller of the demo Rollout
// kind: it reports every Rollout's generation observed and its replicas
// ready, as a controller that keeps up would. relabel never takes a custom
// resource without such a status for ready; the tests with a real
// controller (Argo Rollouts) are in e2e_controllers_test.go.
var (
	delayedMu sync.Mutex
	delayed   = map[string]bool{} // uid/generation whose status is scheduled
)

func startRolloutStatusWriter(t *testing.T, c *testcluster.Cluster) {
	rolloutStatusWriter.Do(func() {
		factory := dynamicinformer.NewDynamicSharedInformerFactory(c.Dynamic, 0)
		informer := factory.ForResource(rollouts).Informer()
		report := func(obj interface{}) {
			u, ok := obj.(*unstructured.Unstructured)
			if !ok || u.GetDeletionTimestamp() != nil {
				return
			}
			replicas, found, _ := unstructured.NestedInt64(u.Object, "spec", "replicas")
			if !found {
				replicas = 1
			}
			observed, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
			ready, _, _ := unstructured.NestedInt64(u.Object, "status", "readyReplicas")
			if observed == u.GetGeneration() && ready == replicas {
				return
			}
			write := func() {
				client := c.Dynamic.Resource(rollouts).Namespace(u.GetNamespace())
				fresh, err := client.Get(context.Background(), u.GetName(), metav1.GetOptions{})
				if err != nil || fresh.GetUID() != u.GetUID() {
					return
				}
				_ = unstructured.SetNestedMap(fresh.Object, map[string]interface{}{
					"observedGeneration": fresh.GetGeneration(), "replicas": replicas, "readyReplicas": replicas,
				}, "status")
				// A conflict is seen again through the informer.
				_, _ = client.UpdateStatus(context.Background(), fresh, metav1.UpdateOptions{})
			}
			delay, err := time.ParseDuration(u.GetAnnotations()[annotationStatusDelay])
			if err != nil {
				write()
				return
			}
			key := fmt.Sprintf("%s/%d", u.GetUID(), u.GetGeneration())
			delayedMu.Lock()
			defer delayedMu.Unlock()
			if !delayed[key] {
				delayed[key] = true
				time.AfterFunc(delay, write)
			}
		}
		if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    report,
			UpdateFunc: func(_, obj interface{}) { report(obj) },
		}); err != nil {
			t.Fatal(err)
		}
		// The process's lifetime: every test of it may create Rollouts.
		factory.Start(make(chan struct{}))
		if !cache.WaitForCacheSync(nil, informer.HasSynced) {
			t.Fatal("the Rollout status writer's informer did not sync")
		}
	})
}

func get(t *testing.T, c *testcluster.Cluster, gvr schema.GroupVersionResource, ns, name string) *unstructured.Unstructured {
	t.Helper()
	obj, err := c.Dynamic.Resource(gvr).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("getting %s %s/%s: %v", gvr.Resource, ns, name, err)
	}
	return obj
}

func list(t *testing.T, c *testcluster.Cluster, gvr schema.GroupVersionResource, ns string) []unstructured.Unstructured {
	t.Helper()
	l, err := c.Dynamic.Resource(gvr).Namespace(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("listing %s in %s: %v", gvr.Resource, ns, err)
	}
	return l.Items
}

// waitRolledOut waits until every apps/v1 workload in ns is ready.
func waitRolledOut(t *testing.T, c *testcluster.Cluster, ns string) {
	t.Helper()
	testcluster.Eventually(t, 2*time.Minute, "workloads in "+ns+" rolled out", func(ctx context.Context) (bool, error) {
		ds, err := c.Kube.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, d := range ds.Items {
			if d.Status.ObservedGeneration < d.Generation || d.Status.AvailableReplicas != *d.Spec.Replicas || d.Status.UpdatedReplicas != *d.Spec.Replicas {
				return false, nil
			}
		}
		ss, err := c.Kube.AppsV1().StatefulSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, s := range ss.Items {
			if s.Status.ReadyReplicas != *s.Spec.Replicas {
				return false, nil
			}
		}
		dss, err := c.Kube.AppsV1().DaemonSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, d := range dss.Items {
			if d.Status.DesiredNumberScheduled == 0 || d.Status.NumberAvailable != d.Status.DesiredNumberScheduled {
				return false, nil
			}
		}
		return true, nil
	})
}

func stringsAt(t *testing.T, obj *unstructured.Unstructured, path ...string) map[string]string {
	t.Helper()
	m, _, err := unstructured.NestedStringMap(obj.Object, path...)
	if err != nil {
		t.Fatalf("%s: reading %v: %v", obj.GetName(), path, err)
	}
	return m
}

// assertLabelled checks the label in selector, template and metadata.
func assertLabelled(t *testing.T, obj *unstructured.Unstructured, key, value string) {
	t.Helper()
	for _, path := range [][]string{
		{"spec", "selector", "matchLabels"},
		{"spec", "template", "metadata", "labels"},
		{"metadata", "labels"},
	} {
		if got := stringsAt(t, obj, path...)[key]; got != value {
			t.Errorf("%s %s: %s=%q at %s, want %q", obj.GetKind(), obj.GetName(), key, got, strings.Join(path, "."), value)
		}
	}
}

func TestHarnessDeploymentBecomesAvailable(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	conn := cliConnection(c.Kubeconfig, ns)
	clients, err := conn.Connect()
	if err != nil {
		t.Fatal(err)
	}
	replicas := int32(2)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "hello"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "hello"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "hello"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "hello", Image: "example.com/hello:1"}}},
			},
		},
	}
	if _, err := c.Kube.AppsV1().Deployments(clients.Namespace).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, time.Minute, "deployment hello Available", func(ctx context.Context) (bool, error) {
		got, err := c.Kube.AppsV1().Deployments(ns).Get(ctx, "hello", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, cond := range got.Status.Conditions {
			if cond.Type == appsv1.DeploymentAvailable && cond.Status == corev1.ConditionTrue {
				return got.Status.AvailableReplicas == 2, nil
			}
		}
		return false, nil
	})
	pods, err := c.Kube.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=hello"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 2 {
		t.Fatalf("%d pods, want 2", len(pods.Items))
	}
}

func TestUsageErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	c := &testcluster.Cluster{Kubeconfig: "/nonexistent/kubeconfig"}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown flag", []string{"--bogus"}, 2, "flag provided but not defined"},
		{"no label", []string{}, 2, "--label KEY=VALUE is required"},
		{"label without value", []string{"--label", "stage"}, 2, "want KEY=VALUE"},
		{"reserved prefix", []string{"--label", "kubernetes.io/stage=x"}, 2, "reserved"},
		{"bad value", []string{"--label", "stage=no spaces"}, 2, "invalid label value"},
		{"bad selector", []string{"--label", "stage=x", "-l", "app in (a"}, 2, "--selector"},
		{"namespace and all", []string{"--label", "stage=x", "-n", "a", "-A"}, 2, "exclude each other"},
		{"bad dry-run", []string{"--label", "stage=x", "--dry-run", "maybe"}, 2, "--dry-run"},
		{"audit without label", []string{"audit"}, 2, "--label is required"},
		{"audit bad output", []string{"audit", "--label", "x", "-o", "xml"}, 2, `--output "xml": want table, wide, json, yaml or html`},
		{"kinds html", []string{"kinds", "-o", "html"}, 2, `--output "html": want table, wide, json or yaml`},
		{"migrate html", []string{"--label", "stage=x", "-o", "html"}, 2, `--output "html": want table, wide, json or yaml`},
		{"missing kubeconfig", []string{"--label", "stage=x"}, 1, "kubeconfig"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := relabel(t, c, nil, tc.args...)
			if r.code != tc.code {
				t.Errorf("exit code %d, want %d", r.code, tc.code)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr %q does not mention %q", r.stderr, tc.want)
			}
			if lines := strings.Count(strings.TrimSpace(r.stderr), "\n"); tc.code == 2 && lines > 0 {
				t.Errorf("usage error takes %d lines, want one", lines+1)
			}
		})
	}
}

// decodeJSON parses a command's JSON output.
func decodeJSON[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decoding %q: %v", s, err)
	}
	return v
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }

func cliConnection(kubeconfig, namespace string) cli.Connection {
	return cli.Connection{Kubeconfig: kubeconfig, Namespace: namespace, QPS: 50, Burst: 100}
}
