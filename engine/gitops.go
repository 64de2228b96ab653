package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	coordinationclient "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"

	"relabel.dev/relabel/rules"
	workload "relabel.dev/relabel/unstructured"
)

// restoreTimeout bounds the resume of one GitOps object; it runs after a
// Ctrl-C or a lost lock too, so it cannot wait on the run's context.
const restoreTimeout = 30 * time.Second

// Pauser pauses the GitOps objects that apply the objects of a migration
// (Item.GitOps) from before an object's first write until no object of
// theirs is in flight, and resumes them by undoing exactly what it changed.
// What it changed is recorded on the GitOps object itself, so a rerun after
// a crash finds and finishes it.
type Pauser struct {
	Dynamic dynamic.Interface
	// Leases tell whether the run that left a record is still alive.
	Leases coordinationclient.LeasesGetter
	// Holder is this run's Lease holder identity.
	Holder string
	// Say reports what was paused and resumed, for people; nil says nothing.
	Say func(msg string)

	mu     sync.Mutex
	owners map[string]*pauseState
}

type pauseState struct {
	refs int
	// ours: relabel's record is on the object and this run resumes it.
	ours bool
}

func (p *Pauser) say(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	klog.V(2).Info(msg)
	if p.Say != nil {
		p.Say(msg)
	}
}

func (p *Pauser) client(o workload.GitOpsOwner) dynamic.ResourceInterface {
	return p.Dynamic.Resource(o.Kind.GVR()).Namespace(o.Namespace)
}

// Acquire pauses the GitOps objects of it that no other object of this
// run holds paused yet. On an error nothing of it stays held.
func (p *Pauser) Acquire(ctx context.Context, it Item) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.owners == nil {
		p.owners = map[string]*pauseState{}
	}
	for i, o := range it.GitOps {
		st := p.owners[o.Key()]
		if st == nil {
			ours, err := p.pause(ctx, o, leaseNamespace(it.Namespace))
			if err != nil {
				p.releaseLocked(ctx, it.GitOps[:i])
				return fmt.Errorf("%s: pausing %s before its first write: %w", it.Key(), o, err)
			}
			st = &pauseState{ours: ours}
			p.owners[o.Key()] = st
		}
		st.refs++
	}
	return nil
}

// Release lets go of it's GitOps objects, and resumes those no other object
// of this run holds. It runs after a Ctrl-C or a lost lock too.
func (p *Pauser) Release(ctx context.Context, it Item) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.releaseLocked(ctx, it.GitOps)
}

func (p *Pauser) releaseLocked(ctx context.Context, owners []workload.GitOpsOwner) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), restoreTimeout)
	defer cancel()
	for _, o := range owners {
		st := p.owners[o.Key()]
		if st == nil {
			continue
		}
		if st.refs--; st.refs > 0 {
			continue
		}
		delete(p.owners, o.Key())
		if st.ours {
			if err := p.restore(ctx, o); err != nil {
				p.say("error: resuming %s: %v; it stays paused with relabel's record (%s): rerun with --pause-gitops, or undo it by hand", o, err, workload.PausedAnnotation)
			}
		}
	}
}

// Sweep resumes, at once, the GitOps objects of the plan's skipped items
// that carry relabel's record of a run no longer alive and that no object
// this run migrates holds: a run that crashed after its last object of
// theirs was done.
func (p *Pauser) Sweep(ctx context.Context, items []Item) {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := map[string]bool{}
	for _, it := range items {
		if it.Action != ActionSkip {
			for _, o := range it.GitOps {
				seen[o.Key()] = true
			}
		}
	}
	for _, it := range items {
		for _, o := range it.GitOps {
			if seen[o.Key()] || p.owners[o.Key()] != nil {
				continue
			}
			seen[o.Key()] = true
			obj, err := p.client(o).Get(ctx, o.Name, metav1.GetOptions{})
			if err != nil {
				continue // nothing of relabel's can be read there
			}
			rec, err := workload.RecordOf(obj)
			if err != nil || rec == nil || p.alive(ctx, rec) {
				continue
			}
			if err := p.restore(ctx, o); err != nil {
				p.say("error: resuming %s, paused by an earlier run: %v", o, err)
			}
		}
	}
}

// pause writes the pause of o, unless the user paused it already or a
// live run did; ours says whether this run is to resume it.
func (p *Pauser) pause(ctx context.Context, o workload.GitOpsOwner, leaseNS string) (ours bool, err error) {
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		obj, err := p.client(o).Get(ctx, o.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
			p.say("%s does not exist; nothing to pause", o)
			ours = false
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading it: %w", err)
		}
		d, err := workload.DecidePause(obj, o.Kind, p.Holder, leaseNS)
		if err != nil {
			return err
		}
		if d.Patch == nil {
			ours = d.Record != nil && !p.alive(ctx, d.Record)
			if d.Record != nil && !ours {
				p.say("%s is paused by another run (%s), which resumes it", o, d.Record.Holder)
			} else if d.Record == nil {
				p.say("%s", d.Why)
			}
			return nil
		}
		if _, err := p.client(o).Patch(ctx, o.Name, types.MergePatchType, d.Patch, metav1.PatchOptions{FieldManager: "relabel"}); err != nil {
			return err
		}
		p.say("%s", d.Why)
		ours = true
		return nil
	})
	return ours, err
}

// restore undoes what relabel's record on o says it changed.
func (p *Pauser) restore(ctx context.Context, o workload.GitOpsOwner) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		obj, err := p.client(o).Get(ctx, o.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading it: %w", err)
		}
		d, err := workload.DecideRestore(obj, o.Kind)
		if err != nil || d.Patch == nil {
			return err
		}
		if _, err := p.client(o).Patch(ctx, o.Name, types.MergePatchType, d.Patch, metav1.PatchOptions{FieldManager: "relabel"}); err != nil {
			return err
		}
		p.say("%s", d.Why)
		return nil
	})
}

// alive tells whether the run that wrote rec still holds its Lease: then
// it resumes the object itself. Not knowing counts as alive.
func (p *Pauser) alive(ctx context.Context, rec *workload.PauseRecord) bool {
	if rec.Holder == p.Holder {
		return false
	}
	if p.Leases == nil || rec.LeaseNamespace == "" {
		return false
	}
	lease, err := p.Leases.Leases(rec.LeaseNamespace).Get(ctx, LockName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return false
	case err != nil:
		klog.V(2).InfoS("cannot tell whether a run is alive", "holder", rec.Holder, "err", err)
		return true
	}
	holder := holderOf(lease)
	return holder == rec.Holder && !expired(lease) && !crashedHere(holder)
}

func leaseNamespace(ns string) string {
	if ns == "" {
		return metav1.NamespaceDefault
	}
	return ns
}

// ResolveGitOps keeps, of the GitOps owners the plan guessed (Argo CD's
// app.kubernetes.io/instance, which Helm sets too), those that exist. A
// guess that cannot be checked is kept when keepUnknown: preflight then
// names the permission it needs.
func ResolveGitOps(ctx context.Context, client dynamic.Interface, items []Item, keepUnknown bool) error {
	exists := map[string]bool{}
	for i := range items {
		it := &items[i]
		var kept []workload.GitOpsOwner
		for _, o := range it.GitOps {
			if !o.Guess {
				kept = append(kept, o)
				continue
			}
			found, seen := exists[o.Key()]
			if !seen {
				_, err := client.Resource(o.Kind.GVR()).Namespace(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
				switch {
				case err == nil:
					found = true
				case apierrors.IsNotFound(err) || meta.IsNoMatchError(err) || isNotServed(err):
				case apierrors.IsForbidden(err):
					found = keepUnknown
				case ctx.Err() != nil:
					return err
				default:
					return fmt.Errorf("looking for %s, named by %s's label app.kubernetes.io/instance: %w", o, it.Key(), err)
				}
				exists[o.Key()] = found
			}
			if found {
				kept = append(kept, o)
			}
		}
		it.GitOps = kept
	}
	return nil
}

// isNotServed: the API server does not serve the kind (no such CRD).
func isNotServed(err error) bool {
	var status apierrors.APIStatus
	return errors.As(err, &status) && status.Status().Reason == metav1.StatusReasonNotFound
}

// GitOpsPermissions lists what pausing the plan's GitOps objects needs: get
// and patch on each.
func GitOpsPermissions(items []Item) []Permission {
	var out []Permission
	for _, it := range items {
		for _, o := range it.GitOps {
			for _, verb := range []string{"get", "patch"} {
				out = append(out, Permission{Group: o.Kind.Group, Resource: o.Kind.Resource, Verb: verb, Namespace: o.Namespace})
			}
		}
	}
	return sortedUnique(out)
}

// GitOpsRolePermissions is what `relabel rbac --pause-gitops` adds: get and
// patch on every kind relabel can pause.
func GitOpsRolePermissions() []Permission {
	var out []Permission
	for _, k := range rules.GitOpsKinds() {
		for _, verb := range []string{"get", "patch"} {
			out = append(out, Permission{Group: k.Group, Resource: k.Resource, Verb: verb})
		}
	}
	return out
}

// GitOpsConsequence says, for a plan line, what an owner does to an object
// migrated without pausing it.
func GitOpsConsequence(o workload.GitOpsOwner) string {
	return fmt.Sprintf(`managed by %s: its next reconcile re-applies the old selector (fails with "field is immutable", or with force re-creates the workload without the label); change the source (relabel manifests) and use --pause-gitops`, o)
}
