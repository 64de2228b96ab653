// Package engine does relabel's I/O: listing workloads for audit and
// migrating them, for every kind through the dynamic client (audit's lists
// as raw JSON).
package engine

import (
	"context"
	"fmt"
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
	// Concurrency bounds how many kinds are listed at once; 4 when zero.
	Concurrency int
}

// Audit checks every object in scope. Objects are dropped as soon as their
// page is checked; only the small findings are kept, sorted for stable output.
func (a Auditor) Audit(ctx context.Context, scope Scope, label workload.Label) ([]Finding, error) {
	var (
		mu       sync.Mutex
		findings []Finding
	)
	g, ctx := errgroup.WithContext(ctx)
	limit := a.Concurrency
	if limit <= 0 {
		limit = 4
	}
	g.SetLimit(limit)
	for _, kind := range scope.Kinds {
		g.Go(func() error {
			var local []Finding
			visit := func(obj *unstructured.Unstructured) error {
				f, ok, err := finding(obj, kind, label)
				if ok {
					local = append(local, f)
				}
				return err
			}
			var err error
			if a.REST != nil {
				err = a.listRaw(ctx, kind, scope, auditKeep(kind), visit)
			} else {
				err = a.list(ctx, kind, scope, visit)
			}
			mu.Lock()
			findings = append(findings, local...)
			mu.Unlock()
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
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

// finding is what audit reports of obj; false for relabel's own copies.
func finding(obj *unstructured.Unstructured, kind rules.Kind, label workload.Label) (Finding, bool, error) {
	if workload.IsTemp(obj) {
		return Finding{}, false, nil
	}
	report, err := workload.Check(obj, kind, label)
	if err != nil {
		return Finding{}, false, err
	}
	return Finding{
		GVR: kind.GVRString(), Kind: kind.Kind, Namespace: obj.GetNamespace(), Name: obj.GetName(),
		Report: report, Complete: report.Complete(), Owner: controllerOf(obj), ManagedBy: managedBy(obj),
		LabelSelector: selectorString(obj, kind),
	}, true, nil
}

// selectorString is obj's selector for people to read. A selector that is
// absent or does not parse is left out: audit reports, it does not validate.
func selectorString(obj *unstructured.Unstructured, kind rules.Kind) string {
	selector, err := workload.Selector(obj, kind)
	if err != nil {
		return ""
	}
	return selector.String()
}

// list pages through one kind, calling visit for each object.
func (a Auditor) list(ctx context.Context, kind rules.Kind, scope Scope, visit func(*unstructured.Unstructured) error) error {
	pageSize := a.PageSize
	if pageSize == 0 {
		pageSize = 500
	}
	client := resourceClient(a.Dynamic, kind, scope.Namespace)
	opts := metav1.ListOptions{LabelSelector: scope.Selector, Limit: pageSize}
	pages := 0
	for {
		list, err := client.List(ctx, opts)
		if err != nil {
			return fmt.Errorf("listing %s%s: %w", kind.GVRString(), inNamespace(scope.Namespace), err)
		}
		pages++
		for i := range list.Items {
			if err := visit(&list.Items[i]); err != nil {
				return err
			}
		}
		if list.GetContinue() == "" {
			break
		}
		opts.Continue = list.GetContinue()
	}
	klog.V(4).InfoS("listed", "gvr", kind.GVRString(), "pages", pages)
	return nil
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

func controllerOf(obj *unstructured.Unstructured) string {
	if ref := metav1.GetControllerOf(obj); ref != nil {
		return ref.Kind + "/" + ref.Name
	}
	return ""
}

// The annotations managedBy reads; audit decodes no others.
const (
	helmReleaseAnnotation  = "meta.helm.sh/release-name"
	argoTrackingAnnotation = "argocd.argoproj.io/tracking-id"
)

// managedBy recognises the markers that Helm, Argo CD and Flux put on what they manage.
func managedBy(obj *unstructured.Unstructured) string {
	l, a := obj.GetLabels(), obj.GetAnnotations()
	switch {
	case l["app.kubernetes.io/managed-by"] == "Helm" || a[helmReleaseAnnotation] != "":
		return "Helm"
	case l["argocd.argoproj.io/instance"] != "" || a[argoTrackingAnnotation] != "":
		return "Argo CD"
	case l["kustomize.toolkit.fluxcd.io/name"] != "" || l["helm.toolkit.fluxcd.io/name"] != "":
		return "Flux"
	}
	return ""
}
