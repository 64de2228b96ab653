// Package rules holds what differs between workload kinds, as data: where a
// kind keeps its selector and pod template, how readiness is judged, which
// migration strategy it gets by default. The engine reads these facts and has
// no per-kind branches of its own.
package rules

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Strategy is how an object is migrated.
type Strategy string

const (
	// TempCopy runs a labelled-apart copy while the original is replaced.
	TempCopy Strategy = "temp-copy"
	// Adopt relabels the live pods and recreates the owner in place.
	Adopt Strategy = "adopt"
)

// Path is a field path inside an object, written dotted ("spec.selector").
type Path string

// Fields splits the path for the unstructured helpers.
func (p Path) Fields() []string { return strings.Split(string(p), ".") }

// Kind is everything relabel knows about one workload kind.
type Kind struct {
	Group    string `json:"group"`
	Version  string `json:"version,omitempty"`
	Kind     string `json:"kind"`
	Resource string `json:"resource,omitempty"`
	// Namespaced is filled in by discovery.
	Namespaced bool `json:"namespaced"`
	// SelectorPath leads to a metav1.LabelSelector.
	SelectorPath Path `json:"selectorPath"`
	// TemplateLabelsPath leads to the pod template's labels.
	TemplateLabelsPath Path `json:"templateLabelsPath"`
	// ExtraLabelPaths lead to other string maps that must carry the label
	// too (a Service selector the workload's controller renders, say).
	ExtraLabelPaths []Path `json:"extraLabelPaths,omitempty"`
	// Strategy is the default strategy for objects of the kind.
	Strategy Strategy `json:"strategy"`
	// MaxNameLength bounds generated names; it is tighter than the API's
	// limit where the kind derives label values from its name.
	MaxNameLength int `json:"maxNameLength"`
	// Readiness says how "ready" is judged: one of the built-in rules
	// (ReadinessNames: "kstatus" is the generic one), else a CEL expression
	// over `self`, the object, that returns a bool. Empty: relabel cannot
	// judge the kind, and does not migrate it.
	Readiness string `json:"readiness,omitempty"`
	// Source says where the facts came from: builtin, crd or a rules file.
	Source string `json:"source"`
	// HostPortsBlockCopy: a copy of an object whose pods use host ports can
	// never be scheduled (one pod per node, as for DaemonSets).
	HostPortsBlockCopy bool `json:"hostPortsBlockCopy,omitempty"`
	// Owned lists what the kind's controller owns, for the adopt strategy;
	// a kind without it can only be migrated with a temporary copy.
	Owned []Owned `json:"owned,omitempty"`
	// Guards are facts about an object that make a strategy unsafe for it.
	Guards []Guard `json:"guards,omitempty"`
	// Proto numbers the selector and the pod template in the kind's spec
	// in its protobuf encoding; zero for kinds the API server serves only
	// as JSON, custom resources among them. Not read from rules files.
	Proto ProtoSpec `json:"-"`
}

// ProtoSpec is where a built-in kind's spec keeps its selector and pod
// template in protobuf, as k8s.io/api's generated.proto numbers them for
// Version. The object's metadata is field 1 and its spec field 2 in every
// built-in kind.
type ProtoSpec struct {
	Version            string
	Selector, Template int
}

// Owned is a resource a workload's controller owns, and what the adopt
// strategy does with it.
type Owned struct {
	Group    string      `json:"group"`
	Version  string      `json:"version"`
	Resource string      `json:"resource"`
	Action   OwnedAction `json:"action"`
	// Indirect: owned through another entry (a Deployment's pods belong to its ReplicaSets).
	Indirect bool `json:"indirect,omitempty"`
}

// GVR is the owned resource.
func (o Owned) GVR() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: o.Group, Version: o.Version, Resource: o.Resource}
}

// OwnedAction is what adopt does with an owned object.
type OwnedAction string

const (
	// Relabel adds the label before the owner is orphan-deleted, so that the
	// recreated owner adopts the object.
	Relabel OwnedAction = "relabel"
	// DeleteOrphans removes, once the recreated owner is ready, the objects
	// the old owner left behind (its revision history).
	DeleteOrphans OwnedAction = "delete-orphans"
)

// CanAdopt says whether the adopt strategy knows what the kind owns.
func (k Kind) CanAdopt() bool { return len(k.Owned) > 0 }

var (
	pods                = Owned{Version: "v1", Resource: "pods", Action: Relabel}
	controllerRevisions = Owned{Group: "apps", Version: "v1", Resource: "controllerrevisions", Action: DeleteOrphans}
)

// GroupKind identifies the kind.
func (k Kind) GroupKind() schema.GroupKind { return schema.GroupKind{Group: k.Group, Kind: k.Kind} }

// PodSpecPath leads to the pod template's spec, derived from the template
// labels path (X.metadata.labels leads to X.spec); false for other shapes.
func (k Kind) PodSpecPath() ([]string, bool) {
	template, ok := strings.CutSuffix(string(k.TemplateLabelsPath), ".metadata.labels")
	if !ok {
		return nil, false
	}
	return append(Path(template).Fields(), "spec"), true
}

// GVR is the resource the kind is served as.
func (k Kind) GVR() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: k.Group, Version: k.Version, Resource: k.Resource}
}

// GVRString renders the GVR the way --gvr accepts it.
func (k Kind) GVRString() string { return FormatGVR(k.GVR()) }

// FormatGVR renders group/version/resource, or version/resource for the core group.
func FormatGVR(gvr schema.GroupVersionResource) string {
	if gvr.Group == "" {
		return gvr.Version + "/" + gvr.Resource
	}
	return gvr.Group + "/" + gvr.Version + "/" + gvr.Resource
}

// Readiness values.
const (
	// ReadinessKstatus judges readiness with kstatus, the ecosystem's convention.
	ReadinessKstatus = "kstatus"
)

// Source values.
const (
	SourceBuiltin = "builtin"
	SourceCRD     = "crd"
	SourceRules   = "rules"
)

// Standard paths shared by apps/v1 and most workload custom resources.
const (
	StandardSelectorPath       Path = "spec.selector"
	StandardTemplateLabelsPath Path = "spec.template.metadata.labels"
)

// Guards shared by several kinds.
var (
	volumeClaimTemplates = Guard{Path: "spec.volumeClaimTemplates", Effect: NoCopy,
		Reason: "it has volumeClaimTemplates: a copy would run on new, empty volumes"}
	hostNetwork = Guard{Path: "spec.template.spec.hostNetwork", Effect: NoCopy,
		Reason: "its pods use the host network: a copy's pods would need the same ports on the same nodes"}
	recreateStrategy = Guard{Path: "spec.strategy.type", Value: "Recreate", Effect: NoCopy,
		Reason: "strategy Recreate forbids two instances at once, which a copy is; adopt replaces its pods all at once, as each of its rollouts does"}
	pausedDeployment = Guard{Path: "spec.paused", Effect: Skip,
		Reason: "paused: its controller creates no pods for a copy or a recreated object; resume it (kubectl rollout resume) and rerun"}
)

var (
	replicaSets = Owned{Group: "apps", Version: "v1", Resource: "replicasets", Action: Relabel}
	// Pods owned through the ReplicaSets, as with Deployments and Rollouts.
	indirectPods = Owned{Version: "v1", Resource: "pods", Action: Relabel, Indirect: true}
)

var builtin = map[schema.GroupKind]Kind{
	{Group: "apps", Kind: "Deployment"}: {
		Group: "apps", Version: "v1", Kind: "Deployment", Resource: "deployments", Namespaced: true,
		SelectorPath: StandardSelectorPath, TemplateLabelsPath: StandardTemplateLabelsPath,
		Strategy: TempCopy, MaxNameLength: 253, Readiness: ReadinessDeployment, Source: SourceBuiltin,
		Proto: ProtoSpec{Version: "v1", Selector: 2, Template: 3},
		// The recreated Deployment adopts the old ReplicaSet by its labels and rolls it down.
		Owned:  []Owned{replicaSets, indirectPods},
		Guards: []Guard{pausedDeployment, recreateStrategy},
	},
	// The controller-revision-hash label is "<name>-<hash>" and must fit 63
	// characters. A copy would get new pods and new, empty volumes: adopt.
	{Group: "apps", Kind: "StatefulSet"}: {
		Group: "apps", Version: "v1", Kind: "StatefulSet", Resource: "statefulsets", Namespaced: true,
		SelectorPath: StandardSelectorPath, TemplateLabelsPath: StandardTemplateLabelsPath,
		Strategy: Adopt, MaxNameLength: 52, Readiness: ReadinessStatefulSet, Source: SourceBuiltin,
		Proto: ProtoSpec{Version: "v1", Selector: 2, Template: 3},
		Owned: []Owned{pods, controllerRevisions}, Guards: []Guard{volumeClaimTemplates},
	},
	{Group: "apps", Kind: "DaemonSet"}: {
		Group: "apps", Version: "v1", Kind: "DaemonSet", Resource: "daemonsets", Namespaced: true,
		SelectorPath: StandardSelectorPath, TemplateLabelsPath: StandardTemplateLabelsPath,
		Strategy: Adopt, MaxNameLength: 63, Readiness: ReadinessDaemonSet, Source: SourceBuiltin,
		Proto:              ProtoSpec{Version: "v1", Selector: 1, Template: 2},
		HostPortsBlockCopy: true, Owned: []Owned{pods, controllerRevisions}, Guards: []Guard{hostNetwork},
	},
	// Argo Rollouts makes the selector immutable by CEL since v1.9. Its
	// ReplicaSets are named "<name>-<hash>" like a Deployment's.
	{Group: "argoproj.io", Kind: "Rollout"}: {
		Group: "argoproj.io", Version: "v1alpha1", Kind: "Rollout", Resource: "rollouts", Namespaced: true,
		SelectorPath: StandardSelectorPath, TemplateLabelsPath: StandardTemplateLabelsPath,
		Strategy: TempCopy, MaxNameLength: 253, Readiness: ReadinessArgoRollout, Source: SourceBuiltin,
		Owned: []Owned{replicaSets, indirectPods},
		Guards: []Guard{
			{Path: "spec.paused", Effect: Skip, Reason: "paused: Argo Rollouts does not roll out a paused Rollout; resume it and rerun"},
			{Path: "spec.workloadRef", Effect: Skip, Reason: "its pod template lives in the referenced workload; migrate that one"},
			// The controller rewrites these Services' selectors: a copy would take them over.
			{Path: "spec.strategy.blueGreen", Effect: NoCopy, Reason: "blue-green: a copy would switch the active Service to its own pods"},
			{Path: "spec.strategy.canary.trafficRouting", Effect: NoCopy, Reason: "canary with traffic routing: a copy would rewrite the routes"},
			{Path: "spec.strategy.canary.stableService", Effect: NoCopy, Reason: "canary with a stable Service: a copy would rewrite its selector"},
		},
	},
	// OpenKruise's CloneSet owns its pods (and PVCs) directly.
	{Group: "apps.kruise.io", Kind: "CloneSet"}: {
		Group: "apps.kruise.io", Version: "v1alpha1", Kind: "CloneSet", Resource: "clonesets", Namespaced: true,
		SelectorPath: StandardSelectorPath, TemplateLabelsPath: StandardTemplateLabelsPath,
		Strategy: TempCopy, MaxNameLength: 63, Readiness: ReadinessKruiseCloneSet, Source: SourceBuiltin,
		Owned: []Owned{pods, controllerRevisions}, Guards: []Guard{volumeClaimTemplates},
	},
	// OpenKruise's Advanced StatefulSet: stateful, never copied.
	{Group: "apps.kruise.io", Kind: "StatefulSet"}: {
		Group: "apps.kruise.io", Version: "v1beta1", Kind: "StatefulSet", Resource: "statefulsets", Namespaced: true,
		SelectorPath: StandardSelectorPath, TemplateLabelsPath: StandardTemplateLabelsPath,
		Strategy: Adopt, MaxNameLength: 52, Readiness: ReadinessKruiseStatefulSet, Source: SourceBuiltin,
		Owned:  []Owned{pods, controllerRevisions},
		Guards: []Guard{{Effect: NoCopy, Reason: "an Advanced StatefulSet's pods keep their names and volumes; a copy's would not"}},
	},
	// OpenKruise's Advanced DaemonSet.
	{Group: "apps.kruise.io", Kind: "DaemonSet"}: {
		Group: "apps.kruise.io", Version: "v1alpha1", Kind: "DaemonSet", Resource: "daemonsets", Namespaced: true,
		SelectorPath: StandardSelectorPath, TemplateLabelsPath: StandardTemplateLabelsPath,
		Strategy: Adopt, MaxNameLength: 63, Readiness: ReadinessKruiseDaemonSet, Source: SourceBuiltin,
		HostPortsBlockCopy: true, Owned: []Owned{pods, controllerRevisions}, Guards: []Guard{hostNetwork},
	},
}

// Kinds that have a selector and a template but are not migrated directly.
var skipped = map[schema.GroupKind]string{
	{Group: "apps", Kind: "ReplicaSet"}:        "owned by Deployments; migrate the Deployment",
	{Group: "batch", Kind: "Job"}:              "runs to completion; its pods are not replaced",
	{Group: "batch", Kind: "CronJob"}:          "creates Jobs that run to completion",
	{Group: "", Kind: "ReplicationController"}: "its selector is mutable; edit it in place",
}

// Builtin returns the built-in facts for a kind.
func Builtin(gk schema.GroupKind) (Kind, bool) {
	k, ok := builtin[gk]
	return k, ok
}

// Builtins returns the built-in kinds, sorted by GVR.
func Builtins() []Kind {
	out := make([]Kind, 0, len(builtin))
	for _, k := range builtin {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GVRString() < out[j].GVRString() })
	return out
}

// SkipReason says why a kind that looks like a workload is not migrated.
func SkipReason(gk schema.GroupKind) (string, bool) {
	r, ok := skipped[gk]
	return r, ok
}

// StrategyAuto picks a strategy per object.
const StrategyAuto Strategy = "auto"

// Validate checks that a kind's facts are usable.
func (k Kind) Validate() error {
	var problems []string
	if k.Kind == "" {
		problems = append(problems, "kind is empty")
	}
	if k.SelectorPath == "" {
		problems = append(problems, "selectorPath is empty")
	}
	if k.TemplateLabelsPath == "" {
		problems = append(problems, "templateLabelsPath is empty")
	}
	switch k.Strategy {
	case TempCopy, Adopt:
	default:
		problems = append(problems, fmt.Sprintf("strategy %q is not one of %s, %s", k.Strategy, TempCopy, Adopt))
	}
	if k.MaxNameLength <= 0 {
		problems = append(problems, fmt.Sprintf("maxNameLength %d is not positive", k.MaxNameLength))
	}
	for i, p := range k.ExtraLabelPaths {
		if p == "" {
			problems = append(problems, fmt.Sprintf("extraLabelPaths[%d] is empty", i))
		}
	}
	if k.usesCEL() {
		if err := CompileReadiness(k.Readiness); err != nil {
			problems = append(problems, fmt.Sprintf("readiness %q is neither a built-in rule (%s) nor a CEL expression: %v", k.Readiness, strings.Join(ReadinessNames(), ", "), err))
		}
	}
	for i, g := range k.Guards {
		if err := g.validate(); err != nil {
			problems = append(problems, fmt.Sprintf("guards[%d]: %v", i, err))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("kind %s: %s", k.GroupKind(), strings.Join(problems, "; "))
	}
	return nil
}
