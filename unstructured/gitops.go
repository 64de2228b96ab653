package unstructured

import (
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"relabel.dev/relabel/rules"
)

// GitOpsOwner is the object of a GitOps controller that applies a workload
// from its source and would re-apply the old selector in the middle of a
// migration.
type GitOpsOwner struct {
	Kind      rules.GitOpsKind
	Namespace string
	Name      string
	// Guess: found only by Argo CD's default tracking label
	// app.kubernetes.io/instance, which Helm charts set too; it holds only
	// when an Application of that name exists.
	Guess bool
}

// Ref is "Flux Kustomization flux-system/apps".
func (o GitOpsOwner) String() string {
	return o.Kind.String() + " " + o.Namespace + "/" + o.Name
}

// Key identifies the owner object.
func (o GitOpsOwner) Key() string {
	return o.Kind.Group + "/" + o.Kind.Kind + " " + o.Namespace + "/" + o.Name
}

const (
	fluxKustomizeName      = "kustomize.toolkit.fluxcd.io/name"
	fluxKustomizeNamespace = "kustomize.toolkit.fluxcd.io/namespace"
	fluxHelmName           = "helm.toolkit.fluxcd.io/name"
	fluxHelmNamespace      = "helm.toolkit.fluxcd.io/namespace"
	argoTrackingID         = "argocd.argoproj.io/tracking-id"
	argoInstance           = "argocd.argoproj.io/instance"
	appInstance            = "app.kubernetes.io/instance"
)

// GitOpsOwners finds, from obj's labels and annotations, the GitOps objects
// that apply it: Flux Kustomizations and HelmReleases by their labels, Argo
// CD Applications by their tracking annotation (APP:GROUP/KIND:NS/NAME, APP
// being NS_NAME for Applications outside argocdNamespace), their instance
// label, or, without a Helm marker, app.kubernetes.io/instance (a Guess).
func GitOpsOwners(obj *unstructured.Unstructured, argocdNamespace string) []GitOpsOwner {
	l, a := obj.GetLabels(), obj.GetAnnotations()
	var out []GitOpsOwner
	if name, ns := l[fluxKustomizeName], l[fluxKustomizeNamespace]; name != "" && ns != "" {
		out = append(out, GitOpsOwner{Kind: rules.FluxKustomization, Namespace: ns, Name: name})
	}
	if name, ns := l[fluxHelmName], l[fluxHelmNamespace]; name != "" && ns != "" {
		out = append(out, GitOpsOwner{Kind: rules.FluxHelmRelease, Namespace: ns, Name: name})
	}
	switch {
	case a[argoTrackingID] != "":
		if app, ok := trackedBy(obj, a[argoTrackingID]); ok {
			out = append(out, argoApp(app, argocdNamespace, false))
		}
	case l[argoInstance] != "":
		out = append(out, argoApp(l[argoInstance], argocdNamespace, false))
	case l[appInstance] != "" && !helmManaged(obj):
		out = append(out, argoApp(l[appInstance], argocdNamespace, true))
	}
	return out
}

// trackedBy returns the Application of an Argo CD tracking id, when the id
// is about obj itself: one copied onto another object tracks nothing.
func trackedBy(obj *unstructured.Unstructured, id string) (string, bool) {
	app, rest, ok := strings.Cut(id, ":")
	if !ok || app == "" {
		return "", false
	}
	groupKind, nsName, ok := strings.Cut(rest, ":")
	if !ok {
		return "", false
	}
	group, kind, ok := strings.Cut(groupKind, "/")
	if !ok {
		return "", false
	}
	ns, name, ok := strings.Cut(nsName, "/")
	if !ok {
		return "", false
	}
	gv := obj.GroupVersionKind()
	if group != gv.Group || kind != gv.Kind || ns != obj.GetNamespace() || name != obj.GetName() {
		return "", false
	}
	return app, true
}

// argoApp names an Application: NS_NAME outside the control plane's
// namespace (namespaces have no underscore), else NAME there.
func argoApp(app, argocdNamespace string, guess bool) GitOpsOwner {
	if ns, name, ok := strings.Cut(app, "_"); ok && ns != "" && name != "" {
		return GitOpsOwner{Kind: rules.ArgoCDApplication, Namespace: ns, Name: name, Guess: guess}
	}
	return GitOpsOwner{Kind: rules.ArgoCDApplication, Namespace: argocdNamespace, Name: app, Guess: guess}
}

func helmManaged(obj *unstructured.Unstructured) bool {
	return obj.GetLabels()["app.kubernetes.io/managed-by"] == "Helm" || obj.GetAnnotations()["meta.helm.sh/release-name"] != ""
}

// OriginalOf rebuilds, from a temporary copy, the metadata its original
// had: its name and the tracking labels and annotations taken off the copy.
// Only the metadata is meant to be read.
func OriginalOf(copy *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	obj := &unstructured.Unstructured{}
	obj.SetAPIVersion(copy.GetAPIVersion())
	obj.SetKind(copy.GetKind())
	obj.SetNamespace(copy.GetNamespace())
	obj.SetName(copy.GetAnnotations()[OriginNameAnnotation])
	obj.SetLabels(copy.GetLabels())
	obj.SetAnnotations(copy.GetAnnotations())
	if err := retrack(obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// PausedAnnotation, on a GitOps object, records what relabel changed to
// pause it: a PauseRecord. A rerun after a crash finds it there.
const PausedAnnotation = "relabel.dev/paused"

// PauseRecord is what relabel changed on a GitOps object, and who did.
type PauseRecord struct {
	// Path is the field relabel changed.
	Path rules.Path `json:"path"`
	// Previous is the field's value before; absent when it was not set.
	Previous json.RawMessage `json:"previous,omitempty"`
	// Holder is the run's Lease holder identity, LeaseNamespace where its Lease is.
	Holder         string `json:"holder"`
	LeaseNamespace string `json:"leaseNamespace,omitempty"`
}

// RecordOf reads the PauseRecord on a GitOps object; nil when it has none.
func RecordOf(owner *unstructured.Unstructured) (*PauseRecord, error) {
	data, ok := owner.GetAnnotations()[PausedAnnotation]
	if !ok {
		return nil, nil
	}
	var r PauseRecord
	if err := json.Unmarshal([]byte(data), &r); err != nil {
		return nil, fmt.Errorf("reading %s of %s/%s: %w", PausedAnnotation, owner.GetNamespace(), owner.GetName(), err)
	}
	return &r, nil
}

// PauseDecision is what to do to pause one GitOps object.
type PauseDecision struct {
	// Patch is a merge patch, guarded by the object's resourceVersion; nil
	// when nothing is to be written.
	Patch []byte
	// Record is relabel's record on the object after the patch; nil when
	// relabel leaves the object alone.
	Record *PauseRecord
	// Why says what was decided, for people.
	Why string
}

// DecidePause decides how to pause owner (what the cluster shows now) for a
// run named holder. An object the user paused already is left alone and is
// never resumed by relabel; one that carries a record already (a run that
// crashed) stays as it is, and the record is taken over as it is.
func DecidePause(owner *unstructured.Unstructured, kind rules.GitOpsKind, holder, leaseNamespace string) (PauseDecision, error) {
	ref := kind.String() + " " + owner.GetNamespace() + "/" + owner.GetName()
	rec, err := RecordOf(owner)
	if err != nil {
		return PauseDecision{}, err
	}
	if rec != nil {
		return PauseDecision{Record: rec, Why: ref + " was paused by an earlier run (" + rec.Holder + "); it stays paused"}, nil
	}
	value, found, err := unstructured.NestedFieldNoCopy(owner.Object, kind.Path.Fields()...)
	if err != nil {
		return PauseDecision{}, fmt.Errorf("reading %s of %s: %w", kind.Path, ref, err)
	}
	switch kind.Pause {
	case rules.PauseSuspend:
		if value == true {
			return PauseDecision{Why: ref + " is suspended already; relabel leaves it so"}, nil
		}
	case rules.PauseAutomated:
		if !found || value == nil {
			return PauseDecision{Why: ref + " does not sync automatically; nothing to pause"}, nil
		}
	default:
		return PauseDecision{}, fmt.Errorf("%s: unknown pause method %q", ref, kind.Pause)
	}
	rec = &PauseRecord{Path: kind.Path, Holder: holder, LeaseNamespace: leaseNamespace}
	if found {
		if rec.Previous, err = json.Marshal(value); err != nil {
			return PauseDecision{}, fmt.Errorf("recording %s of %s: %w", kind.Path, ref, err)
		}
	}
	var set any = true
	if kind.Pause == rules.PauseAutomated {
		set = nil // a merge patch removes it
	}
	patch, err := guardedPatch(owner, kind.Path, set, rec)
	if err != nil {
		return PauseDecision{}, fmt.Errorf("pausing %s: %w", ref, err)
	}
	return PauseDecision{Patch: patch, Record: rec, Why: "paused " + ref}, nil
}

// RestoreDecision is what to do to undo relabel's pause of a GitOps object.
type RestoreDecision struct {
	// Patch is a merge patch, guarded by the object's resourceVersion; nil
	// when nothing is to be written.
	Patch []byte
	// Dropped: someone changed the field since relabel paused the object;
	// only the record is taken off, their change stays.
	Dropped bool
	Why     string
}

// DecideRestore decides how to undo what the record on owner says relabel
// changed: put the previous value back, exactly, only while the field is
// still as relabel left it.
func DecideRestore(owner *unstructured.Unstructured, kind rules.GitOpsKind) (RestoreDecision, error) {
	ref := kind.String() + " " + owner.GetNamespace() + "/" + owner.GetName()
	rec, err := RecordOf(owner)
	if err != nil {
		return RestoreDecision{}, err
	}
	if rec == nil {
		return RestoreDecision{Why: ref + " carries no record of relabel's; nothing to restore"}, nil
	}
	value, found, err := unstructured.NestedFieldNoCopy(owner.Object, rec.Path.Fields()...)
	if err != nil {
		return RestoreDecision{}, fmt.Errorf("reading %s of %s: %w", rec.Path, ref, err)
	}
	var asLeft bool
	switch kind.Pause {
	case rules.PauseSuspend:
		asLeft = value == true
	case rules.PauseAutomated:
		asLeft = !found || value == nil
	}
	if !asLeft {
		patch, err := guardedPatch(owner, "", nil, nil)
		if err != nil {
			return RestoreDecision{}, err
		}
		return RestoreDecision{Patch: patch, Dropped: true,
			Why: fmt.Sprintf("%s: %s was changed by someone else since relabel paused it; their change stays, relabel's record is dropped", ref, rec.Path)}, nil
	}
	var previous any // absent before: a merge patch removes it
	if len(rec.Previous) > 0 {
		if err := json.Unmarshal(rec.Previous, &previous); err != nil {
			return RestoreDecision{}, fmt.Errorf("reading the previous %s of %s: %w", rec.Path, ref, err)
		}
	}
	patch, err := guardedPatch(owner, rec.Path, previous, nil)
	if err != nil {
		return RestoreDecision{}, fmt.Errorf("resuming %s: %w", ref, err)
	}
	return RestoreDecision{Patch: patch, Why: "resumed " + ref}, nil
}

// guardedPatch is a merge patch that sets path to value (nil removes it;
// an empty path changes no field) and the record annotation (nil removes
// it), refused by the API server with a conflict if owner changed since it
// was read.
func guardedPatch(owner *unstructured.Unstructured, path rules.Path, value any, rec *PauseRecord) ([]byte, error) {
	var annotation any
	if rec != nil {
		data, err := json.Marshal(rec)
		if err != nil {
			return nil, err
		}
		annotation = string(data)
	}
	patch := map[string]any{"metadata": map[string]any{
		"resourceVersion": owner.GetResourceVersion(),
		"annotations":     map[string]any{PausedAnnotation: annotation},
	}}
	if path != "" {
		fields := path.Fields()
		m := patch
		for _, f := range fields[:len(fields)-1] {
			next, ok := m[f].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[f] = next
			}
			m = next
		}
		m[fields[len(fields)-1]] = value
	}
	return json.Marshal(patch)
}
