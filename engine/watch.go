package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
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
	// syncTimeout bounds start's wait for the informers' first list.
	syncTimeout time.Duration
}

// informerSyncTimeout bounds the wait for the informers' first list: a list
// that never succeeds (the API server down, a permission revoked after
// preflight) ends the run before any write instead of hanging it. It is
// fixed rather than taken from Options.Timeout: that one bounds an object's
// rollout, which the cluster's controllers decide, while this one bounds how
// long the API server may be unavailable, and an API server restart (about
// a minute) should not fail a run whose --timeout is short. Ctrl-C ends the
// wait at once whatever the bound.
const informerSyncTimeout = 2 * time.Minute

// watchScope is one kind's informers: one for all namespaces (key "") or
// one per namespace.
type watchScope map[string]*watcher

type watcher struct {
	informer  cache.SharedIndexInformer
	kind      rules.Kind
	namespace string // "" for every namespace
	mu        sync.Mutex
	waiters   map[string]chan struct{}
	// lastErr is the last error of the informer's list or watch.
	lastErr error
	// lastEvent is when the informer last delivered a change of any object:
	// a watch that delivers changes has not stalled.
	lastEvent time.Time
}

// maxScopedNamespaces bounds the informers per kind: up to this many
// namespaces get one each, so that the objects of other namespaces (10,000
// unrelated Deployments, say) are neither listed nor kept; beyond it one
// cluster-wide informer is cheaper than many watches.
const maxScopedNamespaces = 16

// informerNamespaces says where to watch each kind: "" for every namespace.
// It is the one place that decides it: newWatchers starts these informers
// and RequiredPermissions asks for list and watch exactly there, so preflight
// and `relabel rbac` never check less than the watchers do, nor more.
// A cluster-wide informer therefore needs list and watch in every namespace:
// asking for them only when the plan spans more than maxScopedNamespaces
// namespaces (or the kind is cluster-scoped) keeps a run in one namespace,
// or a few, within a Role of those namespaces (least privilege), while a
// run over many namespaces, which needs a ClusterRole to list them anyway,
// keeps one watch per kind instead of hundreds.
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

// newWatchers makes the informers for items, whose copies are named with
// tempSuffix: only those objects are kept whole in the caches.
func newWatchers(client dynamic.Interface, items []Item, tempSuffix string) (*watchers, error) {
	w := &watchers{factories: map[string]dynamicinformer.DynamicSharedInformerFactory{},
		scopes: map[schema.GroupVersionResource]watchScope{}, client: client,
		recheckEvery: 20 * time.Second, syncTimeout: informerSyncTimeout}
	kinds := map[schema.GroupVersionResource]rules.Kind{}
	watched := map[schema.GroupVersionResource]map[string]bool{}
	for _, it := range items {
		gvr := it.Kind.GVR()
		kinds[gvr] = it.Kind
		if watched[gvr] == nil {
			watched[gvr] = map[string]bool{}
		}
		watched[gvr][cacheKey(it.Namespace, it.Name)] = true
		watched[gvr][cacheKey(it.Namespace, workload.TempName(it.Name, tempSuffix, it.Kind.MaxNameLength))] = true
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
			wt, err := newWatcher(factory.ForResource(gvr).Informer(), kind, ns, watched[gvr])
			if err != nil {
				return nil, err
			}
			w.scopes[gvr][ns] = wt
		}
	}
	return w, nil
}

func newWatcher(informer cache.SharedIndexInformer, kind rules.Kind, namespace string, watched map[string]bool) (*watcher, error) {
	// The objects of the plan and their copies are kept slim: readiness and
	// label checks need neither managedFields nor the pod spec. The others a
	// cluster-wide informer lists are kept as stubs.
	if err := informer.SetTransform(func(obj interface{}) (interface{}, error) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return obj, nil
		}
		if !watched[cacheKey(u.GetNamespace(), u.GetName())] {
			return workload.Stub(u), nil
		}
		workload.Slim(u, kind)
		return u, nil
	}); err != nil {
		return nil, fmt.Errorf("setting the transform of the %s informer: %w", kind.GVRString(), err)
	}
	wt := &watcher{informer: informer, kind: kind, namespace: namespace, waiters: map[string]chan struct{}{}}
	// The error is kept for start to report why the first list did not
	// finish; it is logged as client-go would.
	if err := informer.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *cache.Reflector, err error) {
		wt.mu.Lock()
		wt.lastErr = err
		wt.mu.Unlock()
		cache.DefaultWatchErrorHandler(ctx, r, err)
	}); err != nil {
		return nil, fmt.Errorf("setting the error handler of the %s informer: %w", kind.GVRString(), err)
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    wt.notify,
		UpdateFunc: func(_, obj interface{}) { wt.notify(obj) },
		DeleteFunc: wt.notify,
	}); err != nil {
		return nil, fmt.Errorf("watching %s: %w", kind.GVRString(), err)
	}
	return wt, nil
}

// quietFor says how long the informer has delivered no change.
func (wt *watcher) quietFor() time.Duration {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	return time.Since(wt.lastEvent)
}

func (wt *watcher) err() error {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	return wt.lastErr
}

// where names the informer for error messages.
func (wt *watcher) where() string {
	if wt.namespace == "" {
		return wt.kind.GVRString() + " in every namespace"
	}
	return fmt.Sprintf("%s in namespace %s", wt.kind.GVRString(), wt.namespace)
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

// syncPoll is how often start looks at the informers' first lists.
const syncPoll = 100 * time.Millisecond

// start runs the informers on run and waits for their first list, for as
// long as wait is not done and at most w.syncTimeout. The informers keep
// running on run once synced; when start fails, the caller stops them with
// stop. An informer whose list is forbidden fails at once: preflight checked
// the permission, so retrying will not help.
func (w *watchers) start(run, wait context.Context) error {
	for _, factory := range w.factories {
		factory.Start(run.Done())
	}
	var all []*watcher
	for _, gvr := range slices.SortedFunc(maps.Keys(w.scopes), func(a, b schema.GroupVersionResource) int {
		return strings.Compare(rules.FormatGVR(a), rules.FormatGVR(b))
	}) {
		for _, ns := range slices.Sorted(maps.Keys(w.scopes[gvr])) {
			all = append(all, w.scopes[gvr][ns])
		}
	}
	timer := time.NewTimer(w.syncTimeout)
	defer timer.Stop()
	poll := time.NewTicker(syncPoll)
	defer poll.Stop()
	for {
		var pending []*watcher
		for _, wt := range all {
			if !wt.informer.HasSynced() {
				pending = append(pending, wt)
			}
		}
		if len(pending) == 0 {
			return nil
		}
		for _, wt := range pending {
			if err := wt.err(); apierrors.IsForbidden(err) {
				return fmt.Errorf("watching %s: the first list was refused: %w", wt.where(), err)
			}
		}
		select {
		case <-poll.C:
		case <-timer.C:
			return syncError(pending, fmt.Sprintf("the first list did not finish within %s", w.syncTimeout), nil)
		case <-wait.Done():
			return syncError(pending, "interrupted before the first list finished", wait.Err())
		case <-run.Done():
			return syncError(pending, "stopped before the first list finished", run.Err())
		}
	}
}

// syncError names the first informer that has not synced, its last list or
// watch error, and how many others are still waiting.
func syncError(pending []*watcher, what string, cause error) error {
	first := pending[0]
	msg := "watching " + first.where() + ": " + what
	if err := first.err(); err != nil {
		msg += " (last error: " + err.Error() + ")"
	}
	if len(pending) > 1 {
		msg += fmt.Sprintf("; %d more informers have not synced either", len(pending)-1)
	}
	if cause != nil {
		return fmt.Errorf("%s: %w", msg, cause)
	}
	return errors.New(msg)
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
	wt.lastEvent = time.Now()
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

// cached returns the informer's copy of the object, nil when absent. It is
// slim (see workload.Slim) and shared with the informer: read it, never
// change it.
func (w *watchers) cached(kind rules.Kind, namespace, name string) (*unstructured.Unstructured, error) {
	wt, err := w.watcherFor(kind, namespace)
	if err != nil {
		return nil, err
	}
	item, exists, err := wt.informer.GetIndexer().GetByKey(cacheKey(namespace, name))
	if err != nil {
		return nil, fmt.Errorf("reading %s %s from the cache: %w", kind.Kind, cacheKey(namespace, name), err)
	}
	if !exists {
		return nil, nil
	}
	return item.(*unstructured.Unstructured), nil
}

func cacheKey(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}

// waitFor blocks until cond holds for the cached object (nil when absent),
// woken by the informer rather than by polling. cond returns a message that
// says what it still waits for.
func (w *watchers) waitFor(ctx context.Context, kind rules.Kind, namespace, name, what string, timeout time.Duration, cond func(*unstructured.Unstructured) (bool, string, error)) error {
	wt, err := w.watcherFor(kind, namespace)
	if err != nil {
		return err
	}
	key := cacheKey(namespace, name)
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
			if wt.quietFor() < w.recheckEvery {
				continue // the watch delivers changes of other objects: it has not stalled
			}
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
