package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/klog/v2"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"relabel.dev/relabel/rules"
	workload "relabel.dev/relabel/unstructured"
)

// Action is what the plan does with an object.
type Action string

const (
	// ActionMigrate: the object lacks the label.
	ActionMigrate Action = "migrate"
	// ActionResume: a run was interrupted; the copy or the backup finishes it.
	ActionResume Action = "resume"
	// ActionSkip: nothing to do, or not allowed; Reason says why.
	ActionSkip Action = "skip"
)

// Item is one object of the plan.
type Item struct {
	Kind      rules.Kind
	Namespace string
	Name      string
	Action    Action
	Strategy  rules.Strategy
	// Label is what the object gets.
	Label  workload.Label
	Reason string
	// ManagedBy names a tool that may revert the change (Helm, Argo CD, Flux).
	ManagedBy string
	// GitOps are the GitOps objects that apply it from a source.
	GitOps []workload.GitOpsOwner
	// Conflict: the selector already has the key with another value.
	Conflict bool
}

// Key identifies the item in messages: GVR namespace/name.
func (it Item) Key() string {
	return it.Kind.GVRString() + " " + it.Ref()
}

// Ref is namespace/name, or name for cluster-scoped objects.
func (it Item) Ref() string {
	if it.Namespace == "" {
		return it.Name
	}
	return it.Namespace + "/" + it.Name
}

// PlanOptions decide which objects are taken.
type PlanOptions struct {
	Label workload.Label
	// IncludeOwned migrates objects controlled by another object too.
	IncludeOwned bool
	// NamespaceGiven is set when the user named the namespace: kube-system
	// is then taken too.
	NamespaceGiven bool
	// Strategy is auto (the kind's default, adjusted per object), temp-copy or adopt.
	Strategy rules.Strategy
	// Backups holds adopt markers of interrupted runs; nil finds none.
	Backups *Backups
	// MaxSurgePods bounds the pods one copy may add (its replica count);
	// auto adopts objects above it. Zero means no bound.
	MaxSurgePods int64
	// Rules, when it has rules, gives each object its label and strategy;
	// Label and Strategy apply to objects no rule matches.
	Rules *rules.File
	// ArgoCDNamespace is where Argo CD's Applications are unless their
	// tracking names another namespace; "argocd" when empty.
	ArgoCDNamespace string
}

func (opts PlanOptions) argocdNamespace() string {
	if opts.ArgoCDNamespace == "" {
		return "argocd"
	}
	return opts.ArgoCDNamespace
}

// labelFor decides the label and strategy of obj: its rule's, else the defaults.
// An empty label means no rule matched and there is no default.
func (opts PlanOptions) labelFor(kind rules.Kind, obj *unstructured.Unstructured) (workload.Label, rules.Strategy, string, error) {
	if opts.Rules != nil && len(opts.Rules.Rules) > 0 {
		if rule, ok := opts.Rules.Match(kind, obj); ok {
			label, err := rule.LabelFor(obj)
			if err != nil {
				return workload.Label{}, "", "", err
			}
			strategy := opts.Strategy
			if rule.Strategy != "" {
				strategy = rule.Strategy
			}
			name := rule.Name
			if name == "" {
				name = "a rule"
			}
			return label, strategy, "rule " + name, nil
		}
	}
	return opts.Label, opts.Strategy, "", nil
}

// ErrStrategyRefused marks a strategy that cannot work for an object.
var ErrStrategyRefused = errors.New("strategy refused")

// ErrBadRule marks kind facts that do not fit the cluster's objects.
var ErrBadRule = errors.New("the kind's rule does not fit the object")

// chooseStrategy picks how to migrate obj and says why. The kind's guards
// and host ports rule out a copy; an explicit strategy that cannot work is
// refused rather than bent.
func chooseStrategy(kind rules.Kind, obj *unstructured.Unstructured, asked rules.Strategy, maxSurgePods int64) (rules.Strategy, string, error) {
	ref := obj.GetNamespace() + "/" + obj.GetName()
	noCopy := kind.Eligible(obj).NoCopyReasons
	if ports := workload.HostPorts(obj, kind); kind.HostPortsBlockCopy && len(ports) > 0 {
		noCopy = append(noCopy, fmt.Sprintf("its pods use host ports %v: a copy could never be scheduled next to it", ports))
	}
	switch asked {
	case rules.TempCopy:
		if len(noCopy) > 0 {
			alternative := "use --strategy adopt or auto"
			if !kind.CanAdopt() {
				alternative = "the kind has no adopt rule either"
			}
			return "", "", fmt.Errorf("%w: temp-copy of %s %s: %s; %s", ErrStrategyRefused, kind.Kind, ref, strings.Join(noCopy, "; "), alternative)
		}
		return rules.TempCopy, "asked", nil
	case rules.Adopt:
		if !kind.CanAdopt() {
			return "", "", fmt.Errorf("%w: %s has no adopt rule (what its controller owns); use --strategy temp-copy", ErrStrategyRefused, kind.Kind)
		}
		return rules.Adopt, "asked", nil
	}
	replicas, found, _ := unstructured.NestedInt64(obj.Object, "spec", "replicas")
	switch {
	case len(noCopy) > 0 && kind.CanAdopt():
		return rules.Adopt, "no copy: " + noCopy[0], nil
	case len(noCopy) > 0:
		return "", "", fmt.Errorf("%w: %s %s cannot be copied (%s) and the kind has no adopt rule", ErrStrategyRefused, kind.Kind, ref, strings.Join(noCopy, "; "))
	case maxSurgePods > 0 && found && replicas > maxSurgePods && kind.CanAdopt():
		return rules.Adopt, fmt.Sprintf("a copy would add %d pods, over --max-surge-pods %d", replicas, maxSurgePods), nil
	case kind.Strategy == rules.Adopt && kind.CanAdopt():
		return rules.Adopt, "the kind's default", nil
	}
	return rules.TempCopy, "the kind's default", nil
}

// Plan lists the objects in scope and decides what to do with each. It
// writes nothing.
func Plan(ctx context.Context, lister Auditor, scope Scope, opts PlanOptions) ([]Item, error) {
	var items []Item
	for _, kind := range scope.Kinds {
		type temp struct {
			namespace, origin, label string
			gitops                   []workload.GitOpsOwner
		}
		// originals maps namespace/name to the object's place in items.
		originals := map[string]int{}
		var temps []temp
		err := lister.list(ctx, kind, scope, func(obj *unstructured.Unstructured) error {
			if workload.IsTemp(obj) {
				ann := obj.GetAnnotations()
				// The copy carries its original's tracking metadata aside.
				original, err := workload.OriginalOf(obj)
				if err != nil {
					return err
				}
				temps = append(temps, temp{obj.GetNamespace(), ann[workload.OriginNameAnnotation], ann[workload.TargetAnnotation],
					workload.GitOpsOwners(original, opts.argocdNamespace())})
				return nil
			}
			item, err := planObject(kind, obj, opts)
			if err != nil {
				return err
			}
			originals[obj.GetNamespace()+"/"+obj.GetName()] = len(items)
			items = append(items, item)
			return nil
		})
		if err != nil {
			return nil, err
		}
		// A copy whose original is gone is a migration interrupted after the
		// delete: the original must come back.
		for _, t := range temps {
			if i, ok := originals[t.namespace+"/"+t.origin]; ok {
				switch it := &items[i]; {
				// A copy left next to a finished original is cleaned up.
				case it.Action == ActionSkip && it.Reason == ReasonLabelled:
					it.Action, it.Reason = ActionResume, "labelled, its temporary copy is left"
				// An interrupted run deleted it and a finalizer holds it: it must come back.
				case it.Action == ActionSkip && it.Reason == reasonDeleting && t.label != "":
					label, err := workload.ParseLabel(t.label, false)
					if err != nil {
						return nil, fmt.Errorf("the copy of %s/%s records an unusable label %q: %w", t.namespace, t.origin, t.label, err)
					}
					it.Action, it.Strategy, it.Label = ActionResume, rules.TempCopy, label
					it.Reason = "being deleted, its temporary copy serves; recreated once it is gone"
				}
				continue
			}
			if t.origin == "" {
				continue
			}
			// The copy records the label its run was adding.
			label, err := workload.ParseLabel(t.label, false)
			if err != nil {
				return nil, fmt.Errorf("the copy of %s/%s records an unusable label %q: %w", t.namespace, t.origin, t.label, err)
			}
			items = append(items, Item{Kind: kind, Namespace: t.namespace, Name: t.origin, Action: ActionResume,
				Strategy: rules.TempCopy, Label: label, Reason: "original missing, its temporary copy exists", GitOps: t.gitops})
		}
		// An original orphan-deleted by adopt comes back from its backup; a
		// relabelled one still has its old revisions to clean up.
		if opts.Backups != nil {
			markers, err := opts.Backups.AdoptMarkers(kind, scope.Namespace)
			if err != nil {
				return nil, err
			}
			for _, mk := range markers {
				// The run that orphan-deleted it was adding this label: finish with it.
				_, label, err := opts.Backups.AdoptMarker(kind, mk[0], mk[1])
				if err != nil {
					return nil, err
				}
				if i, ok := originals[mk[0]+"/"+mk[1]]; ok {
					switch it := &items[i]; {
					case it.Action == ActionSkip && it.Reason == ReasonLabelled:
						it.Action, it.Strategy, it.Label, it.Reason = ActionResume, rules.Adopt, label, "labelled, adoption not finished"
					case it.Action == ActionSkip && it.Reason == reasonDeleting:
						it.Action, it.Strategy, it.Label, it.Reason = ActionResume, rules.Adopt, label, "being orphan-deleted by an interrupted run; recreated once gone"
					}
					continue
				}
				items = append(items, Item{Kind: kind, Namespace: mk[0], Name: mk[1], Action: ActionResume,
					Strategy: rules.Adopt, Label: label, Reason: "original missing after its orphan delete"})
			}
		}
	}
	if err := planRecords(ctx, lister, scope, &items); err != nil {
		return nil, err
	}
	sort.SliceStable(items, func(i, j int) bool {
		if items[i].Namespace != items[j].Namespace {
			return items[i].Namespace < items[j].Namespace
		}
		return items[i].Key() < items[j].Key()
	})
	return items, nil
}

const reasonDeleting = "being deleted"

// ReasonLabelled is the reason of objects that need nothing.
const ReasonLabelled = "already labelled"

func planObject(kind rules.Kind, obj *unstructured.Unstructured, opts PlanOptions) (Item, error) {
	it := Item{Kind: kind, Namespace: obj.GetNamespace(), Name: obj.GetName(), Strategy: kind.Strategy, ManagedBy: managedBy(obj),
		GitOps: workload.GitOpsOwners(obj, opts.argocdNamespace())}
	label, asked, ruleName, err := opts.labelFor(kind, obj)
	if err != nil {
		it.Action, it.Reason = ActionSkip, err.Error()
		return it, nil
	}
	if label.Key == "" {
		it.Action, it.Reason = ActionSkip, "no rule matches"
		return it, nil
	}
	it.Label = label
	report, err := workload.Check(obj, kind, label)
	if err != nil {
		return it, err
	}
	conflicts, err := workload.Conflicts(obj, kind, label)
	if err != nil {
		return it, err
	}
	switch {
	case report.Complete():
		it.Action, it.Reason = ActionSkip, ReasonLabelled
	case report.Selector == workload.Different:
		it.Action, it.Reason, it.Conflict = ActionSkip, fmt.Sprintf("selector has %s with another value", label.Key), true
	case len(conflicts) > 0:
		it.Action, it.Conflict = ActionSkip, true
		it.Reason = strings.Join(conflicts, "; ") + ": relabelling would move its pods out of whatever selects that value (a Service, a NetworkPolicy)"
	case workload.ControllerOf(obj) != "" && !opts.IncludeOwned:
		it.Action, it.Reason = ActionSkip, "controlled by "+workload.ControllerOf(obj)+"; migrate the owner, or pass --include-owned"
	case obj.GetNamespace() == "kube-system" && !opts.NamespaceGiven:
		it.Action, it.Reason = ActionSkip, "in kube-system; name the namespace to include it"
	case obj.GetDeletionTimestamp() != nil:
		it.Action, it.Reason = ActionSkip, reasonDeleting
	case kind.Eligible(obj).SkipReason != "":
		it.Action, it.Reason = ActionSkip, kind.Eligible(obj).SkipReason
	case !kind.CanJudge():
		return it, fmt.Errorf("%w: %s %s/%s: %s", ErrStrategyRefused, kind.Kind, obj.GetNamespace(), obj.GetName(), rules.ReadinessHelp(kind))
	default:
		it.Action = ActionMigrate
		strategy, why, err := chooseStrategy(kind, obj, asked, opts.MaxSurgePods)
		if err != nil {
			return it, err
		}
		if ruleName != "" {
			why = ruleName + "; " + why
		}
		it.Strategy, it.Reason = strategy, why
		// A rule whose paths are not in the object is a broken rule: stop before any write.
		probe := workload.ForCreate(obj)
		if err := workload.AddLabel(probe, kind, label); err != nil {
			if !errors.Is(err, workload.ErrSelectorConflict) {
				return it, fmt.Errorf("%w: %w", ErrBadRule, err)
			}
			it.Action, it.Reason, it.Conflict = ActionSkip, err.Error(), true
		}
	}
	return it, nil
}

// Count returns how many items of the plan will be acted on.
func Count(items []Item) (act, skip int) {
	for _, it := range items {
		if it.Action == ActionSkip {
			skip++
		} else {
			act++
		}
	}
	return act, skip
}

// planRecords finds, from the adopt records in the cluster, originals an
// interrupted adopt migration orphan-deleted and did not bring back, or
// left to clean up: so a rerun from any machine, whatever its backup
// directory holds, finishes the job.
func planRecords(ctx context.Context, lister Auditor, scope Scope, items *[]Item) error {
	for _, kind := range scope.Kinds {
		if !kind.CanAdopt() {
			continue
		}
		records, err := findRecords(ctx, lister.Dynamic, kind, scope.Namespace)
		if apierrors.IsForbidden(err) {
			// Who may not list pods never labelled any for adoption either.
			klog.V(2).InfoS("not looking for adopt records", "kind", kind.GVRString(), "err", err)
			continue
		}
		if err != nil {
			return err
		}
		for key, rec := range records {
			namespace, name, _ := strings.Cut(key, "/")
			found := false
			for i := range *items {
				it := &(*items)[i]
				if it.Kind.GVR() != kind.GVR() || it.Namespace != namespace || it.Name != name {
					continue
				}
				found = true
				if it.Action == ActionSkip && (it.Reason == ReasonLabelled || it.Reason == reasonDeleting) {
					it.Action, it.Strategy, it.Label, it.Reason = ActionResume, rules.Adopt, rec.label, "adoption not finished (recorded on its pods)"
				}
			}
			if !found {
				*items = append(*items, Item{Kind: kind, Namespace: namespace, Name: name, Action: ActionResume,
					Strategy: rules.Adopt, Label: rec.label, Reason: "original missing after its orphan delete (recorded on its pods)"})
			}
		}
	}
	return nil
}
