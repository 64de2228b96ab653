// Command podwatch records how many pods a namespace holds while a migration
// runs: it watches the namespace's pods with an informer from its start
// until SIGTERM or SIGINT (or, with --stdin, until its standard input
// closes), then prints "KEY VALUE" lines on stdout:
//
//	max_pods     the most pods in the namespace at once (terminating ones too)
//	min_ready    the fewest ready pods at once: Ready condition True, not terminating
//	start_pods, start_ready, end_pods, end_ready   the same at the start and at the end
//	samples      how many times the counts were taken: once at the start, then once per event
//	last_change  seconds from the start until the last event (the pods' last change)
//
// Once its cache has synced it writes "podwatch: watching ..." on stderr;
// a caller waits for that line before it starts the run it measures.
//
//	go run ./bench/podwatch --kubeconfig KUBECONFIG --namespace NS
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

type config struct {
	kubeconfig string
	namespace  string
	stdin      bool
	timeout    time.Duration
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "podwatch:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "podwatch:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("podwatch", flag.ContinueOnError)
	fs.StringVar(&cfg.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "path to the kubeconfig file")
	fs.StringVar(&cfg.namespace, "namespace", "", "the namespace whose pods are counted (required)")
	fs.BoolVar(&cfg.stdin, "stdin", false, "also stop when standard input closes")
	fs.DurationVar(&cfg.timeout, "sync-timeout", 2*time.Minute, "deadline of the informer's first list")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	switch {
	case fs.NArg() > 0:
		return cfg, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	case cfg.namespace == "":
		return cfg, errors.New("--namespace is required")
	case cfg.timeout <= 0:
		return cfg, errors.New("--sync-timeout must be > 0")
	}
	return cfg, nil
}

// counts is what the informer has seen so far; every method takes the lock.
type counts struct {
	mu      sync.Mutex
	ready   map[types.UID]bool // every pod in the cache: whether it counts as ready
	nready  int
	synced  bool
	maxPods int
	minRdy  int
	samples int
	startP  int
	startR  int
	began   time.Time
	last    time.Time
}

func (c *counts) set(p *corev1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if was, ok := c.ready[p.UID]; ok && was {
		c.nready--
	}
	r := isReady(p)
	c.ready[p.UID] = r
	if r {
		c.nready++
	}
	c.sample()
}

func (c *counts) remove(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if was, ok := c.ready[uid]; ok {
		if was {
			c.nready--
		}
		delete(c.ready, uid)
	}
	c.sample()
}

// sample takes the counts, once the first list is in: before, the cache is
// still filling.
func (c *counts) sample() {
	if !c.synced {
		return
	}
	c.samples++
	c.last = time.Now()
	c.maxPods = max(c.maxPods, len(c.ready))
	c.minRdy = min(c.minRdy, c.nready)
}

func (c *counts) start() (pods, ready int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.synced = true
	c.maxPods, c.minRdy = len(c.ready), c.nready
	c.startP, c.startR = len(c.ready), c.nready
	c.samples = 1
	c.began, c.last = time.Now(), time.Now()
	return c.startP, c.startR
}

func isReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func run(ctx context.Context, cfg config) error {
	restConfig, err := clientcmd.BuildConfigFromFlags("", cfg.kubeconfig)
	if err != nil {
		return fmt.Errorf("loading %s: %w", cfg.kubeconfig, err)
	}
	restConfig.QPS, restConfig.Burst = 50, 100
	restConfig.UserAgent = "relabel-bench-podwatch"
	restConfig.ContentType = runtime.ContentTypeProtobuf
	restConfig.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	kube, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return fmt.Errorf("building the client: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cfg.stdin {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			cancel()
		}()
	}

	c := &counts{ready: map[types.UID]bool{}}
	factory := informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithNamespace(cfg.namespace))
	pods := factory.Core().V1().Pods().Informer()
	reg, err := pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { setPod(c, obj) },
		UpdateFunc: func(_, obj any) { setPod(c, obj) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				c.remove(p.UID)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("watching the pods of %s: %w", cfg.namespace, err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	syncCtx, syncCancel := context.WithTimeout(ctx, cfg.timeout)
	defer syncCancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), reg.HasSynced) {
		return fmt.Errorf("the pods of %s: the informer did not sync within %s", cfg.namespace, cfg.timeout)
	}
	// The handler has seen every pod of the first list once its registration has synced.
	p, r := c.start()
	fmt.Fprintf(os.Stderr, "podwatch: watching %s: %d pods, %d ready\n", cfg.namespace, p, r)
	<-ctx.Done()

	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Printf("max_pods %d\nmin_ready %d\nstart_pods %d\nstart_ready %d\nend_pods %d\nend_ready %d\nsamples %d\nlast_change %.2f\n",
		c.maxPods, c.minRdy, c.startP, c.startR, len(c.ready), c.nready, c.samples, c.last.Sub(c.began).Seconds())
	return nil
}

func setPod(c *counts, obj any) {
	if p, ok := obj.(*corev1.Pod); ok {
		c.set(p)
	}
}
