// Package engine does relabel's I/O: listing workloads for audit and
// migrating them, for every kind through the dynamic client (audit's lists
// as raw JSON).
package engine

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"

	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"relabel.dev/relabel/rules"
	workload "relabel.dev/relabel/unstructured"
)

// Scope says which objects to look at.
type Scope struct {
	Kinds []rules.Kind
	// Namespace limits the scope; empty means every namespace.
	Namespace string
	// Selector is a label selector on the objects (kubectl's -l).
	Selector string
}

// Finding is what audit reports of one object.
//
// An audit of a large cluster keeps one per object, so it is kept small
// (120 bytes): GVR and Kind are shared by all of a kind's findings and
// Namespace by those of a list, the Report is three bytes.
type Finding struct {
	GVR       string `json:"gvr"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	workload.Report
	// Complete is true when the object carries the label everywhere.
	Complete bool `json:"complete"`
	// Owner is the object's controller, "Kind/name", when it has one.
	Owner string `json:"owner,omitempty"`
	// ManagedBy names a tool (Helm, Argo CD, Flux) that may revert changes.
	ManagedBy string `json:"managedBy,omitempty"`
	// LabelSelector is the object's selector as kubectl -l writes it.
	LabelSelector string `json:"labelSelector,omitempty"`
}

// Auditor lists workloads page by page and checks each for the label.
type Auditor struct {
	Dynamic dynamic.Interface
	// REST, when set, lists for Audit as raw JSON (NewRawClient), decoding
	// of each object only what a finding reads; Plan always uses Dynamic.
	REST rest.Interface
	// PageSize bounds each list response; 500 when zero.
	PageSize int64
	// Concurrency bounds how many lists are read at once; 4 when zero.
	Concurrency int
	// SplitMinimum is the size from which a kind listed in every namespace
	// is listed a namespace at a time; splitMinimum when zero.
	SplitMinimum int64
	// ObjectsPerNamespace is the fewest objects per namespace, on average,
	// for which that is worth a request each; minObjectsPerNamespace when
	// zero, none when negative.
	ObjectsPerNamespace int64
}

// A kind's pages come one after another: each needs the previous one's
// continue token. A large kind in every namespace is therefore listed a
// namespace at a time, Concurrency lists at once, which the API server
// serves in parallel. Only when each list still carries enough objects to
// be worth its request: at least minObjectsPerNamespace on average.
const (
	splitMinimum           = 2000
	minObjectsPerNamespace = 20
)

// Audit checks every object in scope. Objects are dropped as soon as their
// page is checked; only the small findings are kept, sorted for stable output.
//
// Each namespace's list is consistent in itself; a kind listed a namespace
// at a time is not one snapshot of the whole cluster, as it is not with
// kubectl get in each namespace.
func (a Auditor) Audit(ctx context.Context, scope Scope, label workload.Label) ([]Finding, error) {
	g, ctx := errgroup.WithContext(ctx)
	limit := a.Concurrency
	if limit <= 0 {
		limit = 4
	}
	r := &auditRun{Auditor: a, scope: scope, label: label, group: g, slots: make(chan struct{}, limit)}
	r.namespaces = sync.OnceValues(func() ([]string, error) { return a.namespaceNames(ctx) })
	for _, kind := range scope.Kinds {
		g.Go(func() error { return r.kind(ctx, kind) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	findings := r.findings
	sort.Slice(findings, func(i, j int) bool {
		a, b := findings[i], findings[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.GVR < b.GVR // same Kind in two groups: kinds are listed concurrently
	})
	return findings, nil
}

// auditRun is one Audit: its lists in flight and what they found.
type auditRun struct {
	Auditor
	scope Scope
	label workload.Label
	group *errgroup.Group
	// slots holds a token for each list being read.
	slots      chan struct{}
	namespaces func() ([]string, error)

	mu       sync.Mutex
	findings []Finding
	// reserved is how many findings the kinds' counts announced.
	reserved int64
}

// kind audits one kind: in one list, or, when it is large, in a list per
// namespace, each started on its own.
func (r *auditRun) kind(ctx context.Context, kind rules.Kind) error {
	if err := r.acquire(ctx); err != nil {
		return err
	}
	defer r.release()
	ns := r.scope.Namespace
	if kind.Namespaced && ns == "" && r.scope.Selector == "" {
		// A one-item page says how many objects there are.
		var probed []Finding
		meta, err := r.page(ctx, kind, Scope{Selector: r.scope.Selector}, auditKeep(kind), 1, "", r.collect(kind, &probed))
		if err != nil {
			return err
		}
		if meta.RemainingItemCount != nil {
			r.reserve(*meta.RemainingItemCount + 1)
		}
		if names, ok := r.split(kind, meta); ok {
			for _, ns := range names {
				r.group.Go(func() error {
					if err := r.acquire(ctx); err != nil {
						return err
					}
					defer r.release()
					return r.listFrom(ctx, kind, ns, "")
				})
			}
			return nil // the probed object is listed again in its namespace
		}
		r.keep(probed)
		if meta.Continue == "" {
			return nil
		}
		return r.listFrom(ctx, kind, "", meta.Continue)
	}
	return r.listFrom(ctx, kind, ns, "")
}

// split returns the namespaces to list kind in one at a time, if its first
// page says it is large enough for that. Namespaces that cannot be listed
// (no permission) leave it in one list.
func (r *auditRun) split(kind rules.Kind, first listMeta) ([]string, bool) {
	minimum := r.SplitMinimum
	if minimum <= 0 {
		minimum = splitMinimum
	}
	if first.Continue == "" || first.RemainingItemCount == nil || *first.RemainingItemCount+1 < minimum {
		return nil, false
	}
	names, err := r.namespaces()
	if err != nil {
		klog.V(2).InfoS("listing in one list: the namespaces are not listed", "gvr", kind.GVRString(), "err", err)
		return nil, false
	}
	perNamespace := r.ObjectsPerNamespace
	if perNamespace == 0 {
		perNamespace = minObjectsPerNamespace
	}
	if objects := *first.RemainingItemCount + 1; int64(len(names))*max(perNamespace, 0) > objects {
		klog.V(4).InfoS("listing in one list: too few objects per namespace", "gvr", kind.GVRString(), "objects", objects, "namespaces", len(names))
		return nil, false
	}
	klog.V(4).InfoS("listing a namespace at a time", "gvr", kind.GVRString(), "namespaces", len(names))
	return names, true
}

// listFrom pages through kind in namespace ("" for all), from the page after
// cont, or from the first one, keeping each page's findings.
func (r *auditRun) listFrom(ctx context.Context, kind rules.Kind, namespace, cont string) error {
	var local []Finding
	return r.pages(ctx, kind, Scope{Namespace: namespace, Selector: r.scope.Selector}, auditKeep(kind), cont, r.collect(kind, &local), func() {
		r.keep(local)
		local = local[:0]
	})
}

// collect is a visit that appends the findings of kind's objects to out.
func (r *auditRun) collect(kind rules.Kind, out *[]Finding) func(*unstructured.Unstructured) error {
	gvr := kind.GVRString()
	var namespace string
	return func(obj *unstructured.Unstructured) error {
		f, ok, err := finding(obj, kind, gvr, r.label)
		if ok {
			if f.Namespace == namespace {
				f.Namespace = namespace // one copy per list, not per object
			}
			namespace = f.Namespace
			*out = append(*out, f)
		}
		return err
	}
}

// reserve makes room for n more findings, so that the slice of a large
// audit is not copied as it grows: each copy would hold the old and the new
// array at once. n is the API server's count, bounded in case it is wrong.
func (r *auditRun) reserve(n int64) {
	const most = 1 << 20
	r.mu.Lock()
	r.reserved = min(r.reserved+max(n, 0), most)
	r.findings = slices.Grow(r.findings, max(int(r.reserved)-len(r.findings), 0))
	r.mu.Unlock()
}

func (r *auditRun) keep(found []Finding) {
	r.mu.Lock()
	r.findings = append(r.findings, found...)
	r.mu.Unlock()
}

func (r *auditRun) acquire(ctx context.Context) error {
	select {
	case r.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *auditRun) release() { <-r.slots }

// namespaceNames lists the cluster's namespaces, names only.
func (a Auditor) namespaceNames(ctx context.Context) ([]string, error) {
	kind := rules.Kind{Version: "v1", Resource: "namespaces", Kind: "Namespace"}
	var names []string
	err := a.pages(ctx, kind, Scope{}, keep{"metadata": keep{"name": nil}}, "", func(obj *unstructured.Unstructured) error {
		names = append(names, obj.GetName())
		return nil
	}, nil)
	return names, err
}

// finding is what audit reports of obj; false for relabel's own copies.
func finding(obj *unstructured.Unstructured, kind rules.Kind, gvr string, label workload.Label) (Finding, bool, error) {
	if workload.IsTemp(obj) {
		return Finding{}, false, nil
	}
	report, err := workload.Check(obj, kind, label)
	if err != nil {
		return Finding{}, false, err
	}
	return Finding{
		GVR: gvr, Kind: kind.Kind, Namespace: obj.GetNamespace(), Name: obj.GetName(),
		Report: report, Complete: report.Complete(), Owner: workload.ControllerOf(obj), ManagedBy: managedBy(obj),
		LabelSelector: workload.SelectorString(obj, kind),
	}, true, nil
}

// list pages through one kind, calling visit for each object, always
// through the dynamic client (Plan reads objects whole).
func (a Auditor) list(ctx context.Context, kind rules.Kind, scope Scope, visit func(*unstructured.Unstructured) error) error {
	a.REST = nil
	return a.pages(ctx, kind, scope, nil, "", visit, nil)
}

// pages reads kind's list in scope page after page, from the page after
// cont or from the first one; done, when set, is called after each page, a
// failed one too.
func (a Auditor) pages(ctx context.Context, kind rules.Kind, scope Scope, k keep, cont string, visit func(*unstructured.Unstructured) error, done func()) error {
	pageSize := a.PageSize
	if pageSize == 0 {
		pageSize = 500
	}
	pages := 0
	for {
		meta, err := a.page(ctx, kind, scope, k, pageSize, cont, visit)
		if done != nil {
			done()
		}
		if err != nil {
			return err
		}
		pages++
		if cont = meta.Continue; cont == "" {
			break
		}
	}
	klog.V(4).InfoS("listed", "gvr", kind.GVRString(), "namespace", scope.Namespace, "pages", pages)
	return nil
}

// page reads one page of kind's list: through REST when set, each item
// decoded only as far as k says, else through the dynamic client.
func (a Auditor) page(ctx context.Context, kind rules.Kind, scope Scope, k keep, limit int64, cont string, visit func(*unstructured.Unstructured) error) (listMeta, error) {
	if a.REST != nil {
		return a.pageRaw(ctx, kind, scope, k, limit, cont, visit)
	}
	return a.pageDynamic(ctx, kind, scope, limit, cont, visit)
}

// pageDynamic reads one page of kind's list through the dynamic client.
func (a Auditor) pageDynamic(ctx context.Context, kind rules.Kind, scope Scope, limit int64, cont string, visit func(*unstructured.Unstructured) error) (listMeta, error) {
	list, err := resourceClient(a.Dynamic, kind, scope.Namespace).List(ctx, metav1.ListOptions{LabelSelector: scope.Selector, Limit: limit, Continue: cont})
	if err != nil {
		return listMeta{}, fmt.Errorf("listing %s%s: %w", kind.GVRString(), inNamespace(scope.Namespace), err)
	}
	for i := range list.Items {
		if err := visit(&list.Items[i]); err != nil {
			return listMeta{}, err
		}
	}
	return listMeta{Continue: list.GetContinue(), RemainingItemCount: list.GetRemainingItemCount()}, nil
}

func resourceClient(client dynamic.Interface, kind rules.Kind, namespace string) dynamic.ResourceInterface {
	if kind.Namespaced && namespace != "" {
		return client.Resource(kind.GVR()).Namespace(namespace)
	}
	return client.Resource(kind.GVR())
}

func inNamespace(ns string) string {
	if ns == "" {
		return ""
	}
	return " in namespace " + ns
}

// The annotations managedBy reads; audit decodes no others.
const (
	helmReleaseAnnotation  = "meta.helm.sh/release-name"
	argoTrackingAnnotation = "argocd.argoproj.io/tracking-id"
)

// managedBy recognises the markers that Helm, Argo CD and Flux put on what they manage.
func managedBy(obj *unstructured.Unstructured) string {
	l, a := workload.MetadataNoCopy(obj, "labels"), workload.MetadataNoCopy(obj, "annotations")
	label := func(key string) string { return workload.StringIn(l, key) }
	annotation := func(key string) string { return workload.StringIn(a, key) }
	switch {
	case label("app.kubernetes.io/managed-by") == "Helm" || annotation(helmReleaseAnnotation) != "":
		return "Helm"
	case label("argocd.argoproj.io/instance") != "" || annotation(argoTrackingAnnotation) != "":
		return "Argo CD"
	case label("kustomize.toolkit.fluxcd.io/name") != "" || label("helm.toolkit.fluxcd.io/name") != "":
		return "Flux"
	}
	return ""
}
