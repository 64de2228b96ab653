package rules

import "k8s.io/apimachinery/pkg/runtime/schema"

// PauseMethod is how relabel stops a GitOps controller from reconciling one
// of its objects.
type PauseMethod string

const (
	// PauseSuspend sets spec.suspend: true (Flux).
	PauseSuspend PauseMethod = "suspend"
	// PauseAutomated removes spec.syncPolicy.automated (Argo CD): the
	// Application then syncs only when asked to.
	PauseAutomated PauseMethod = "automated"
)

// GitOpsKind is the kind of a GitOps controller's object that applies
// workloads from a source, and how relabel pauses it.
type GitOpsKind struct {
	Tool     string `json:"tool"`
	Group    string `json:"group"`
	Version  string `json:"version"`
	Kind     string `json:"kind"`
	Resource string `json:"resource"`
	// Path is the field relabel changes to pause it.
	Path  Path        `json:"path"`
	Pause PauseMethod `json:"pause"`
}

// GVR is the resource of the kind.
func (k GitOpsKind) GVR() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: k.Group, Version: k.Version, Resource: k.Resource}
}

// String names the kind for people: "Flux Kustomization".
func (k GitOpsKind) String() string { return k.Tool + " " + k.Kind }

var (
	FluxKustomization = GitOpsKind{Tool: "Flux", Group: "kustomize.toolkit.fluxcd.io", Version: "v1", Kind: "Kustomization",
		Resource: "kustomizations", Path: "spec.suspend", Pause: PauseSuspend}
	FluxHelmRelease = GitOpsKind{Tool: "Flux", Group: "helm.toolkit.fluxcd.io", Version: "v2", Kind: "HelmRelease",
		Resource: "helmreleases", Path: "spec.suspend", Pause: PauseSuspend}
	ArgoCDApplication = GitOpsKind{Tool: "Argo CD", Group: "argoproj.io", Version: "v1alpha1", Kind: "Application",
		Resource: "applications", Path: "spec.syncPolicy.automated", Pause: PauseAutomated}
)

// GitOpsKinds lists the GitOps kinds relabel can pause.
func GitOpsKinds() []GitOpsKind {
	return []GitOpsKind{FluxKustomization, FluxHelmRelease, ArgoCDApplication}
}
