package engine

import (
	"context"
	"encoding/json"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/klog/v2"

	"relabel.dev/relabel/rules"
	workload "relabel.dev/relabel/unstructured"
)

// OrphanOfLabel marks, before an orphan delete, the owned objects the
// recreated owner will not adopt; its value is the owner's name.
const OrphanOfLabel = "relabel.dev/orphan-of"

// Steps of the adopt strategy.
const (
	StepDependentsLabelled Step = "dependents-labelled"
	StepOrphaned           Step = "original-orphaned"
	StepOrphansDeleted     Step = "orphans-deleted"
)

// runAdopt migrates in place: the live pods (and, for a Deployment, its
// ReplicaSets) get the label, the original is deleted with orphan
// propagation, and the recreated object adopts what it left running; its
// controller then rolls the pods at its own pace. Like run, every pass reads
// the cluster and the adopt marker next to the backup, decides, and acts.
func (om objectMigration) runAdopt(ctx context.Context) error {
	it, kind := om.item, om.item.Kind
	var mem memory
	for pass := 0; pass < maxPasses; pass++ {
		original, err := om.read(ctx, it.Name)
		if err != nil {
			return err
		}
		oldUID, markedLabel, err := om.Backups.AdoptMarker(kind, it.Namespace, it.Name)
		if err != nil {
			return err
		}
		// The cluster's record stands in for a marker on another machine's disk.
		record, err := om.findRecord(ctx)
		if err != nil {
			return err
		}
		if oldUID == "" && record != nil {
			oldUID, markedLabel = record.uid, record.label
		}
		o := Observed{Original: presence(original), Marker: oldUID != "",
			OriginalGaveUp: mem.originalGaveUp, Refused: mem.refused, Replaces: mem.replaces}
		if original != nil {
			o.OriginalLabelled = isComplete(original, om)
			o.MarkerOfThisOriginal = oldUID == string(original.GetUID())
			if o.Marker && !o.MarkerOfThisOriginal {
				report, err := workload.Check(original, kind, markedLabel)
				o.MarkerLeftOver = err == nil && report.Complete()
			}
			if v, err := kind.Judge(original); err == nil {
				o.OriginalReady = v.Ready
			}
		}
		d := decideAdopt(o)
		klog.V(5).InfoS("decided", "object", it.Key(), "observed", o, "decision", d.String())
		if ctx.Err() != nil && d.Next != Done && !d.MustContinue() {
			return ctx.Err()
		}
		switch d.Next {
		case Done:
			return nil

		case Stop:
			switch d.Reason {
			case reasonGone:
				return errorf(it, "the object no longer exists")
			case reasonOtherWriter:
				return errorf(it, "%s was created by %s, not by relabel, after relabel orphan-deleted the original (uid %s); its pods were labelled and may have been adopted by it. Check %s, then remove %s and rerun",
					it.Name, om.creator(ctx, original), oldUID, it.Name, om.Backups.markerPath(kind, it.Namespace, it.Name))
			case reasonDeletedByOther:
				return errorf(it, "it is being deleted by someone else (finalizers %v); relabel leaves it alone", original.GetFinalizers())
			}
			if o.OriginalLabelled {
				return errorf(it, "%s; its adopted pods keep serving, rerun to finish", d.Reason)
			}
			return errorf(it, "%s; nothing was changed", d.Reason)

		case OrphanOriginal:
			original, changed, err := om.wholeOf(ctx, original)
			if err != nil {
				return err
			}
			if changed {
				continue // the cache was behind: decide on what the API server has
			}
			mem.replaces++
			if mem.refused, err = om.admitRecreated(ctx, original); err != nil {
				return err
			}
			if mem.refused != "" {
				continue // nothing is touched when the API server would refuse the new object
			}
			if err := om.orphan(ctx, original); err != nil {
				return err
			}

		case WaitOriginalGone:
			// Orphan propagation holds the object until the garbage collector
			// has released its dependents; only then is it gone.
			if err := om.waitGone(context.WithoutCancel(ctx), original, "its pods keep running"); err != nil {
				return err
			}

		case RecreateAdopting:
			// Orphan-deleted by us: label what the old object left, then bring
			// it back, whatever ctx says.
			ctx := context.WithoutCancel(ctx)
			backup, err := om.Backups.ReadUID(kind, it.Namespace, it.Name, oldUID)
			if backup == nil && record != nil && record.uid == oldUID {
				backup, err = record.original, nil
			}
			if err != nil || backup == nil {
				return errorf(it, "the original was orphan-deleted but neither its backup nor the record on its pods can be read (%v); run relabel restore", err)
			}
			// Pods created by the old controller after the first labelling are caught here.
			if err := om.labelDependents(ctx, backup, oldUID); err != nil {
				return err
			}
			if err := om.recreateFrom(ctx, backup, nil); err != nil {
				return err
			}

		case WaitOriginalReady:
			if mem.originalGaveUp, err = om.waitReady(ctx, original); err != nil {
				return err
			}

		case DeleteOrphans:
			om.window.grow()
			om.report(it, om.start, StepReady, "")
			if err := om.deleteOrphans(ctx, original); err != nil {
				return err
			}
			if err := om.clearRecords(ctx, oldUID); err != nil {
				return err
			}
		}
	}
	return errorf(it, "gave up after %d passes: the cluster kept changing under relabel; rerun when it settles", maxPasses)
}

// orphan backs the original up, labels what it owns, records the marker and
// deletes it with orphan propagation.
func (om objectMigration) orphan(ctx context.Context, original *unstructured.Unstructured) error {
	it, kind := om.item, om.item.Kind
	if _, err := om.Backups.Write(kind, original); err != nil {
		return err
	}
	om.report(it, om.start, StepBackedUp, "")
	if err := om.labelDependents(ctx, original, string(original.GetUID())); err != nil {
		return err
	}
	// From the marker on, a rerun knows the original must come back.
	if err := om.Backups.MarkAdopt(kind, it.Namespace, it.Name, string(original.GetUID()), it.Label); err != nil {
		return err
	}
	deleted, err := om.deleteOriginal(ctx, original, metav1.DeletePropagationOrphan)
	if err != nil || !deleted {
		return err
	}
	om.report(it, om.start, StepOrphaned, "")
	return nil
}

// labelDependents adds the label to what the kind's rule says the owner's
// controller owns (directly, or through an owned object), or what it left
// orphaned, among the objects its selector matches.
func (om objectMigration) labelDependents(ctx context.Context, owner *unstructured.Unstructured, ownerUID string) error {
	it, kind := om.item, om.item.Kind
	selector, err := workload.Selector(owner, kind)
	if err != nil {
		return errorf(it, "%w", err)
	}
	owners := map[types.UID]bool{types.UID(ownerUID): true}
	labelled := 0
	for _, pass := range []bool{false, true} { // direct dependents first, then theirs
		for _, dep := range kind.Owned {
			if dep.Indirect != pass {
				continue
			}
			// What the new owner adopts gets the label, and the record of the
			// adoption; what it will not (revision history) is marked, so any
			// later run can clean it up.
			key, value := om.item.Label.Key, om.item.Label.Value
			labels, annotations := map[string]any{}, map[string]any{}
			if dep.Action == rules.DeleteOrphans {
				key, value = OrphanOfLabel, it.Name
			} else if labels, annotations, err = recordMetadata(kind, owner, ownerUID, om.item.Label); err != nil {
				return errorf(it, "%w", err)
			}
			labels[key] = value
			client, list, err := om.listOwned(ctx, dep, selector)
			if err != nil {
				return err
			}
			for i := range list {
				obj := &list[i]
				// Ours, or left orphaned by the orphan delete; never another controller's.
				if ref := metav1.GetControllerOf(obj); ref != nil && !owners[ref.UID] {
					continue
				}
				owners[obj.GetUID()] = true
				if obj.GetLabels()[key] == value && (len(annotations) == 0 || obj.GetLabels()[AdoptUIDLabel] == ownerUID) {
					continue
				}
				meta := map[string]any{"labels": labels}
				if len(annotations) > 0 {
					meta["annotations"] = annotations
				}
				patch, _ := json.Marshal(map[string]any{"metadata": meta})
				if _, err := client.Patch(ctx, obj.GetName(), types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
					return errorf(it, "labelling %s %s: %w", dep.Resource, obj.GetName(), err)
				}
				labelled++
			}
		}
	}
	if labelled > 0 {
		om.report(it, om.start, StepDependentsLabelled, fmt.Sprintf("%d objects", labelled))
	}
	return nil
}

// listOwned lists the objects of an owned resource that the selector matches.
func (om objectMigration) listOwned(ctx context.Context, dep rules.Owned, selector labels.Selector) (dynamic.ResourceInterface, []unstructured.Unstructured, error) {
	client := om.Dynamic.Resource(dep.GVR()).Namespace(om.item.Namespace)
	list, err := client.List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
	if err != nil {
		return nil, nil, errorf(om.item, "listing %s: %w", dep.Resource, err)
	}
	return client, list.Items, nil
}

// deleteOrphans removes, once the recreated object is ready, the revision
// history its predecessors left behind: what labelDependents marked and no
// controller adopted.
func (om objectMigration) deleteOrphans(ctx context.Context, original *unstructured.Unstructured) error {
	it, kind := om.item, om.item.Kind
	marked, err := labels.Parse(OrphanOfLabel + "=" + it.Name)
	if err != nil {
		return errorf(it, "%w", err)
	}
	deleted := 0
	for _, dep := range kind.Owned {
		if dep.Action != rules.DeleteOrphans {
			continue
		}
		client, list, err := om.listOwned(ctx, dep, marked)
		if err != nil {
			return err
		}
		for i := range list {
			obj := &list[i]
			if metav1.GetControllerOf(obj) != nil {
				continue
			}
			uid := obj.GetUID()
			err := client.Delete(ctx, obj.GetName(), metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
			if err != nil && !apierrors.IsNotFound(err) {
				return errorf(it, "deleting the orphaned %s %s: %w", dep.Resource, obj.GetName(), err)
			}
			deleted++
		}
	}
	om.report(it, om.start, StepOrphansDeleted, fmt.Sprintf("%d objects", deleted))
	if err := om.Backups.ClearAdopt(kind, it.Namespace, it.Name); err != nil {
		return err
	}
	// The one event of a migration, on the object that stays.
	om.event(original, "Relabelled", "relabel recreated %s with %s in its selector, template and labels; it adopted the running pods", it.Name, om.item.Label)
	return nil
}

// clearRecords takes the adopt record off what the new owner adopted.
func (om objectMigration) clearRecords(ctx context.Context, uid string) error {
	if err := clearAdoptRecords(ctx, om.Dynamic, om.item.Kind, om.item.Namespace, uid); err != nil {
		return errorf(om.item, "%w", err)
	}
	return nil
}
