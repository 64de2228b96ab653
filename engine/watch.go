package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"relabel.dev/relabel/rules"
	workload "relabel.dev/relabel/unstructured"
)

// watchers holds one informer per kind and namespace, shared by every object
// there, and wakes the goroutines waiting on an object whenever it changes.
type watchers struct {
	factories map[string]dynamicinformer.DynamicSharedInformerFactory
	scopes    map[schema.GroupVersionResource]watchScope
	// client reads an object directly when its watch has been quiet for
	// recheckEvery: a watch that silently stalled (seen after an API server
	// restart) must not make a wait last forever.
	client       dynamic.Interface
	recheckEvery time.Duration
}

// watchScope is one kind's informers: one for all namespaces (key "") or
// one per namespace.
type watchScope map[string]*watcher

type watcher struct {
	informer cache.SharedIndexInformer
	mu       sync.Mutex
	waiters  map[string]chan struct{}
}

// maxScopedNamespaces bounds the informers per kind: up to this many
// namespaces get one each, so that the objects of other namespaces (10,000
// unrelated Deployments, say) are neither listed nor kept; beyond it one
// cluster-wide informer is cheaper than many watches.
const maxScopedNamespaces = 16

// informerNamespaces says where to watch each kind: "" for every namespace.
func informerNamespaces(items []Item) map[schema.GroupVersionResource][]string {
	seen := map[schema.GroupVersionResource]map[string]bool{}
	kinds := map[schema.GroupVersionResource]rules.Kind{}
	for _, it := range items {
		gvr := it.Kind.GVR()
		if seen[gvr] == nil {
			seen[gvr] = map[string]bool{}
		}
		seen[gvr][it.Namespace] = true
		kinds[gvr] = it.Kind
	}
	out := map[schema.GroupVersionResource][]string{}
	for gvr, namespaces := range seen {
		if !kinds[gvr].Namespaced || len(namespaces) > maxScopedNamespaces {
			out[gvr] = []string{""}
			continue
		}
		out[gvr] = slices.Sorted(maps.Keys(namespaces))
	}
	return out
}

func newWatchers(client dynamic.Interface, items []Item) (*watchers, error) {
	w := &watchers{factories: map[string]dynamicinformer.DynamicSharedInformerFactory{},
		scopes: map[schema.GroupVersionResource]watchScope{}, client: client, recheckEvery: 20 * time.Second}
	kinds := map[schema.GroupVersionResource]rules.Kind{}
	for _, it := range items {
		kinds[it.Kind.GVR()] = it.Kind
	}
	for gvr, namespaces := range informerNamespaces(items) {
		kind := kinds[gvr]
		w.scopes[gvr] = watchScope{}
		for _, ns := range namespaces {
			factory := w.factories[ns]
			if factory == nil {
				// No resync: every wait is woken by a real change.
				factory = dynamicinformer.NewFilteredDynamicSharedInformerFactory(client, 0, ns, nil)
				w.factories[ns] = factory
			}
			wt, err := newWatcher(factory.ForResource(gvr).Informer(), kind)
			if err != nil {
				return nil, err
			}
			w.scopes[gvr][ns] = wt
		}
	}
	return w, nil
}

func newWatcher(informer cache.SharedIndexInformer, kind rules.Kind) (*watcher, error) {
	// Objects are kept slim: readiness and label checks need neither
	// managedFields nor the pod spec.
	if err := informer.SetTransform(func(obj interface{}) (interface{}, error) {
		if u, ok := obj.(*unstructured.Unstructured); ok {
			workload.Slim(u, kind)
		}
		return obj, nil
	}); err != nil {
		return nil, fmt.Errorf("setting the transform of the %s informer: %w", kind.GVRString(), err)
	}
	wt := &watcher{informer: informer, waiters: map[string]chan struct{}{}}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    wt.notify,
		UpdateFunc: func(_, obj interface{}) { wt.notify(obj) },
		DeleteFunc: wt.notify,
	}); err != nil {
		return nil, fmt.Errorf("watching %s: %w", kind.GVRString(), err)
	}
	return wt, nil
}

// watcherFor is the informer that sees objects of kind in namespace.
func (w *watchers) watcherFor(kind rules.Kind, namespace string) (*watcher, error) {
	scope := w.scopes[kind.GVR()]
	if wt, ok := scope[namespace]; ok {
		return wt, nil
	}
	if wt, ok := scope[""]; ok {
		return wt, nil
	}
	return nil, fmt.Errorf("no informer watches %s in namespace %q", kind.GVRString(), namespace)
}

// start runs the informers and waits for their first list.
func (w *watchers) start(ctx context.Context) error {
	for _, factory := range w.factories {
		factory.Start(ctx.Done())
	}
	for ns, factory := range w.factories {
		for gvr, synced := range factory.WaitForCacheSync(ctx.Done()) {
			if !synced {
				return fmt.Errorf("the %s informer of namespace %q did not sync: %w", rules.FormatGVR(gvr), ns, ctx.Err())
			}
		}
	}
	return nil
}

func (w *watchers) stop() {
	for _, factory := range w.factories {
		factory.Shutdown()
	}
}

func (wt *watcher) notify(obj interface{}) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return
	}
	wt.mu.Lock()
	if ch, ok := wt.waiters[key]; ok {
		close(ch)
		delete(wt.waiters, key)
	}
	wt.mu.Unlock()
}

// isWaitTimeout tells a wait that gave up (it ran out of time, or the
// object cannot become ready) from other failures.
func isWaitTimeout(err error) bool {
	var timeout errWaitTimeout
	var stuck errStuck
	return errors.As(err, &timeout) || errors.As(err, &stuck)
}

// errStuck marks an object that will not become ready by waiting: its
// readiness rule says it failed, or cannot be judged.
type errStuck struct {
	name, reason string
}

func (e errStuck) Error() string { return e.name + " cannot become ready: " + e.reason }

// errWaitTimeout marks a wait that ran out of time.
type errWaitTimeout struct {
	what    string
	timeout time.Duration
	last    string
}

func (e errWaitTimeout) Error() string {
	if e.last == "" {
		return fmt.Sprintf("timed out after %s waiting for %s", e.timeout, e.what)
	}
	return fmt.Sprintf("timed out after %s waiting for %s (last: %s)", e.timeout, e.what, e.last)
}

// waitFor blocks until cond holds for the cached object (nil when absent),
// woken by the informer rather than by polling. cond returns a message that
// says what it still waits for.
func (w *watchers) waitFor(ctx context.Context, kind rules.Kind, namespace, name, what string, timeout time.Duration, cond func(*unstructured.Unstructured) (bool, string, error)) error {
	wt, err := w.watcherFor(kind, namespace)
	if err != nil {
		return err
	}
	key := name
	if namespace != "" {
		key = namespace + "/" + name
	}
	var deadline <-chan time.Time
	if timeout > 0 {
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		deadline = timer.C
	}
	last := ""
	recheck := time.NewTicker(w.recheckEvery)
	defer recheck.Stop()
	for {
		// Register before reading, so a change between the two is not missed.
		wt.mu.Lock()
		ch := wt.waiters[key]
		if ch == nil {
			ch = make(chan struct{})
			wt.waiters[key] = ch
		}
		wt.mu.Unlock()

		item, exists, err := wt.informer.GetIndexer().GetByKey(key)
		if err != nil {
			return fmt.Errorf("reading %s %s from the cache: %w", kind.Kind, key, err)
		}
		var obj *unstructured.Unstructured
		if exists {
			obj = item.(*unstructured.Unstructured)
		}
		ok, msg, err := cond(obj)
		if err != nil || ok {
			return err
		}
		last = msg
		select {
		case <-ch:
		case <-recheck.C:
			fresh, err := resourceClient(w.client, kind, namespace).Get(ctx, name, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				fresh = nil
			case err != nil:
				continue // the informer may still answer; the API server may be back later
			}
			if ok, _, err := cond(fresh); err != nil || ok {
				return err
			}
		case <-deadline:
			return errWaitTimeout{what: what, timeout: timeout, last: last}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// readyCond holds when the object with the given UID is ready by its kind's rule.
// The cache may still hold obj as it was before relabel's own last write:
// that version is older than want.
func readyCond(kind rules.Kind, want *unstructured.Unstructured) func(*unstructured.Unstructured) (bool, string, error) {
	uid, generation := string(want.GetUID()), want.GetGeneration()
	return func(obj *unstructured.Unstructured) (bool, string, error) {
		if obj == nil {
			return false, "not in the cache yet", nil
		}
		if uid != "" && string(obj.GetUID()) != uid {
			return false, "another object of that name", nil
		}
		if obj.GetGeneration() < generation {
			return false, "the cache has not seen relabel's last change yet", nil
		}
		v, err := kind.Judge(obj)
		switch {
		case err != nil:
			return false, "", errStuck{name: obj.GetName(), reason: "judging its readiness: " + err.Error()}
		case v.Failed:
			return false, "", errStuck{name: obj.GetName(), reason: v.Reason}
		}
		return v.Ready, v.Reason, nil
	}
}

// goneCond holds when no object with the given UID exists any more.
func goneCond(uid string) func(*unstructured.Unstructured) (bool, string, error) {
	return func(obj *unstructured.Unstructured) (bool, string, error) {
		if obj == nil || string(obj.GetUID()) != uid {
			return true, "", nil
		}
		if obj.GetDeletionTimestamp() != nil {
			return false, fmt.Sprintf("terminating, finalizers %v", obj.GetFinalizers()), nil
		}
		return false, "still exists", nil
	}
}
