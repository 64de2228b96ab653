package engine

import (
	"context"
	"errors"
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

// maxReplaces bounds the attempts to replace one object in one run. Each
// ends early when the original changed under relabel (a conflict on the
// delete): a writer that keeps changing it is not fought without end.
const maxReplaces = 5

func (om objectMigration) run(ctx context.Context) error {
	it := om.item
	replaces := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		original, err := om.get(ctx, it.Name)
		if err != nil {
			return err
		}
		temp, err := om.get(ctx, om.tempName())
		if err != nil {
			return err
		}
		if temp != nil && !om.isOurCopy(temp) {
			return errorf(it, "%s exists and is not relabel's copy of %s; rename it or pass another --temp-suffix", temp.GetName(), it.Name)
		}

		switch {
		case original == nil && temp == nil:
			return errorf(it, "the object no longer exists")

		case original == nil:
			// Deleted by us (the copy is proof): bring it back, whatever ctx says.
			if err := om.recreate(context.WithoutCancel(ctx), temp); err != nil {
				return err
			}

		case temp != nil && string(original.GetUID()) != temp.GetAnnotations()[workload.OriginUIDAnnotation] && !isComplete(original, om):
			// relabel deleted the original it copied, and someone else
			// created this one: neither is deleted on a guess.
			return errorf(it, "%s was created by %s, not by relabel, after relabel deleted the original it copied (uid %s); the copy %s still serves next to it. Check %s, then delete the copy (kubectl delete %s %s -n %s) and rerun",
				it.Name, creator(original), temp.GetAnnotations()[workload.OriginUIDAnnotation], temp.GetName(), it.Name, it.Kind.Resource, temp.GetName(), it.Namespace)

		case original.GetDeletionTimestamp() != nil && temp != nil && !isComplete(original, om):
			// Deleted by a run that stopped while a finalizer held it: the
			// copy serves; once the original is gone the next pass recreates it.
			ctx := context.WithoutCancel(ctx)
			if err := om.watch.waitFor(ctx, it.Kind, it.Namespace, it.Name, "the original to be gone", 0, goneCond(string(original.GetUID()))); err != nil {
				return err
			}

		case isComplete(original, om):
			if temp == nil {
				return nil
			}
			return om.finish(ctx, original, temp)

		default:
			if replaces++; replaces > maxReplaces {
				return errorf(it, "gave up after %d attempts: it changed each time before relabel could delete it (another controller or person writing it?); the original is in place, the copy %s serves next to it until a rerun", maxReplaces, om.tempName())
			}
			// Whether the original was replaced or changed meanwhile, the
			// next pass reads the cluster again and takes it from there.
			if err := om.replace(ctx, original, temp); err != nil {
				return err
			}
		}
	}
}

func isComplete(obj *unstructured.Unstructured, om objectMigration) bool {
	report, err := workload.Check(obj, om.item.Kind, om.item.Label)
	return err == nil && report.Complete()
}

func (om objectMigration) isOurCopy(temp *unstructured.Unstructured) bool {
	return workload.IsTemp(temp) && temp.GetAnnotations()[workload.OriginNameAnnotation] == om.item.Name
}

// replace backs up the original, runs the copy until it is ready, deletes
// the original and recreates it. It returns early, without error, when the
// original changed meanwhile: the caller reads again.
func (om objectMigration) replace(ctx context.Context, original, temp *unstructured.Unstructured) error {
	it, kind := om.item, om.item.Kind
	if _, err := om.Backups.Write(kind, original); err != nil {
		return err
	}
	om.report(it, om.start, StepBackedUp, "")

	if temp == nil {
		// Refused before the first write, when the API server would refuse it.
		if err := om.admitRecreated(ctx, original); err != nil {
			return err
		}
		copy, err := workload.TempCopy(original, kind, om.tempName(), om.item.Label)
		if err != nil {
			return errorf(it, "building the copy: %w", err)
		}
		temp, err = om.client().Create(ctx, copy, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil // created by an earlier pass; read again
		}
		if err != nil {
			return errorf(it, "creating the copy %s: %w", copy.GetName(), err)
		}
		om.report(it, om.start, StepCopyCreated, temp.GetName())
		om.event(original, "CopyCreated", "relabel created %s to serve while %s is replaced", temp.GetName(), it.Name)
	} else {
		var err error
		if temp, err = om.refreshCopy(ctx, original, temp); err != nil {
			return err
		}
	}

	if err := om.watch.waitFor(ctx, kind, it.Namespace, temp.GetName(), "the copy "+temp.GetName()+" to be ready", om.Timeout, readyCond(kind, temp)); err != nil {
		if isWaitTimeout(err) {
			return om.rollBack(ctx, temp, err)
		}
		return err
	}
	om.report(it, om.start, StepCopyReady, temp.GetName())

	// Admission may have changed while the copy rolled out; once the
	// original is deleted a refusal would leave only the copy serving.
	if err := om.admitRecreated(ctx, original); err != nil {
		if errors.Is(err, errRefused) {
			return om.rollBack(ctx, temp, err)
		}
		return err
	}
	deleted, err := om.deleteOriginal(ctx, original, metav1.DeletePropagationBackground)
	if err != nil || !deleted {
		return err
	}
	uid := original.GetUID()
	om.report(it, om.start, StepOriginalDeleted, "")
	// From here on the original must come back, even after Ctrl-C.
	ctx = context.WithoutCancel(ctx)
	if err := om.watch.waitFor(ctx, kind, it.Namespace, it.Name, "the original to be gone", 0, goneCond(string(uid))); err != nil {
		return err
	}
	return om.recreate(ctx, temp)
}

// refreshCopy brings a copy made earlier in line with the original as it is
// now (a deploy or a scale since): the copy must serve what the original
// serves before the original goes.
func (om objectMigration) refreshCopy(ctx context.Context, original, temp *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	want, err := workload.TempCopy(original, om.item.Kind, temp.GetName(), om.item.Label)
	if err != nil {
		return nil, errorf(om.item, "building the copy: %w", err)
	}
	if equality.Semantic.DeepEqual(want.Object["spec"], temp.Object["spec"]) {
		return temp, nil
	}
	updated := temp.DeepCopy()
	updated.Object["spec"] = want.Object["spec"]
	updated, err = om.client().Update(ctx, updated, metav1.UpdateOptions{})
	if err != nil {
		return nil, errorf(om.item, "updating the copy %s to the original's current spec: %w", temp.GetName(), err)
	}
	om.report(om.item, om.start, StepCopyUpdated, temp.GetName())
	return updated, nil
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

// errRefused marks an object the API server would not accept.
var errRefused = errors.New("the API server refuses the relabelled object")

// admitRecreated asks the API server, with a dry-run create under the
// original's own name, whether it would accept the relabelled object: an
// AlreadyExists answer comes from storage, after validation and every
// admission check (webhooks, ValidatingAdmissionPolicies, quotas) passed.
func (om objectMigration) admitRecreated(ctx context.Context, original *unstructured.Unstructured) error {
	obj, err := workload.Recreated(original, om.item.Kind, om.item.Label)
	if err != nil {
		return errorf(om.item, "building the new object: %w", err)
	}
	_, err = om.client().Create(ctx, obj, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	switch {
	case err == nil, apierrors.IsAlreadyExists(err):
		return nil
	case apierrors.IsForbidden(err), apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		return errorf(om.item, "%w (server-side dry run, nothing changed): %w", errRefused, err)
	}
	return errorf(om.item, "asking the API server whether it accepts the relabelled object: %w", err)
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
		return false, nil
	case apierrors.IsNotFound(err):
	case err != nil:
		return false, errorf(om.item, "deleting the original (%s propagation): %w", propagation, err)
	}
	return true, nil
}

// recreate creates the original again, with the label, from its backup or,
// without one, from the copy's record of it.
func (om objectMigration) recreate(ctx context.Context, temp *unstructured.Unstructured) error {
	it, kind := om.item, om.item.Kind
	source, err := om.Backups.Read(kind, it.Namespace, it.Name)
	if err != nil {
		return errorf(it, "reading the backup: %w", err)
	}
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
		return nil
	}
	if err != nil {
		return errorf(it, "recreating: %w", err)
	}
	om.report(it, om.start, StepRecreated, "")
	om.event(created, "Recreated", "relabel recreated %s with %s in its selector", it.Name, om.item.Label)
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
		_, err := om.client().Update(ctx, obj, metav1.UpdateOptions{})
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

// finish waits for the relabelled original and removes the copy.
func (om objectMigration) finish(ctx context.Context, original, temp *unstructured.Unstructured) error {
	it, kind := om.item, om.item.Kind
	if err := om.watch.waitFor(ctx, kind, it.Namespace, it.Name, it.Name+" to be ready", om.Timeout, readyCond(kind, original)); err != nil {
		if isWaitTimeout(err) {
			return errorf(it, "%w; the copy %s keeps serving, rerun to finish", err, temp.GetName())
		}
		return err
	}
	om.report(it, om.start, StepReady, "")
	if err := om.deleteCopy(ctx, temp); err != nil {
		return err
	}
	om.report(it, om.start, StepCopyDeleted, temp.GetName())
	om.event(original, "Relabelled", "relabel added %s; the copy %s is gone", om.item.Label, temp.GetName())
	return nil
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
	return om.watch.waitFor(ctx, om.item.Kind, om.item.Namespace, temp.GetName(), "the copy "+temp.GetName()+" to be gone", 0, goneCond(string(uid)))
}

// rollBack removes a copy that never became ready; the original is untouched.
func (om objectMigration) rollBack(ctx context.Context, temp *unstructured.Unstructured, cause error) error {
	if err := om.deleteCopy(context.WithoutCancel(ctx), temp); err != nil {
		return errorf(om.item, "%v; rolling back also failed: %w", cause, err)
	}
	om.report(om.item, om.start, StepRolledBack, cause.Error())
	return errorf(om.item, "%w; rolled back: the copy is deleted, the original untouched", cause)
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
