// Package discovery finds the workload kinds of a cluster whose label
// selector is immutable: the built-in apps/v1 kinds and custom resources whose
// schema has a label selector and a pod template.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8sdiscovery "k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/klog/v2"

	"relabel.dev/relabel/rules"
)

// CRDResource is where custom resource definitions are served.
var CRDResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// Skipped is a resource that looks like a workload but is not migrated.
type Skipped struct {
	GVR    string `json:"gvr"`
	Kind   string `json:"kind"`
	Reason string `json:"reason"`
}

// Result is what discovery found.
type Result struct {
	Workloads []rules.Kind `json:"workloads"`
	Skipped   []Skipped    `json:"skipped"`
	// Warnings name the API groups that could not be read; what was found is still usable.
	Warnings []string `json:"warnings,omitempty"`

	resources []resource
}

// resource is one served resource, workload or not, for --gvr resolution.
type resource struct {
	gvr        schema.GroupVersionResource
	kind       string
	singular   string
	shortNames []string
}

// Discoverer reads the cluster's API surface.
type Discoverer struct {
	Resources k8sdiscovery.ServerResourcesInterface
	// Dynamic reads CustomResourceDefinitions; nil skips custom resources.
	Dynamic dynamic.Interface
	// Extra are kinds from a rules file; they take precedence over what is recognised.
	Extra []rules.Kind
}

// Discover lists every served resource and sorts out the workloads.
func (d Discoverer) Discover(ctx context.Context) (*Result, error) {
	lists, err := d.Resources.ServerPreferredResources()
	res := &Result{}
	if err != nil {
		var failed *k8sdiscovery.ErrGroupDiscoveryFailed
		if !errors.As(err, &failed) || len(lists) == 0 {
			return nil, fmt.Errorf("discovering the API server's resources: %w", err)
		}
		for gv, gerr := range failed.Groups {
			res.Warnings = append(res.Warnings, fmt.Sprintf("API group %s is unavailable, its resources are left out: %v", gv, gerr))
		}
		sort.Strings(res.Warnings)
	}

	crds, warning := d.customResourceDefinitions(ctx)
	if warning != "" {
		res.Warnings = append(res.Warnings, warning)
	}
	extra := map[schema.GroupKind]rules.Kind{}
	for _, k := range d.Extra {
		extra[k.GroupKind()] = k
	}

	for _, list := range lists {
		gv, err := schema.ParseGroupVersion(list.GroupVersion)
		if err != nil {
			return nil, fmt.Errorf("parsing discovered group version %q: %w", list.GroupVersion, err)
		}
		for _, r := range list.APIResources {
			if strings.Contains(r.Name, "/") {
				continue // subresource
			}
			gvr := gv.WithResource(r.Name)
			res.resources = append(res.resources, resource{gvr: gvr, kind: r.Kind, singular: r.SingularName, shortNames: r.ShortNames})
			kind, skip := classify(gvr, r, crds, extra)
			switch {
			case kind != nil:
				res.Workloads = append(res.Workloads, *kind)
			case skip != "":
				res.Skipped = append(res.Skipped, Skipped{GVR: rules.FormatGVR(gvr), Kind: r.Kind, Reason: skip})
			}
		}
	}
	sort.Slice(res.Workloads, func(i, j int) bool { return res.Workloads[i].GVRString() < res.Workloads[j].GVRString() })
	sort.Slice(res.Skipped, func(i, j int) bool { return res.Skipped[i].GVR < res.Skipped[j].GVR })
	klog.V(2).InfoS("discovery done", "workloads", len(res.Workloads), "skipped", len(res.Skipped), "warnings", len(res.Warnings))
	return res, nil
}

// classify returns the workload facts for a resource, or why it is skipped
// (empty when it is simply not a workload).
func classify(gvr schema.GroupVersionResource, r metav1.APIResource, crds map[schema.GroupKind]*unstructured.Unstructured, extra map[schema.GroupKind]rules.Kind) (*rules.Kind, string) {
	gk := schema.GroupKind{Group: gvr.Group, Kind: r.Kind}
	fill := func(k rules.Kind) *rules.Kind {
		k.Version, k.Resource, k.Namespaced = gvr.Version, gvr.Resource, r.Namespaced
		return &k
	}
	if k, ok := extra[gk]; ok {
		return fill(k), ""
	}
	if k, ok := rules.Builtin(gk); ok {
		return fill(k), ""
	}
	if reason, ok := rules.SkipReason(gk); ok {
		return nil, reason
	}
	crd, ok := crds[gk]
	if !ok {
		return nil, ""
	}
	k, reason, err := rules.FromCRD(crd, gvr.Version)
	if err != nil {
		return nil, err.Error()
	}
	if reason != "" {
		return nil, "custom resource without a workload shape: " + reason
	}
	return fill(k), ""
}

func (d Discoverer) customResourceDefinitions(ctx context.Context) (map[schema.GroupKind]*unstructured.Unstructured, string) {
	out := map[schema.GroupKind]*unstructured.Unstructured{}
	if d.Dynamic == nil {
		return out, ""
	}
	list, err := d.Dynamic.Resource(CRDResource).List(ctx, metav1.ListOptions{})
	if err != nil {
		return out, fmt.Sprintf("custom resources are left out unless a rules file describes them: listing CustomResourceDefinitions: %v", err)
	}
	for i := range list.Items {
		crd := &list.Items[i]
		group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "kind")
		out[schema.GroupKind{Group: group, Kind: kind}] = crd
	}
	return out, ""
}
