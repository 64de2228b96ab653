package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"relabel.dev/relabel/rules"
	workload "relabel.dev/relabel/unstructured"
)

// RestoreOutcome is what Restore did with one backup.
type RestoreOutcome string

const (
	// Restored: the object was missing and is created from its backup.
	Restored RestoreOutcome = "restored"
	// WouldRestore: the object is missing and is to be restored; a dry run
	// (or a plan) created nothing.
	WouldRestore RestoreOutcome = "would-restore"
	// AlreadyPresent: the object exists and is left alone.
	AlreadyPresent RestoreOutcome = "present"
	// RestoreRefused: the object is missing, but nothing relabel keeps says
	// a migration removed it (it may have been deleted on purpose since);
	// RestoreOptions.Force restores it anyway.
	RestoreRefused RestoreOutcome = "refused"
	// RestoreFailed: the API server refused to create it; Err says why.
	RestoreFailed RestoreOutcome = "failed"
)

// RestoreOptions choose the backups to restore.
type RestoreOptions struct {
	BackupQuery
	// DryRun reads the cluster and creates nothing.
	DryRun bool
	// Force restores a missing object even when no adopt marker and no
	// temporary copy says a migration removed it.
	Force bool
}

// RestoreResult is what became of one backup.
type RestoreResult struct {
	Backup
	Outcome RestoreOutcome
	// Reason says why it is restored, refused or left alone.
	Reason string
	// Copy names the temporary copy that records the object, if any: it
	// keeps running after a restore.
	Copy string
	// Marker: an adopt marker or the adopt record on its pods records the
	// object's orphan delete; both are cleared once the object is restored.
	Marker bool
	// Err is set with RestoreFailed.
	Err error
}

// Restorer recreates objects missing from the cluster from their backups.
// It never overwrites: an object that exists, under any UID, is left alone.
// It only uses the backups of its cluster (Backups.Cluster), and restores
// an object only when relabel's own records say a migration removed it (see
// DecideRestore).
type Restorer struct {
	Dynamic dynamic.Interface
	Backups Backups
}

// ForeignBackupsError: the query selects no backup of this cluster, but
// backups of other clusters (or of no known cluster) in the same directory.
type ForeignBackupsError struct {
	Dir     string
	Here    ClusterID
	Others  []ClusterRecord
	Count   int
	Unkeyed int // backups outside any cluster's tree
}

func (e ForeignBackupsError) Error() string {
	var whose []string
	for _, o := range e.Others {
		s := "cluster " + o.ID
		if len(o.Contexts) > 0 {
			s += " (context " + strings.Join(o.Contexts, ", ") + ")"
		}
		whose = append(whose, s)
	}
	if e.Unkeyed > 0 {
		whose = append(whose, fmt.Sprintf("no known cluster (%d written before backups were keyed by cluster)", e.Unkeyed))
	}
	return fmt.Sprintf("refusing to restore: the %d backups in %s that match are of %s, not of this cluster %s; backups are only restored into the cluster they were taken from; nothing was restored",
		e.Count, e.Dir, strings.Join(whose, " and "), e.Here)
}

// RestoreFacts is what the cluster and relabel's records show of a backed-up
// object.
type RestoreFacts struct {
	// Live is the object of the backup's name in the cluster; nil: absent.
	Live *unstructured.Unstructured
	// MarkerUID is the UID an adopt marker records for the name; "" none.
	MarkerUID string
	// RecordUID is the UID the adopt record on the pods (and ReplicaSets)
	// an adopt migration labelled records for the name; "" none.
	RecordUID string
	// Copies are the objects of the kind in the namespace labelled
	// relabel.dev/temp: relabel's temporary copies.
	Copies []*unstructured.Unstructured
}

// RestoreDecision is DecideRestore's verdict.
type RestoreDecision struct {
	Outcome RestoreOutcome // WouldRestore, AlreadyPresent or RestoreRefused
	Reason  string
	Copy    string
	Marker  bool
}

// refusedReason is the end of every refusal.
const refusedReason = "deleted after the migration? pass --force to restore it anyway"

// DecideRestore says what to do with a backup: an object that exists is
// left alone, whatever its UID; a missing one is restored only when
// relabel's own record says a migration removed it — an adopt marker or an
// adopt record on its pods of the backup's UID, or a temporary copy whose
// relabel.dev/origin-uid is the backup's UID — and otherwise refused,
// unless force.
func DecideRestore(backup *unstructured.Unstructured, f RestoreFacts, force bool) RestoreDecision {
	uid := string(backup.GetUID())
	if f.Live != nil {
		if live := string(f.Live.GetUID()); live != uid {
			return RestoreDecision{Outcome: AlreadyPresent, Reason: fmt.Sprintf("exists as another object (uid %s); restore never overwrites", live)}
		}
		return RestoreDecision{Outcome: AlreadyPresent, Reason: "exists"}
	}
	var why string
	switch {
	case uid == "":
		why = "the backup records no UID, so no record of relabel can be matched to it"
	default:
		for _, c := range f.Copies {
			if workload.IsTemp(c) && c.GetAnnotations()[workload.OriginUIDAnnotation] == uid {
				return RestoreDecision{Outcome: WouldRestore, Copy: c.GetName(),
					Reason: fmt.Sprintf("its temporary copy %s records it (uid %s): a migration deleted it and did not recreate it", c.GetName(), uid)}
			}
		}
		switch {
		case f.MarkerUID == uid:
			return RestoreDecision{Outcome: WouldRestore, Marker: true,
				Reason: fmt.Sprintf("an adopt marker records its orphan delete (uid %s): a migration deleted it and did not recreate it", uid)}
		case f.RecordUID == uid:
			return RestoreDecision{Outcome: WouldRestore, Marker: true,
				Reason: fmt.Sprintf("the adopt record on its pods records its orphan delete (uid %s): a migration deleted it and did not recreate it", uid)}
		case f.MarkerUID != "":
			why = fmt.Sprintf("its adopt marker is of another object (uid %s, the backup's is %s)", f.MarkerUID, uid)
		case f.RecordUID != "":
			why = fmt.Sprintf("the adopt record on its pods is of another object (uid %s, the backup's is %s)", f.RecordUID, uid)
		default:
			why = "no adopt marker, adopt record or temporary copy records its removal by a migration"
		}
	}
	if force {
		return RestoreDecision{Outcome: WouldRestore, Reason: "--force: " + why}
	}
	return RestoreDecision{Outcome: RestoreRefused, Reason: why + ": " + refusedReason}
}

// observer reads what the cluster shows of backed-up objects, listing
// each kind's copies in a namespace once.
type observer struct {
	dynamic dynamic.Interface
	backups Backups
	copies  map[string][]*unstructured.Unstructured
	records map[string]map[string]*adoptRecord
}

func (o *observer) observe(ctx context.Context, kind rules.Kind, namespace, name string) (RestoreFacts, error) {
	var f RestoreFacts
	client := resourceClient(o.dynamic, kind, namespace)
	live, err := client.Get(ctx, name, metav1.GetOptions{})
	switch {
	case err == nil:
		f.Live = live
		return f, nil
	case !apierrors.IsNotFound(err):
		return f, err
	}
	if f.MarkerUID, _, err = o.backups.AdoptMarker(kind, namespace, name); err != nil {
		return f, err
	}
	key := kind.GVRString() + " " + namespace
	copies, ok := o.copies[key]
	if !ok {
		list, err := client.List(ctx, metav1.ListOptions{LabelSelector: rules.TempLabelKey})
		if err != nil {
			return f, fmt.Errorf("listing the temporary copies: %w", err)
		}
		for i := range list.Items {
			copies = append(copies, &list.Items[i])
		}
		if o.copies == nil {
			o.copies = map[string][]*unstructured.Unstructured{}
		}
		o.copies[key] = copies
	}
	f.Copies = copies
	if kind.CanAdopt() {
		records, ok := o.records[key]
		if !ok {
			// Who may not list pods sees no record: then the disk's marker
			// alone speaks, and a refusal is the safe side.
			if records, err = findRecords(ctx, o.dynamic, kind, namespace); err != nil && !apierrors.IsForbidden(err) {
				return f, err
			}
			if o.records == nil {
				o.records = map[string]map[string]*adoptRecord{}
			}
			o.records[key] = records
		}
		if rec := records[namespace+"/"+name]; rec != nil {
			f.RecordUID = rec.uid
		}
	}
	return f, nil
}

// clearAdoptRecords takes the adopt record of the object of uid off what
// its kind's adopt migration labelled in namespace, as a finished adoption
// does: the restored object has adopted them.
func clearAdoptRecords(ctx context.Context, client dynamic.Interface, kind rules.Kind, namespace, uid string) error {
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"labels":      map[string]any{AdoptUIDLabel: nil},
		"annotations": map[string]any{AdoptOfAnnotation: nil, AdoptOriginalAnnotation: nil, workload.TargetAnnotation: nil},
	}})
	for _, dep := range recordedResources(kind) {
		c := client.Resource(dep.GVR()).Namespace(namespace)
		list, err := c.List(ctx, metav1.ListOptions{LabelSelector: AdoptUIDLabel + "=" + uid})
		if err != nil {
			return fmt.Errorf("listing %s with the adopt record: %w", dep.Resource, err)
		}
		for _, obj := range list.Items {
			if _, err := c.Patch(ctx, obj.GetName(), types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("clearing the adopt record of %s %s: %w", dep.Resource, obj.GetName(), err)
			}
		}
	}
	return nil
}

// Plan decides, for every backup of this cluster the query selects, whether
// its object must be recreated; it writes nothing. A query that selects only
// other clusters' backups is a ForeignBackupsError. An error reading the
// cluster stops it, with the results so far.
func (r Restorer) Plan(ctx context.Context, opts RestoreOptions) ([]RestoreResult, error) {
	backups, err := r.Backups.Find(opts.BackupQuery)
	if err != nil {
		return nil, err
	}
	if len(backups) == 0 && r.Backups.Cluster.ID != "" {
		if err := r.foreign(opts.BackupQuery); err != nil {
			return nil, err
		}
	}
	obs := &observer{dynamic: r.Dynamic, backups: r.Backups}
	results := make([]RestoreResult, 0, len(backups))
	for _, b := range backups {
		f, err := obs.observe(ctx, b.Kind, b.Object.GetNamespace(), b.Object.GetName())
		if err != nil {
			return results, fmt.Errorf("reading %s: %w", b.Key(), err)
		}
		d := DecideRestore(b.Object, f, opts.Force)
		results = append(results, RestoreResult{Backup: b, Outcome: d.Outcome, Reason: d.Reason, Copy: d.Copy, Marker: d.Marker})
	}
	return results, nil
}

func (r Restorer) foreign(q BackupQuery) error {
	others, err := r.Backups.Elsewhere(q)
	if err != nil || len(others) == 0 {
		return err
	}
	_, records, err := r.Backups.Entries()
	if err != nil {
		return err
	}
	e := ForeignBackupsError{Dir: r.Backups.Dir, Here: r.Backups.Cluster, Count: len(others)}
	for _, o := range others {
		if o.Cluster == "" {
			e.Unkeyed++
			continue
		}
		if !slices.ContainsFunc(e.Others, func(c ClusterRecord) bool { return c.ID == o.Cluster }) {
			i := slices.IndexFunc(records, func(c ClusterRecord) bool { return c.ID == o.Cluster })
			e.Others = append(e.Others, records[i])
		}
	}
	return e
}

// Apply creates the objects the plan would restore, and clears the adopt
// marker of each one restored because of it. A refused create is a
// RestoreFailed result, and the others go on; an object someone else
// created meanwhile is left alone.
func (r Restorer) Apply(ctx context.Context, plan []RestoreResult) []RestoreResult {
	out := slices.Clone(plan)
	for i := range out {
		res := &out[i]
		if res.Outcome != WouldRestore {
			continue
		}
		client := resourceClient(r.Dynamic, res.Kind, res.Object.GetNamespace())
		_, err := client.Create(ctx, workload.ForCreate(res.Object), metav1.CreateOptions{})
		switch {
		case apierrors.IsAlreadyExists(err):
			res.Outcome, res.Reason = AlreadyPresent, "created by someone else meanwhile; left alone"
		case err != nil:
			res.Outcome, res.Err = RestoreFailed, fmt.Errorf("restoring %s: %w", res.Key(), err)
		default:
			res.Outcome = Restored
			if res.Marker {
				// The orphan delete the marker and the record describe is
				// undone: a later migration starts afresh.
				ns := res.Object.GetNamespace()
				if err := r.Backups.ClearAdopt(res.Kind, ns, res.Object.GetName()); err != nil {
					res.Reason += "; " + err.Error()
				}
				if err := clearAdoptRecords(ctx, r.Dynamic, res.Kind, ns, string(res.Object.GetUID())); err != nil {
					res.Reason += "; " + err.Error()
				}
			}
		}
	}
	return out
}

// Restore plans and, unless opts.DryRun, applies.
func (r Restorer) Restore(ctx context.Context, opts RestoreOptions) ([]RestoreResult, error) {
	plan, err := r.Plan(ctx, opts)
	if err != nil || opts.DryRun {
		return plan, err
	}
	return r.Apply(ctx, plan), nil
}

// PruneFacts is what the cluster shows of a backup's object, for pruning.
type PruneFacts struct {
	RestoreFacts
	// Kind is the backup's kind as the cluster serves it; nil when it does
	// not serve it any more.
	Kind *rules.Kind
	// Age is how long ago the backup was written.
	Age time.Duration
}

// PruneDecision is DecidePrune's verdict.
type PruneDecision struct {
	Prune  bool
	Reason string
}

// DecidePrune says whether a backup may be removed: only one older than
// olderThan, that no interrupted migration may still need (no adopt marker
// for the name, no temporary copy of the object), whose object is either
// gone or was migrated — it exists as another object with a label in its
// selector that the backup lacks, as relabel recreates it. An object that
// exists as it was backed up (its migration did not finish), or was
// replaced by one without a new label, keeps its backup.
func DecidePrune(e BackupEntry, f PruneFacts, olderThan time.Duration) PruneDecision {
	keep := func(format string, args ...any) PruneDecision {
		return PruneDecision{Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case e.Err != nil || e.Object == nil:
		return keep("cannot be read: %v", e.Err)
	case f.Age < olderThan:
		return keep("newer than %s", olderThan)
	case e.Marker || f.MarkerUID != "":
		return keep("an adopt marker: an interrupted migration needs it")
	case f.RecordUID != "":
		return keep("an adopt record on its pods: an interrupted migration needs it")
	}
	for _, c := range f.Copies {
		ann := c.GetAnnotations()
		if (e.UID != "" && ann[workload.OriginUIDAnnotation] == e.UID) || ann[workload.OriginNameAnnotation] == e.Name {
			return keep("its temporary copy %s: an interrupted migration needs it", c.GetName())
		}
	}
	if f.Live == nil {
		return PruneDecision{Prune: true, Reason: "the object is gone and no adopt marker or temporary copy points at it"}
	}
	live := string(f.Live.GetUID())
	switch {
	case live == e.UID:
		return keep("the object exists as backed up: its migration did not finish")
	case f.Kind == nil:
		return keep("its kind is not served: cannot tell whether it was migrated")
	}
	added, err := addedSelectorLabels(e.Object, f.Live, *f.Kind)
	if err != nil {
		return keep("%v", err)
	}
	if len(added) == 0 {
		return keep("replaced by an object (uid %s) without a label its backup lacks", live)
	}
	return PruneDecision{Prune: true, Reason: fmt.Sprintf("migrated: the object (uid %s) has %s in its selector", live, strings.Join(added, ", "))}
}

// addedSelectorLabels lists the requirements of live's selector that the
// backup's lacks, when live's has all of the backup's; none otherwise.
func addedSelectorLabels(backup, live *unstructured.Unstructured, kind rules.Kind) ([]string, error) {
	before, err := workload.Selector(backup, kind)
	if err != nil {
		return nil, err
	}
	after, err := workload.Selector(live, kind)
	if err != nil {
		return nil, err
	}
	beforeReqs, _ := before.Requirements()
	afterReqs, _ := after.Requirements()
	var had, added []string
	for _, r := range beforeReqs {
		had = append(had, r.String())
	}
	var have []string
	for _, r := range afterReqs {
		have = append(have, r.String())
		if !slices.Contains(had, r.String()) {
			added = append(added, r.String())
		}
	}
	for _, h := range had {
		if !slices.Contains(have, h) {
			return nil, nil
		}
	}
	return added, nil
}

// PruneResult is what became of one backup.
type PruneResult struct {
	BackupEntry
	PruneDecision
	// Removed: the file is gone; Err says why not.
	Removed bool
	Err     error
}

// Pruner removes backups no migration needs any more, of its cluster only.
type Pruner struct {
	Dynamic dynamic.Interface
	Backups Backups
	// Kinds the cluster serves; a backup of another kind is kept.
	Kinds []rules.Kind
	// Namespace limits pruning to one namespace; "" is every namespace.
	Namespace string
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Plan decides, for every backup of the cluster, whether it may go; it
// removes nothing. Backups of other clusters are left out.
func (p Pruner) Plan(ctx context.Context, olderThan time.Duration) ([]PruneResult, error) {
	entries, _, err := p.Backups.Entries()
	if err != nil {
		return nil, err
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	obs := &observer{dynamic: p.Dynamic, backups: p.Backups}
	var out []PruneResult
	for _, e := range entries {
		if e.Cluster == "" || e.Cluster != p.Backups.Cluster.ID || (p.Namespace != "" && e.Namespace != p.Namespace) {
			continue
		}
		f := PruneFacts{Age: now().Sub(e.Time)}
		kind := readKind(e.GVR, e.Namespace)
		if i := slices.IndexFunc(p.Kinds, func(k rules.Kind) bool { return k.GVR() == e.GVR }); i >= 0 {
			f.Kind = &p.Kinds[i]
			kind = p.Kinds[i]
		}
		if e.Err == nil && f.Age >= olderThan && !e.Marker {
			if f.RestoreFacts, err = obs.observe(ctx, kind, e.Namespace, e.Name); err != nil && !apierrors.IsNotFound(err) {
				return out, fmt.Errorf("reading %s: %w", e.Key(), err)
			}
		}
		out = append(out, PruneResult{BackupEntry: e, PruneDecision: DecidePrune(e, f, olderThan)})
	}
	return out, nil
}

// readKind is enough of a kind to read its objects.
func readKind(gvr schema.GroupVersionResource, namespace string) rules.Kind {
	return rules.Kind{Group: gvr.Group, Version: gvr.Version, Resource: gvr.Resource, Namespaced: namespace != ""}
}

// Apply removes the backups the plan prunes.
func (p Pruner) Apply(plan []PruneResult) []PruneResult {
	out := slices.Clone(plan)
	for i := range out {
		if !out[i].Prune {
			continue
		}
		out[i].Err = p.Backups.Remove(out[i].BackupEntry)
		out[i].Removed = out[i].Err == nil
	}
	return out
}

// Existence says whether a backup's object exists: "yes" with the backup's
// UID, "replaced" under another UID, "missing", or the error of reading it.
func Existence(ctx context.Context, client dynamic.Interface, e BackupEntry) (string, error) {
	live, err := resourceClient(client, readKind(e.GVR, e.Namespace), e.Namespace).Get(ctx, e.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return "missing", nil
	case err != nil:
		return "", err
	case string(live.GetUID()) == e.UID:
		return "yes", nil
	}
	return "replaced", nil
}
