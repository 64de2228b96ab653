// Command migratefloor is the floor of the migration benchmark: the same
// 2 x N rollouts relabel's temp-copy strategy asks of the cluster, done by
// the shortest program that can, so that relabel's time reads as a ratio to
// what the controllers need. For the namespace's N Deployments it
//
//  1. creates N copies NAME-floor (same spec, the selector and template
//     with relabel-floor=copy added) at once, waits until all are available;
//  2. deletes the N originals (background propagation), waits until gone;
//  3. creates them again with LABEL added to metadata, selector and
//     template, waits until all are available;
//  4. deletes the copies, waits until gone.
//
// Every wait reads one Deployment informer and has a deadline. The client's
// QPS, burst and concurrency are high enough that it is not the bound. It
// prints "PHASE SECONDS" lines on stdout: copy, delete, recreate, cleanup
// and wall (their sum, from the first create to the last copy gone).
//
//	go run ./bench/migratefloor --kubeconfig KUBECONFIG --namespace NS [--label stage=production]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	copySuffix = "-floor"
	copyKey    = "relabel-floor"
	copyValue  = "copy"
)

// config is the command line, checked once.
type config struct {
	kubeconfig  string
	namespace   string
	labelKey    string
	labelValue  string
	expect      int
	concurrency int
	qps         float32
	burst       int
	timeout     time.Duration
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "migratefloor:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "migratefloor:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	var cfg config
	var label string
	var qps float64
	fs := flag.NewFlagSet("migratefloor", flag.ContinueOnError)
	fs.StringVar(&cfg.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "path to the kubeconfig file")
	fs.StringVar(&cfg.namespace, "namespace", "", "the namespace whose Deployments are rolled out again (required)")
	fs.StringVar(&label, "label", "stage=production", "the label KEY=VALUE the recreated Deployments get")
	fs.IntVar(&cfg.expect, "expect", 0, "fail unless the namespace holds this many Deployments (0: any number but none)")
	fs.IntVar(&cfg.concurrency, "concurrency", 200, "create and delete requests at once")
	fs.Float64Var(&qps, "qps", 200, "client requests per second")
	fs.IntVar(&cfg.burst, "burst", 400, "client request burst")
	fs.DurationVar(&cfg.timeout, "timeout", 10*time.Minute, "deadline of each wait")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	cfg.qps = float32(qps)
	var ok bool
	cfg.labelKey, cfg.labelValue, ok = strings.Cut(label, "=")
	switch {
	case fs.NArg() > 0:
		return cfg, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	case cfg.namespace == "":
		return cfg, errors.New("--namespace is required")
	case !ok || cfg.labelKey == "":
		return cfg, fmt.Errorf("--label %q: want KEY=VALUE", label)
	case cfg.expect < 0 || cfg.concurrency < 1 || qps <= 0 || cfg.burst < 1 || cfg.timeout <= 0:
		return cfg, errors.New("--expect must be >= 0, --concurrency, --qps, --burst and --timeout > 0")
	}
	return cfg, nil
}

func run(ctx context.Context, cfg config) error {
	restConfig, err := clientcmd.BuildConfigFromFlags("", cfg.kubeconfig)
	if err != nil {
		return fmt.Errorf("loading %s: %w", cfg.kubeconfig, err)
	}
	restConfig.QPS, restConfig.Burst = cfg.qps, cfg.burst
	restConfig.UserAgent = "relabel-bench-migratefloor"
	restConfig.ContentType = runtime.ContentTypeProtobuf
	restConfig.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	kube, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return fmt.Errorf("building the client: %w", err)
	}

	w := newWatcher(kube, cfg.namespace)
	if err := w.start(ctx, cfg.timeout); err != nil {
		return err
	}
	defer w.stop()

	originals, err := w.lister.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("listing the Deployments of %s: %w", cfg.namespace, err)
	}
	sort.Slice(originals, func(i, j int) bool { return originals[i].Name < originals[j].Name })
	for _, d := range originals {
		if strings.HasSuffix(d.Name, copySuffix) {
			return fmt.Errorf("%s/%s: a copy is left from an earlier run", cfg.namespace, d.Name)
		}
		if !available(d) {
			return fmt.Errorf("%s/%s: not rolled out; the floor starts from rolled-out Deployments", cfg.namespace, d.Name)
		}
	}
	switch {
	case len(originals) == 0:
		return fmt.Errorf("%s holds no Deployment", cfg.namespace)
	case cfg.expect > 0 && len(originals) != cfg.expect:
		return fmt.Errorf("%s holds %d Deployments, not %d", cfg.namespace, len(originals), cfg.expect)
	}
	copies := make([]*appsv1.Deployment, len(originals))
	recreated := make([]*appsv1.Deployment, len(originals))
	for i, d := range originals {
		copies[i] = forCreate(d, d.Name+copySuffix, copyKey, copyValue, false)
		recreated[i] = forCreate(d, d.Name, cfg.labelKey, cfg.labelValue, true)
	}
	client := kube.AppsV1().Deployments(cfg.namespace)
	create := func(ds []*appsv1.Deployment) error {
		return each(ctx, cfg.concurrency, ds, func(ctx context.Context, d *appsv1.Deployment) error {
			if _, err := client.Create(ctx, d, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("creating %s/%s: %w", d.Namespace, d.Name, err)
			}
			return nil
		})
	}
	remove := func(ds []*appsv1.Deployment) error {
		propagation := metav1.DeletePropagationBackground
		return each(ctx, cfg.concurrency, ds, func(ctx context.Context, d *appsv1.Deployment) error {
			err := client.Delete(ctx, d.Name, metav1.DeleteOptions{PropagationPolicy: &propagation})
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("deleting %s/%s: %w", d.Namespace, d.Name, err)
			}
			return nil
		})
	}

	phases := []struct {
		name string
		act  func() error
		wait func() error
	}{
		{"copy", func() error { return create(copies) }, func() error { return w.waitAvailable(ctx, cfg.timeout, copies) }},
		{"delete", func() error { return remove(originals) }, func() error { return w.waitGone(ctx, cfg.timeout, originals) }},
		{"recreate", func() error { return create(recreated) }, func() error { return w.waitAvailable(ctx, cfg.timeout, recreated) }},
		{"cleanup", func() error { return remove(copies) }, func() error { return w.waitGone(ctx, cfg.timeout, copies) }},
	}
	start := time.Now()
	took := make([]time.Duration, len(phases))
	for i, p := range phases {
		began := time.Now()
		if err := p.act(); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		if err := p.wait(); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		took[i] = time.Since(began)
		fmt.Fprintf(os.Stderr, "migratefloor: %s: %s %d Deployments in %.2f s\n", cfg.namespace, p.name, len(originals), took[i].Seconds())
	}
	wall := time.Since(start)
	for i, p := range phases {
		fmt.Printf("%s %.3f\n", p.name, took[i].Seconds())
	}
	fmt.Printf("wall %.3f\n", wall.Seconds())
	return nil
}

// forCreate returns d as a new object named name, with key=value added to
// the selector and the pod template, and to the metadata when inMetadata.
func forCreate(d *appsv1.Deployment, name, key, value string, inMetadata bool) *appsv1.Deployment {
	out := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   d.Namespace,
			Labels:      copyMap(d.Labels),
			Annotations: copyMap(d.Annotations),
		},
		Spec: *d.Spec.DeepCopy(),
	}
	delete(out.Annotations, "deployment.kubernetes.io/revision")
	if inMetadata {
		out.Labels = set(out.Labels, key, value)
	}
	if out.Spec.Selector == nil {
		out.Spec.Selector = &metav1.LabelSelector{}
	}
	out.Spec.Selector.MatchLabels = set(out.Spec.Selector.MatchLabels, key, value)
	out.Spec.Template.Labels = set(out.Spec.Template.Labels, key, value)
	return out
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func set(m map[string]string, k, v string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	m[k] = v
	return m
}

// available is the benchmark's rolled-out: the controller has seen the
// latest spec and every replica is updated, ready, available and no old one
// is left.
func available(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	return d.DeletionTimestamp == nil && s.ObservedGeneration >= d.Generation &&
		s.UpdatedReplicas == want && s.ReadyReplicas == want && s.AvailableReplicas == want && s.Replicas == want
}

// each runs fn for every Deployment, at most limit at once.
func each(ctx context.Context, limit int, ds []*appsv1.Deployment, fn func(context.Context, *appsv1.Deployment) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	for _, d := range ds {
		g.Go(func() error { return fn(ctx, d) })
	}
	return g.Wait()
}

// watcher holds one Deployment informer of a namespace; changed is poked on
// every event so that a wait looks again at the cache.
type watcher struct {
	factory informers.SharedInformerFactory
	lister  appslisters.DeploymentNamespaceLister
	changed chan struct{}
	cancel  context.CancelFunc
}

func newWatcher(kube kubernetes.Interface, namespace string) *watcher {
	factory := informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithNamespace(namespace))
	deployments := factory.Apps().V1().Deployments()
	w := &watcher{
		factory: factory,
		lister:  deployments.Lister().Deployments(namespace),
		changed: make(chan struct{}, 1),
	}
	poke := func() {
		select {
		case w.changed <- struct{}{}:
		default:
		}
	}
	_, _ = deployments.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	})
	return w
}

func (w *watcher) start(ctx context.Context, timeout time.Duration) error {
	ctx, w.cancel = context.WithCancel(ctx)
	w.factory.Start(ctx.Done())
	syncCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for typ, ok := range w.factory.WaitForCacheSync(syncCtx.Done()) {
		if !ok {
			return fmt.Errorf("the informer of %v did not sync within %s", typ, timeout)
		}
	}
	return nil
}

func (w *watcher) stop() {
	w.cancel()
	w.factory.Shutdown()
}

func (w *watcher) waitAvailable(ctx context.Context, timeout time.Duration, ds []*appsv1.Deployment) error {
	return w.wait(ctx, timeout, "available", ds, func(d *appsv1.Deployment) bool { return d != nil && available(d) })
}

func (w *watcher) waitGone(ctx context.Context, timeout time.Duration, ds []*appsv1.Deployment) error {
	return w.wait(ctx, timeout, "gone", ds, func(d *appsv1.Deployment) bool { return d == nil })
}

// wait returns once done holds for every Deployment named in ds (nil when
// the cache has none of that name), or fails after timeout naming a few of
// those it still waits for.
func (w *watcher) wait(ctx context.Context, timeout time.Duration, what string, ds []*appsv1.Deployment, done func(*appsv1.Deployment) bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pending := make([]string, len(ds))
	for i, d := range ds {
		pending[i] = d.Name
	}
	for {
		left := pending[:0]
		for _, name := range pending {
			d, err := w.lister.Get(name)
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("reading %s from the cache: %w", name, err)
			}
			if !done(d) {
				left = append(left, name)
			}
		}
		pending = left
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-w.changed:
		case <-ctx.Done():
			return fmt.Errorf("%d of %d Deployments not %s after %s (%s): %w",
				len(pending), len(ds), what, timeout, strings.Join(pending[:min(len(pending), 5)], ", "), context.Cause(ctx))
		}
	}
}
