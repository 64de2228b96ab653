package engine

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"

	"relabel.dev/relabel/rules"
	workload "relabel.dev/relabel/unstructured"
)

// objectMigration is the temp-copy migration of one object. Every pass of
// run reads the cluster and takes the next step from what it shows, so a run
// interrupted at any point is finished by the next one.
type objectMigration struct {
	*Migrator
	watch *watchers
	item  Item
	start time.Time
	reads *reads
	// window is what this object holds a slot of; it opens as copies become ready.
	window *window
}

func (om objectMigration) client() dynamic.ResourceInterface {
	return resourceClient(om.Dynamic, om.item.Kind, om.item.Namespace)
}

func (om objectMigration) tempName() string {
	return workload.TempName(om.item.Name, om.TempSuffix, om.item.Kind.MaxNameLength)
}

// get returns the object, or nil when it does not exist.
func (om objectMigration) get(ctx context.Context, name string) (*unstructured.Unstructured, error) {
	obj, err := om.client().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, errorf(om.item, "reading %s: %w", name, err)
	}
	return obj, nil
}

// maxReplaces bounds the attempts to delete one original in one run. Each
// ends early when the original changed under relabel (a conflict on the
// delete): a writer that keeps changing it is not fought without end.
const maxReplaces = 5

// maxPasses bounds the passes of one object in one run: every action moves
// the object on, so more passes than this mean the cluster keeps changing.
const maxPasses = 50

// memory is what a run learnt of an object that the cluster does not show:
// that a wait gave up, that admission refused, how often it tried.
type memory struct {
	copyGaveUp, originalGaveUp, refused string
	replaces                            int
	rolledBack                          bool
}

// tempCopyState is what one pass read: the objects, and the facts of them.
type tempCopyState struct {
	original, temp *unstructured.Unstructured
	Observed
}

func presence(obj *unstructured.Unstructured) Presence {
	switch {
	case obj == nil:
		return Absent
	case obj.GetDeletionTimestamp() != nil:
		return Terminating
	}
	return Present
}

// observeTempCopy reads the original and its copy and judges them.
func (om objectMigration) observeTempCopy(ctx context.Context, mem memory) (tempCopyState, error) {
	var st tempCopyState
	var err error
	if st.original, err = om.read(ctx, om.item.Name); err != nil {
		return st, err
	}
	if st.temp, err = om.read(ctx, om.tempName()); err != nil {
		return st, err
	}
	o := &st.Observed
	o.Original, o.Copy = presence(st.original), presence(st.temp)
	o.CopyGaveUp, o.OriginalGaveUp, o.Refused, o.Replaces = mem.copyGaveUp, mem.originalGaveUp, mem.refused, mem.replaces
	if st.original != nil {
		o.OriginalLabelled = isComplete(st.original, om)
		if v, err := om.item.Kind.Judge(st.original); err == nil {
			o.OriginalReady = v.Ready
		}
	}
	if st.temp != nil {
		o.CopyOurs = om.isOurCopy(st.temp)
		o.CopyOfThisOriginal = st.original != nil && st.temp.GetAnnotations()[workload.OriginUIDAnnotation] == string(st.original.GetUID())
		if st.original != nil && !o.CopyOfThisOriginal {
			o.CopyLeftOver = om.carriesLabelOf(st.original, st.temp)
		}
		v, err := om.item.Kind.Judge(st.temp)
		switch {
		case err != nil && o.CopyGaveUp == "":
			o.CopyGaveUp = "judging its readiness: " + err.Error()
		case v.Failed && o.CopyGaveUp == "":
			o.CopyGaveUp = st.temp.GetName() + " cannot become ready: " + v.Reason
		}
		o.CopyReady = err == nil && v.Ready
		if o.CopyOurs && o.CopyOfThisOriginal && o.Original == Present && !o.OriginalLabelled {
			stale, err := om.copyIsStale(context.WithoutCancel(ctx), st.original, st.temp)
			if err != nil {
				return st, err
			}
			o.CopyStale = stale
		}
	}
	return st, nil
}

// run migrates one object with the temp-copy strategy: observe, decide, act,
// and again, so a run interrupted at any point is finished by the next one.
func (om objectMigration) run(ctx context.Context) error {
	it, kind := om.item, om.item.Kind
	var mem memory
	for pass := 0; pass < maxPasses; pass++ {
		st, err := om.observeTempCopy(ctx, mem)
		if err != nil {
			return err
		}
		d := decideTempCopy(st.Observed)
		klog.V(5).InfoS("decided", "object", it.Key(), "observed", st.Observed, "decision", d.String())
		if ctx.Err() != nil && d.Next != Done && !d.MustContinue() {
			return ctx.Err()
		}
		switch d.Next {
		case Done:
			return nil

		case Stop:
			return om.stopTempCopy(ctx, d, st, mem)

		case CreateCopy:
			original, changed, err := om.wholeOf(ctx, st.original)
			if err != nil {
				return err
			}
			if changed {
				continue // the cache was behind: decide on what the API server has
			}
			if _, err := om.Backups.Write(kind, original); err != nil {
				return err
			}
			om.report(it, om.start, StepBackedUp, "")
			// Refused before the first write, when the API server would refuse it.
			if mem.refused, err = om.admitRecreated(ctx, original); err != nil {
				return err
			}
			if mem.refused != "" {
				continue
			}
			copy, err := workload.TempCopy(original, kind, om.tempName(), it.Label)
			if err != nil {
				return errorf(it, "building the copy: %w", err)
			}
			created, err := om.client().Create(ctx, copy, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				// Made meanwhile, and not in the cache yet: read it once.
				if err := om.readThrough(ctx, copy.GetName()); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return errorf(it, "creating the copy %s: %w", copy.GetName(), err)
			}
			om.wrote(created)
			om.reads.stale = staleCheck{key: staleKeyOf(original, created, it.Label.String()), done: true}
			om.report(it, om.start, StepCopyCreated, created.GetName())

		case RefreshCopy:
			original, changed, err := om.wholeOf(ctx, st.original)
			if err != nil || changed {
				if err != nil {
					return err
				}
				continue
			}
			temp, changed, err := om.wholeOf(ctx, st.temp)
			if err != nil || changed {
				if err != nil {
					return err
				}
				continue
			}
			if _, err := om.Backups.Write(kind, original); err != nil {
				return err
			}
			updated, err := om.refreshCopy(ctx, original, temp)
			if err != nil {
				return err
			}
			om.wrote(updated)
			om.reads.stale = staleCheck{}

		case WaitCopyReady:
			if mem.copyGaveUp, err = om.waitReady(ctx, st.temp); err != nil {
				return err
			}

		case RollBack:
			if err := om.deleteCopy(context.WithoutCancel(ctx), st.temp); err != nil {
				return errorf(it, "%s; rolling back also failed: %w", d.Reason, err)
			}
			mem.rolledBack, mem.copyGaveUp = true, d.Reason
			om.window.shrink() // no room for the copy, or the cluster lags: fewer at once
			om.report(it, om.start, StepRolledBack, d.Reason)
			om.event(st.original, "RolledBack", "relabel deleted its copy %s and left %s as it was: %s", st.temp.GetName(), it.Name, d.Reason)

		case DeleteOriginal:
			original, changed, err := om.wholeOf(ctx, st.original)
			if err != nil {
				return err
			}
			if changed {
				continue
			}
			mem.replaces++
			// The backup is of the original as it is deleted: a change since is never lost.
			if _, err := om.Backups.Write(kind, original); err != nil {
				return err
			}
			om.window.grow()
			om.report(it, om.start, StepCopyReady, st.temp.GetName())
			// Admission may have changed while the copy rolled out; once the
			// original is deleted a refusal would leave only the copy serving.
			if mem.refused, err = om.admitRecreated(ctx, original); err != nil || mem.refused != "" {
				if err != nil {
					return err
				}
				continue
			}
			deleted, err := om.deleteOriginal(ctx, original, metav1.DeletePropagationBackground)
			if err != nil {
				return err
			}
			if deleted {
				om.report(it, om.start, StepOriginalDeleted, "")
			}

		case WaitOriginalGone:
			if err := om.waitGone(context.WithoutCancel(ctx), st.original, "the copy "+st.temp.GetName()+" serves meanwhile"); err != nil {
				return err
			}

		case Recreate:
			// Whatever ctx says: only this brings the original back.
			if err := om.recreate(context.WithoutCancel(ctx), st.temp); err != nil {
				return err
			}

		case WaitOriginalReady:
			if mem.originalGaveUp, err = om.waitReady(ctx, st.original); err != nil {
				return err
			}

		case DeleteCopy:
			om.report(it, om.start, StepReady, "")
			if err := om.deleteCopy(ctx, st.temp); err != nil {
				return err
			}
			om.report(it, om.start, StepCopyDeleted, st.temp.GetName())
			// The one event of a migration, on the object that stays.
			om.event(st.original, "Relabelled", "relabel recreated %s with %s in its selector, template and labels; its copy %s served meanwhile and is gone", it.Name, it.Label, st.temp.GetName())

		case WaitCopyGone:
			if err := om.waitGone(ctx, st.temp, ""); err != nil {
				return err
			}
		}
	}
	return errorf(it, "gave up after %d passes: the cluster kept changing under relabel; rerun when it settles", maxPasses)
}

// stopTempCopy turns a Stop into the error the user reads: what happened,
// what is left serving, what to do.
func (om objectMigration) stopTempCopy(ctx context.Context, d Decision, st tempCopyState, mem memory) error {
	it := om.item
	switch d.Reason {
	case reasonForeignCopy:
		return errorf(it, "%s exists and is not relabel's copy of %s; rename it or pass another --temp-suffix", st.temp.GetName(), it.Name)
	case reasonGone:
		return errorf(it, "the object no longer exists")
	case reasonOtherWriter:
		return errorf(it, "%s was created by %s, not by relabel, after relabel deleted the original it copied (uid %s); the copy %s still serves next to it. Check %s, then delete the copy (kubectl delete %s %s -n %s) and rerun",
			it.Name, om.creator(ctx, st.original), st.temp.GetAnnotations()[workload.OriginUIDAnnotation], st.temp.GetName(), it.Name, it.Kind.Resource, st.temp.GetName(), it.Namespace)
	case reasonDeletedByOther:
		return errorf(it, "it is being deleted by someone else (finalizers %v); relabel leaves it alone", st.original.GetFinalizers())
	}
	if st.temp != nil && st.Observed.OriginalLabelled {
		return errorf(it, "%s; the copy %s keeps serving, rerun to finish", d.Reason, st.temp.GetName())
	}
	if mem.rolledBack {
		return errorf(it, "%s; rolled back: the copy is deleted, the original untouched", d.Reason)
	}
	if mem.refused != "" {
		return errorf(it, "%s; nothing was changed", d.Reason)
	}
	if st.temp != nil {
		return errorf(it, "%s; the original is in place, the copy %s serves next to it until a rerun", d.Reason, st.temp.GetName())
	}
	return errorf(it, "%s", d.Reason)
}

// waitReady waits, within the migration's timeout, until obj is ready; a
// wait that gave up comes back as its reason, for the next decision.
func (om objectMigration) waitReady(ctx context.Context, obj *unstructured.Unstructured) (string, error) {
	it := om.item
	err := om.watch.waitFor(ctx, it.Kind, it.Namespace, obj.GetName(), obj.GetName()+" to be ready", om.Timeout, readyCond(it.Kind, obj))
	if isWaitTimeout(err) {
		return err.Error(), nil
	}
	return "", err
}

// waitGone waits, within the migration's timeout, until obj is gone; the
// message says what a user finds when it is not.
func (om objectMigration) waitGone(ctx context.Context, obj *unstructured.Unstructured, meanwhile string) error {
	it := om.item
	err := om.watch.waitFor(ctx, it.Kind, it.Namespace, obj.GetName(), obj.GetName()+" to be gone", om.Timeout, goneCond(string(obj.GetUID())))
	if isWaitTimeout(err) {
		msg := fmt.Sprintf("%v; it is still terminating (finalizers %v)", err, obj.GetFinalizers())
		if meanwhile != "" {
			msg += "; " + meanwhile
		}
		return errorf(it, "%s; rerun once it is gone", msg)
	}
	return err
}

// carriesLabelOf says whether original carries the label the copy's run
// was adding: that run recreated it, and only its copy is left.
func (om objectMigration) carriesLabelOf(original, temp *unstructured.Unstructured) bool {
	label, err := workload.ParseLabel(temp.GetAnnotations()[workload.TargetAnnotation], false)
	if err != nil {
		return false
	}
	report, err := workload.Check(original, om.item.Kind, label)
	return err == nil && report.Complete()
}

func isComplete(obj *unstructured.Unstructured, om objectMigration) bool {
	report, err := workload.Check(obj, om.item.Kind, om.item.Label)
	return err == nil && report.Complete()
}

func (om objectMigration) isOurCopy(temp *unstructured.Unstructured) bool {
	return workload.IsTemp(temp) && temp.GetAnnotations()[workload.OriginNameAnnotation] == om.item.Name
}

// copyIsStale says whether the copy's spec differs from the one the
// original would give it now (a deploy or a scale since it was made).
// The cached objects are slim, so the comparison reads both whole, once per
// pair of generations.
func (om objectMigration) copyIsStale(ctx context.Context, original, temp *unstructured.Unstructured) (bool, error) {
	// A copy made by a run adding another label serves as well, but must
	// record the label of the run that will recreate the original.
	target := temp.GetAnnotations()[workload.TargetAnnotation]
	if target != om.item.Label.String() {
		return true, nil
	}
	key := staleKeyOf(original, temp, target)
	if om.reads.stale.done && om.reads.stale.key == key {
		return om.reads.stale.stale, nil
	}
	wholeOriginal, _, err := om.wholeOf(ctx, original)
	if err != nil || wholeOriginal == nil {
		return false, err // gone: the next pass sees it
	}
	wholeTemp, _, err := om.wholeOf(ctx, temp)
	if err != nil || wholeTemp == nil {
		return false, err
	}
	want, err := workload.TempCopy(wholeOriginal, om.item.Kind, temp.GetName(), om.item.Label)
	if err != nil {
		return false, errorf(om.item, "building the copy: %w", err)
	}
	stale := !equality.Semantic.DeepEqual(want.Object["spec"], wholeTemp.Object["spec"])
	om.reads.stale = staleCheck{key: key, stale: stale, done: true}
	return stale, nil
}

// refreshCopy brings a copy made earlier in line with the original as it is
// now (a deploy or a scale since): the copy must serve what the original
// serves before the original goes.
func (om objectMigration) refreshCopy(ctx context.Context, original, temp *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	want, err := workload.TempCopy(original, om.item.Kind, temp.GetName(), om.item.Label)
	if err != nil {
		return nil, errorf(om.item, "building the copy: %w", err)
	}
	updated := temp.DeepCopy()
	updated.Object["spec"] = want.Object["spec"]
	ann := updated.GetAnnotations()
	ann[workload.TargetAnnotation] = om.item.Label.String()
	updated.SetAnnotations(ann)
	updated, err = om.client().Update(ctx, updated, metav1.UpdateOptions{})
	if err != nil {
		return nil, errorf(om.item, "updating the copy %s to the original's current spec: %w", temp.GetName(), err)
	}
	om.report(om.item, om.start, StepCopyUpdated, temp.GetName())
	return updated, nil
}

// creator names who made obj, read whole: the cache keeps no managedFields.
func (om objectMigration) creator(ctx context.Context, cached *unstructured.Unstructured) string {
	if obj, _, err := om.wholeOf(context.WithoutCancel(ctx), cached); err == nil && obj != nil {
		return creator(obj)
	}
	return creator(cached)
}

// creator names who made obj: the manager of its oldest managedFields entry.
func creator(obj *unstructured.Unstructured) string {
	entries := obj.GetManagedFields()
	if len(entries) == 0 {
		return "an unknown writer"
	}
	first := entries[0]
	for _, e := range entries[1:] {
		if e.Time != nil && (first.Time == nil || e.Time.Before(first.Time)) {
			first = e
		}
	}
	return fmt.Sprintf("field manager %q (%s)", first.Manager, first.Operation)
}

// admitRecreated asks the API server, with a dry-run create under the
// original's own name, whether it would accept the relabelled object: an
// AlreadyExists answer comes from storage, after validation and every
// admission check (webhooks, ValidatingAdmissionPolicies, quotas) passed. A
// refusal comes back as its message.
func (om objectMigration) admitRecreated(ctx context.Context, original *unstructured.Unstructured) (string, error) {
	obj, err := workload.Recreated(original, om.item.Kind, om.item.Label)
	if err != nil {
		return "", errorf(om.item, "building the new object: %w", err)
	}
	_, err = om.client().Create(ctx, obj, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	switch {
	case err == nil, apierrors.IsAlreadyExists(err):
		return "", nil
	case apierrors.IsForbidden(err), apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		return "the API server refuses the relabelled object (server-side dry run): " + err.Error(), nil
	}
	return "", errorf(om.item, "asking the API server whether it accepts the relabelled object: %w", err)
}

// deleteOriginal deletes the original as it was backed up. The preconditions
// make the delete fail if it changed since: false then tells the caller to
// read it again (and back it up again: a change is never lost).
func (om objectMigration) deleteOriginal(ctx context.Context, original *unstructured.Unstructured, propagation metav1.DeletionPropagation) (bool, error) {
	uid, rv := original.GetUID(), original.GetResourceVersion()
	err := om.client().Delete(ctx, om.item.Name, metav1.DeleteOptions{
		Preconditions:     &metav1.Preconditions{UID: &uid, ResourceVersion: &rv},
		PropagationPolicy: &propagation,
	})
	switch {
	case apierrors.IsConflict(err):
		// Changed since it was read: read it whole again.
		delete(om.reads.whole, original.GetName())
		return false, nil
	case apierrors.IsNotFound(err):
	case err != nil:
		return false, errorf(om.item, "deleting the original (%s propagation): %w", propagation, err)
	}
	om.deleted(original)
	return true, nil
}

// recreate creates the original again, with the label, from its backup or,
// without one, from the copy's record of it.
func (om objectMigration) recreate(ctx context.Context, temp *unstructured.Unstructured) error {
	it, kind := om.item, om.item.Kind
	var source *unstructured.Unstructured
	var err error
	if temp != nil {
		// Only the backup of the original this copy was made from.
		source, err = om.Backups.ReadUID(kind, it.Namespace, it.Name, temp.GetAnnotations()[workload.OriginUIDAnnotation])
	} else {
		source, err = om.Backups.Read(kind, it.Namespace, it.Name)
	}
	if err != nil {
		return errorf(it, "reading the backup: %w", err)
	}
	if source == nil && temp != nil {
		// The copy stands in for a missing backup whole, pod spec and all;
		// the cache keeps it slim.
		whole, _, err := om.wholeOf(ctx, temp)
		if err != nil {
			return err
		}
		if whole == nil {
			return nil // gone meanwhile: the next pass decides again
		}
		temp = whole
	}
	return om.recreateFrom(ctx, source, temp)
}

// recreateFrom creates the original again, with the label, from source or,
// when it is nil, from the copy's record of it.
func (om objectMigration) recreateFrom(ctx context.Context, source, temp *unstructured.Unstructured) error {
	it, kind := om.item, om.item.Kind
	var err error
	if source == nil {
		if temp == nil {
			return errorf(it, "no backup in %s to recreate it from; run relabel restore with the right --backup-dir", om.Backups.Dir)
		}
		if source, err = workload.OriginalFromCopy(temp, kind); err != nil {
			return errorf(it, "no backup, and the copy cannot stand in for one: %w", err)
		}
	}
	obj, err := workload.Recreated(source, kind, om.item.Label)
	if err != nil {
		return errorf(it, "building the new object: %w", err)
	}
	created, err := om.client().Create(ctx, obj, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return om.readThrough(ctx, obj.GetName())
	}
	if err != nil {
		return errorf(it, "recreating: %w", err)
	}
	om.wrote(created)
	om.report(it, om.start, StepRecreated, "")
	if err := om.restoreOwnership(ctx, created, source.GetManagedFields()); err != nil {
		// The object is back and serves; only field ownership is lost.
		klog.InfoS("warning: field ownership not restored", "object", it.Key(), "err", err)
		om.report(it, om.start, StepRecreated, "warning: field ownership not restored: "+err.Error())
	}
	return nil
}

// restoreOwnership gives the recreated object the original's managedFields.
// The API server ignores them on a create but takes them on an update, so
// server-side apply by the original's managers (a GitOps tool) goes on
// owning, and pruning, the fields it owned. The label relabel added is owned
// by nobody then, so their next apply leaves it alone.
func (om objectMigration) restoreOwnership(ctx context.Context, created *unstructured.Unstructured, entries []metav1.ManagedFieldsEntry) error {
	if len(entries) == 0 {
		return nil
	}
	obj := created
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		obj.SetManagedFields(entries)
		updated, err := om.client().Update(ctx, obj, metav1.UpdateOptions{})
		if err == nil {
			om.wrote(updated)
		}
		if apierrors.IsConflict(err) {
			fresh, getErr := om.client().Get(ctx, created.GetName(), metav1.GetOptions{})
			if getErr != nil {
				return getErr
			}
			if fresh.GetUID() != created.GetUID() {
				return nil // replaced meanwhile: not ours to touch
			}
			obj = fresh
		}
		return err
	})
}

func (om objectMigration) deleteCopy(ctx context.Context, temp *unstructured.Unstructured) error {
	uid := temp.GetUID()
	propagation := metav1.DeletePropagationBackground
	err := om.client().Delete(ctx, temp.GetName(), metav1.DeleteOptions{
		Preconditions:     &metav1.Preconditions{UID: &uid},
		PropagationPolicy: &propagation,
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return errorf(om.item, "deleting the copy %s: %w", temp.GetName(), err)
	}
	return om.waitGone(ctx, temp, "")
}

// dryRun shows what would be created and, in server mode, lets the API
// server validate and admit it without persisting anything.
func (m *Migrator) dryRun(ctx context.Context, it Item) Result {
	start := time.Now()
	fail := func(err error) Result {
		return Result{Item: it, Outcome: Failed, Duration: time.Since(start), Message: err.Error()}
	}
	client := resourceClient(m.Dynamic, it.Kind, it.Namespace)
	original, err := client.Get(ctx, it.Name, metav1.GetOptions{})
	if err != nil {
		return fail(errorf(it, "reading: %w", err))
	}
	tempName := workload.TempName(it.Name, m.TempSuffix, it.Kind.MaxNameLength)
	temp, err := workload.TempCopy(original, it.Kind, tempName, it.Label)
	if err != nil {
		return fail(errorf(it, "building the copy: %w", err))
	}
	recreated, err := workload.Recreated(original, it.Kind, it.Label)
	if err != nil {
		return fail(errorf(it, "building the new object: %w", err))
	}
	msg := fmt.Sprintf("would create %s, then replace %s", tempName, it.Name)
	if it.Strategy == rules.Adopt {
		msg = fmt.Sprintf("would label the pods of %s, orphan-delete it and recreate it to adopt them (%s)", it.Name, it.Reason)
	}
	// Printed diffs are redacted; the API server still checks the real objects.
	base := workload.Redacted(workload.ForCreate(original), it.Kind)
	copyDiff, err := manifestDiff(it.Name, tempName+" (copy)", base, workload.Redacted(temp, it.Kind))
	if err != nil {
		return fail(errorf(it, "%w", err))
	}
	newDiff, err := manifestDiff(it.Name, it.Name+" (recreated)", base, workload.Redacted(recreated, it.Kind))
	if err != nil {
		return fail(errorf(it, "%w", err))
	}
	if m.DryRun == DryRunServer {
		opts := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
		if _, err := client.Create(ctx, temp, opts); err != nil {
			return fail(errorf(it, "the API server refuses the copy: %w", err))
		}
		// The original's name is taken, so the new object is checked under the copy's.
		probe := recreated.DeepCopy()
		probe.SetName(tempName)
		if _, err := client.Create(ctx, probe, opts); err != nil {
			return fail(errorf(it, "the API server refuses the relabelled object: %w", err))
		}
		msg += "; the API server accepts both"
	}
	m.report(it, start, StepDryRun, msg)
	if it.Strategy == rules.Adopt {
		copyDiff = ""
	}
	return Result{Item: it, Outcome: Skipped, Duration: time.Since(start), Message: "dry run: " + msg, Diff: copyDiff + newDiff}
}
