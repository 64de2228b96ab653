// Command load fills a cluster with the data set of the audit benchmark:
// namespaces bench-000, bench-001, ... each holding Deployments scaled to
// zero and Rollout custom resources, sized like real workloads. It is
// idempotent: objects that already exist are left as they are. When done it
// records the data set's dimensions in the ConfigMap default/relabel-bench.
//
//	go run ./bench/load --kubeconfig KUBECONFIG [--namespaces 100] [--deployments-per-namespace 100] [--rollouts-per-namespace 10]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/yaml"
)

// Marker is the ConfigMap that records a completed load.
const (
	MarkerNamespace = "default"
	MarkerName      = "relabel-bench"
	MarkerKey       = "dataset"
)

var (
	crdGVR     = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	rolloutGVR = schema.GroupVersionResource{Group: "demo.relabel.dev", Version: "v1alpha1", Resource: "rollouts"}
	teams      = []string{"checkout", "payments", "search", "catalog", "identity"}
)

type options struct {
	kubeconfig  string
	crd         string
	namespaces  int
	deployments int
	rollouts    int
	workers     int
}

func main() {
	var o options
	flag.StringVar(&o.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "path to the kubeconfig file")
	flag.StringVar(&o.crd, "crd", "testdata/crd-rollout.yaml", "the Rollout CustomResourceDefinition")
	flag.IntVar(&o.namespaces, "namespaces", 100, "namespaces to create: bench-000, bench-001, ...")
	flag.IntVar(&o.deployments, "deployments-per-namespace", 100, "Deployments in each namespace")
	flag.IntVar(&o.rollouts, "rollouts-per-namespace", 10, "Rollouts in each namespace")
	flag.IntVar(&o.workers, "workers", 16, "concurrent create requests")
	flag.Parse()
	if flag.NArg() > 0 || o.namespaces < 0 || o.namespaces > 1000 || o.deployments < 0 || o.rollouts < 0 || o.workers < 1 {
		fmt.Fprintln(os.Stderr, "usage: load [--kubeconfig PATH] [--crd PATH] [--namespaces 0..1000] [--deployments-per-namespace N] [--rollouts-per-namespace N] [--workers N>0]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

// Dataset describes the data set in the marker, so that a run with other
// dimensions knows it has to load.
func Dataset(namespaces, deployments, rollouts int) string {
	return fmt.Sprintf("namespaces=%d deploymentsPerNamespace=%d rolloutsPerNamespace=%d", namespaces, deployments, rollouts)
}

func run(ctx context.Context, o options) error {
	start := time.Now()
	config, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return fmt.Errorf("loading the kubeconfig: %w", err)
	}
	config.QPS, config.Burst = 2000, 4000
	config.UserAgent = "relabel-bench-load"
	typedConfig := rest.CopyConfig(config)
	typedConfig.ContentType = runtime.ContentTypeProtobuf
	typedConfig.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	kube, err := kubernetes.NewForConfig(typedConfig)
	if err != nil {
		return fmt.Errorf("building the client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(config)
	if err != nil {
		return fmt.Errorf("building the dynamic client: %w", err)
	}
	l := &loader{kube: kube, dyn: dyn, workers: o.workers}

	namespaces := make([]string, o.namespaces)
	for i := range namespaces {
		namespaces[i] = fmt.Sprintf("bench-%03d", i)
	}
	if err := l.each(ctx, len(namespaces), func(ctx context.Context, i int) error {
		return l.create(ctx, "namespace "+namespaces[i], func() error {
			_, err := kube.CoreV1().Namespaces().Create(ctx, namespace(namespaces[i]), metav1.CreateOptions{})
			return err
		})
	}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "load: %d namespaces ready after %s\n", len(namespaces), since(start))

	// The CRD even without Rollouts, so that listing rollouts works.
	if err := l.createCRD(ctx, o.crd); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "load: CustomResourceDefinition established after %s\n", since(start))

	// Rollouts first: there are fewer and no controller reacts to them.
	perNamespace := o.rollouts + o.deployments
	total := len(namespaces) * perNamespace
	var done atomic.Int64
	step := max(total/10, 1)
	if err := l.each(ctx, total, func(ctx context.Context, i int) error {
		ns, j := namespaces[i/perNamespace], i%perNamespace
		var err error
		if j < o.rollouts {
			obj := rollout(ns, j)
			err = l.create(ctx, "rollout "+ns+"/"+obj.GetName(), func() error {
				_, err := dyn.Resource(rolloutGVR).Namespace(ns).Create(ctx, obj, metav1.CreateOptions{})
				return err
			})
		} else {
			obj := deployment(ns, j-o.rollouts)
			err = l.create(ctx, "deployment "+ns+"/"+obj.Name, func() error {
				_, err := kube.AppsV1().Deployments(ns).Create(ctx, obj, metav1.CreateOptions{})
				return err
			})
		}
		if n := done.Add(1); n%int64(step) == 0 {
			fmt.Fprintf(os.Stderr, "load: %d/%d objects after %s\n", n, total, since(start))
		}
		return err
	}); err != nil {
		return err
	}

	if err := l.writeMarker(ctx, Dataset(o.namespaces, o.deployments, o.rollouts)); err != nil {
		return err
	}
	fmt.Printf("load: %d namespaces, %d Deployments, %d Rollouts (%d objects created, %d already present) in %s\n",
		o.namespaces, o.namespaces*o.deployments, o.namespaces*o.rollouts, l.created.Load(), l.existing.Load(), since(start))
	return nil
}

func since(t time.Time) time.Duration { return time.Since(t).Round(10 * time.Millisecond) }

type loader struct {
	kube     kubernetes.Interface
	dyn      dynamic.Interface
	workers  int
	created  atomic.Int64
	existing atomic.Int64
}

// each calls fn for 0..n-1 on the loader's workers and stops at the first error.
func (l *loader) each(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(l.workers)
	for i := 0; i < n; i++ {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return fn(gctx, i) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// create runs one create request; an object that already exists is fine.
// NotFound is retried: a custom resource's endpoint may lag its CRD's
// Established condition for a moment.
func (l *loader) create(ctx context.Context, what string, do func() error) error {
	err := retry.OnError(retry.DefaultBackoff, apierrors.IsNotFound, do)
	switch {
	case err == nil:
		l.created.Add(1)
		return nil
	case apierrors.IsAlreadyExists(err):
		l.existing.Add(1)
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	default:
		return fmt.Errorf("creating %s: %w", what, err)
	}
}

// createCRD creates the CustomResourceDefinition in path and waits until it is established.
func (l *loader) createCRD(ctx context.Context, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading the CustomResourceDefinition: %w", err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return fmt.Errorf("parsing %s: %w", path, err)
	}
	crd := &unstructured.Unstructured{}
	if err := crd.UnmarshalJSON(js); err != nil {
		return fmt.Errorf("parsing %s: %w", path, err)
	}
	if err := l.create(ctx, "CustomResourceDefinition "+crd.GetName(), func() error {
		_, err := l.dyn.Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{})
		return err
	}); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		got, err := l.dyn.Resource(crdGVR).Get(ctx, crd.GetName(), metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("waiting for CustomResourceDefinition %s: %w", crd.GetName(), err)
		}
		if established(got) {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for CustomResourceDefinition %s to be established: %w", crd.GetName(), ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	// The API server serves the new resource a moment after the condition.
	for {
		_, err := l.dyn.Resource(rolloutGVR).List(ctx, metav1.ListOptions{Limit: 1})
		if err == nil {
			return nil
		}
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("listing %s: %w", rolloutGVR.GroupResource(), err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s to be served: %w", rolloutGVR.GroupResource(), ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func established(crd *unstructured.Unstructured) bool {
	conditions, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conditions {
		m, ok := c.(map[string]any)
		if ok && m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// writeMarker records the loaded data set, replacing an older record.
func (l *loader) writeMarker(ctx context.Context, dataset string) error {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: MarkerName, Namespace: MarkerNamespace},
		Data:       map[string]string{MarkerKey: dataset, "loadedAt": time.Now().UTC().Format(time.RFC3339)},
	}
	client := l.kube.CoreV1().ConfigMaps(MarkerNamespace)
	_, err := client.Create(ctx, cm, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		_, err = client.Update(ctx, cm, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("writing the marker ConfigMap %s/%s: %w", MarkerNamespace, MarkerName, err)
	}
	return nil
}

func namespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   name,
		Labels: map[string]string{"relabel.dev/bench": "true"},
	}}
}

// labels are an object's own labels; every fourth object already carries
// the stage label on its metadata (never in its selector).
func labels(name string, i int) map[string]string {
	l := map[string]string{
		"app":                       name,
		"team":                      teams[i%len(teams)],
		"app.kubernetes.io/part-of": "bench",
		"relabel.dev/bench":         "true",
	}
	if i%4 == 0 {
		l["stage"] = "production"
	}
	return l
}

func annotations(name string, i int) map[string]string {
	team := teams[i%len(teams)]
	return map[string]string{
		"description":                    "Benchmark workload " + name + ", owned by the " + team + " team; scaled to zero.",
		"owner":                          team + "@example.com",
		"runbook":                        "https://runbooks.example.com/" + team + "/" + name,
		"prometheus.io/scrape":           "true",
		"prometheus.io/port":             "9090",
		"config.example.com/checksum":    fmt.Sprintf("sha256:%064x", uint64(i)*0x9e3779b97f4a7c15),
		"deploy.example.com/released-by": "pipeline-" + strconv.Itoa(1000+i),
	}
}

// podSpec is a typical single-container pod: ports, environment, resources,
// probes and a mounted ConfigMap.
func podSpec(name string, i int) corev1.PodSpec {
	team := teams[i%len(teams)]
	env := []corev1.EnvVar{
		{Name: "APP_NAME", Value: name},
		{Name: "TEAM", Value: team},
		{Name: "LOG_LEVEL", Value: "info"},
		{Name: "LOG_FORMAT", Value: "json"},
		{Name: "HTTP_PORT", Value: "8080"},
		{Name: "METRICS_PORT", Value: "9090"},
		{Name: "DATABASE_URL", Value: "postgres://" + name + "@db." + team + ".svc.cluster.local:5432/" + team},
		{Name: "CACHE_URL", Value: "redis://cache." + team + ".svc.cluster.local:6379/0"},
		{Name: "FEATURE_FLAGS", Value: "new-checkout,fast-search,dark-mode"},
		{Name: "OTEL_EXPORTER_OTLP_ENDPOINT", Value: "http://otel-collector.observability.svc:4317"},
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
		{Name: "API_TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: name + "-secrets"}, Key: "api-token",
		}}},
	}
	probe := func(path string, delay int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:        corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("http")}},
			InitialDelaySeconds: delay, PeriodSeconds: 10, TimeoutSeconds: 2, FailureThreshold: 3,
		}
	}
	return corev1.PodSpec{
		Containers: []corev1.Container{{
			Name:  "app",
			Image: fmt.Sprintf("registry.example.com/%s/%s:1.%d.%d", team, name, i%20, i%7),
			Args:  []string{"--config=/etc/app/config.yaml", "--listen=:8080"},
			Ports: []corev1.ContainerPort{
				{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
				{Name: "metrics", ContainerPort: 9090, Protocol: corev1.ProtocolTCP},
			},
			Env: env,
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("512Mi")},
			},
			ReadinessProbe: probe("/readyz", 5),
			LivenessProbe:  probe("/healthz", 15),
			VolumeMounts:   []corev1.VolumeMount{{Name: "config", MountPath: "/etc/app", ReadOnly: true}},
		}},
		Volumes: []corev1.Volume{{
			Name:         "config",
			VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: name + "-config"}}},
		}},
		TerminationGracePeriodSeconds: ptr(int64(30)),
	}
}

func deployment(ns string, i int) *appsv1.Deployment {
	name := fmt.Sprintf("app-%04d", i)
	selector := map[string]string{"app": name, "team": teams[i%len(teams)]}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels(name, i), Annotations: annotations(name, i)},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(0)),
			Selector: &metav1.LabelSelector{MatchLabels: selector},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: selector, Annotations: map[string]string{"prometheus.io/scrape": "true"}},
				Spec:       podSpec(name, i),
			},
		},
	}
}

func rollout(ns string, i int) *unstructured.Unstructured {
	name := fmt.Sprintf("canary-%03d", i)
	selector := map[string]string{"app": name, "team": teams[i%len(teams)]}
	spec, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&appsv1.DeploymentSpec{
		Replicas: ptr(int32(0)),
		Selector: &metav1.LabelSelector{MatchLabels: selector},
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: selector},
			Spec:       podSpec(name, i),
		},
	})
	if err != nil {
		panic(err) // a fixed, valid type
	}
	delete(spec, "strategy") // the Rollout schema has none
	obj := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	obj.SetAPIVersion("demo.relabel.dev/v1alpha1")
	obj.SetKind("Rollout")
	obj.SetNamespace(ns)
	obj.SetName(name)
	obj.SetLabels(labels(name, i))
	obj.SetAnnotations(annotations(name, i))
	return obj
}

func ptr[T any](v T) *T { return &v }
