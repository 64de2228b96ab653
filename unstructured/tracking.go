package unstructured

import (
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Labels and annotations by which a GitOps tool, or kubectl apply --prune,
// recognises an object as one it manages. A copy that kept them would be
// pruned (deleted) as "not in Git" while the original is gone. They are
// taken off the copy's own metadata only: its selector and pod template
// keep every label, so the Service still finds its pods.
var (
	trackingLabels = []string{
		"app.kubernetes.io/instance",  // Argo CD's default tracking label
		"argocd.argoproj.io/instance", // Argo CD's tracking label when configured so
		"kapp.k14s.io/app",
		"kapp.k14s.io/association",
		"kustomize.toolkit.fluxcd.io/name",
		"kustomize.toolkit.fluxcd.io/namespace",
		"helm.toolkit.fluxcd.io/name",
		"helm.toolkit.fluxcd.io/namespace",
	}
	trackingAnnotations = []string{
		"argocd.argoproj.io/tracking-id",
		"kapp.k14s.io/identity",
		"kapp.k14s.io/original",
		"kapp.k14s.io/original-diff-md5",
		"meta.helm.sh/release-name",
		"meta.helm.sh/release-namespace",
		lastApplied, // kubectl apply --prune deletes what carries it and is not in the files
	}
)

// OriginMetadataAnnotation keeps, on a copy, the tracking labels and
// annotations taken off it, so that the original can be rebuilt from the
// copy alone.
const OriginMetadataAnnotation = "relabel.dev/origin-metadata"

type originMetadata struct {
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// untrack takes the tracking labels and annotations off obj's metadata and
// records them in OriginMetadataAnnotation.
func untrack(obj *unstructured.Unstructured) error {
	var kept originMetadata
	labels, annotations := obj.GetLabels(), obj.GetAnnotations()
	for _, k := range trackingLabels {
		if v, ok := labels[k]; ok {
			if kept.Labels == nil {
				kept.Labels = map[string]string{}
			}
			kept.Labels[k] = v
			delete(labels, k)
		}
	}
	for _, k := range trackingAnnotations {
		if v, ok := annotations[k]; ok {
			if kept.Annotations == nil {
				kept.Annotations = map[string]string{}
			}
			kept.Annotations[k] = v
			delete(annotations, k)
		}
	}
	if kept.Labels == nil && kept.Annotations == nil {
		return nil
	}
	data, err := json.Marshal(kept)
	if err != nil {
		return fmt.Errorf("recording the tracking metadata of %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
	}
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[OriginMetadataAnnotation] = string(data)
	obj.SetLabels(labels)
	obj.SetAnnotations(annotations)
	return nil
}

// retrack puts back what untrack took off.
func retrack(obj *unstructured.Unstructured) error {
	annotations := obj.GetAnnotations()
	data, ok := annotations[OriginMetadataAnnotation]
	if !ok {
		return nil
	}
	var kept originMetadata
	if err := json.Unmarshal([]byte(data), &kept); err != nil {
		return fmt.Errorf("reading %s of %s/%s: %w", OriginMetadataAnnotation, obj.GetNamespace(), obj.GetName(), err)
	}
	delete(annotations, OriginMetadataAnnotation)
	for k, v := range kept.Annotations {
		annotations[k] = v
	}
	labels := obj.GetLabels()
	if labels == nil && len(kept.Labels) > 0 {
		labels = map[string]string{}
	}
	for k, v := range kept.Labels {
		labels[k] = v
	}
	obj.SetLabels(labels)
	obj.SetAnnotations(annotations)
	return nil
}
