package testcluster

import "time"

// Annotations of a pod (put them in a workload's pod template) that kwok's
// stages of the local cluster honour; see internal/cluster/kwok-stages.yaml.
// Each value is a Go duration ("3s"). A pod with any of the pod-create,
// pod-init-container-* or pod-ready annotations goes Pending (containers
// creating, pod IP set), then Running and Ready after the pod-ready delay;
// pods without them are Ready as soon as kwok sees them scheduled. The
// jitter-delay is an upper bound: the wait is uniform in [delay, jitter-delay).
// kwok counts each wait from the last change to the pod it saw, so a write to
// the pod while it waits (a label, an annotation) starts the wait again.
const (
	// AnnotationPodCreateDelay delays Pending with containers creating.
	AnnotationPodCreateDelay = "pod-create.stage.kwok.x-k8s.io/delay"
	// AnnotationPodReadyDelay delays Running and Ready, from Pending.
	AnnotationPodReadyDelay = "pod-ready.stage.kwok.x-k8s.io/delay"
	// AnnotationPodReadyJitter is the upper bound of the pod-ready wait.
	AnnotationPodReadyJitter = "pod-ready.stage.kwok.x-k8s.io/jitter-delay"
	// AnnotationPodDeleteDelay keeps a deleted pod Terminating that long;
	// it applies to every pod.
	AnnotationPodDeleteDelay = "pod-delete.stage.kwok.x-k8s.io/delay"
)

// PodReadyDelay returns pod template annotations that make each pod Ready d
// after kwok set it Pending (a moment after it was scheduled).
func PodReadyDelay(d time.Duration) map[string]string {
	return map[string]string{AnnotationPodReadyDelay: d.String()}
}
