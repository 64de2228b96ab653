package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	coordinationclient "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/klog/v2"
)

// LockName is the Lease relabel holds in every namespace it writes to, so
// that two runs never work on the same objects at once.
const LockName = "relabel-lock"

// Lock timing: a run renews its Leases every lockRenew, and again every
// lockRetry after a renewal failed; a Lease not renewed for lockDuration
// belongs to a run that is gone, and a run that could not renew its own for
// that long has lost it. lockCheck is how often a run looks at its own
// Leases' age: by the wall clock too, which, unlike the monotonic one,
// counts the time a laptop slept.
const (
	lockDuration = 30 * time.Second
	lockRenew    = 10 * time.Second
	lockRetry    = 2 * time.Second
	lockCheck    = time.Second
	// lockReleaseTimeout bounds the deletion of a Lease at the end: one that
	// is not deleted expires by itself.
	lockReleaseTimeout = 10 * time.Second
)

// ErrLocked marks a namespace another relabel run is working in.
var ErrLocked = errors.New("another relabel run is working here")

// ErrLockLost marks a run that lost one of its Leases while it worked.
var ErrLockLost = errors.New("lost the lock")

// LostError says which Lease a run lost, and to whom.
type LostError struct {
	Namespace string
	// Holder holds the Lease now; empty when relabel does not know: the
	// Lease was not renewed in time, or someone deleted it.
	Holder string
	// Reason says why, when Holder is empty.
	Reason string
}

func (e *LostError) Error() string {
	if e.Holder != "" {
		return fmt.Sprintf("lost the lock %s in namespace %s to %s", LockName, e.Namespace, e.Holder)
	}
	return fmt.Sprintf("lost the lock %s in namespace %s: %s", LockName, e.Namespace, e.Reason)
}

// Is makes errors.Is(err, ErrLockLost) true.
func (e *LostError) Is(target error) bool { return target == ErrLockLost }

// Locks takes the per-namespace Leases.
type Locks struct {
	Client coordinationclient.LeasesGetter
	// Identity names this run: relabel@HOST/PID/RANDOM.
	Identity string

	// duration, renew and retry replace lockDuration, lockRenew and
	// lockRetry in tests when set.
	duration, renew, retry time.Duration
}

// NewIdentity names this process as a Lease holder. A holder on this host
// whose process is gone has crashed, and its Leases can be taken at once.
func NewIdentity() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("relabel@%s/%d/%s", host, os.Getpid(), rand.String(5))
}

// Held is the Leases a run holds, renewed until Release. Like client-go's
// leaderelection it renews each with an update that carries the
// resourceVersion it last wrote, so a renewal after another run took the
// Lease over fails instead of taking it back. The run loses its Leases when
// a renewal finds another holder (or none: the Lease was deleted), or when
// none of its renewals succeeded for the lease duration (a process that was
// paused, a laptop that slept, an API server out of reach): from then on
// another run may take them over, so the run must stop starting steps.
type Held struct {
	locks  Locks
	ctx    context.Context
	cancel context.CancelCauseFunc
	stop   context.CancelFunc // ends the renewals
	done   sync.WaitGroup
	lost   chan struct{}

	mu     sync.Mutex
	leases []*heldLease
	err    *LostError

	releaseOnce sync.Once
}

// heldLease is one Lease as this run last wrote it.
type heldLease struct {
	lease *coordinationv1.Lease
	// renewed is when the request that last renewed it was sent: the
	// renewTime it wrote, with a monotonic reading.
	renewed time.Time
	// taken: another run holds it, or it is gone; it is not ours to delete.
	taken bool
	// failed is the error of the last renewal, when it failed.
	failed error
}

// Acquire takes the Lease of every namespace ("" stands for cluster-scoped
// objects and uses "default") and keeps them renewed until Release. The
// run must stop starting steps when Lost is closed; Context does that for
// work that follows ctx.
func (l Locks) Acquire(ctx context.Context, namespaces []string) (*Held, error) {
	l.duration, l.renew, l.retry = cmpOr(l.duration, lockDuration), cmpOr(l.renew, lockRenew), cmpOr(l.retry, lockRetry)
	var sorted []string
	for _, ns := range namespaces {
		if ns == "" {
			ns = metav1.NamespaceDefault
		}
		if !slices.Contains(sorted, ns) {
			sorted = append(sorted, ns)
		}
	}
	slices.Sort(sorted)
	h := &Held{locks: l, lost: make(chan struct{})}
	for _, ns := range sorted {
		sent := time.Now()
		lease, err := l.acquire(ctx, ns, sent)
		if err != nil {
			h.deleteLeases()
			return nil, err
		}
		h.leases = append(h.leases, &heldLease{lease: lease, renewed: sent})
	}
	h.ctx, h.cancel = context.WithCancelCause(ctx)
	// Renewals go on after a Ctrl-C: objects in flight are still finished.
	renewCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	h.stop = stop
	h.done.Go(func() { h.renewLoop(renewCtx) })
	h.done.Go(func() { h.watchAge(renewCtx) })
	return h, nil
}

// cmpOr is d, or def when d is zero.
func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Lost is closed when the run lost one of its Leases; Err says which.
func (h *Held) Lost() <-chan struct{} { return h.lost }

// Err is nil while the run holds its Leases, then the *LostError of the
// first it lost.
func (h *Held) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err == nil {
		return nil
	}
	return h.err
}

// Context is the ctx given to Acquire, cancelled with the *LostError as its
// cause (context.Cause) when the run loses a Lease, and when Release is
// called.
func (h *Held) Context() context.Context { return h.ctx }

// Release stops the renewals and deletes the Leases that are still this
// run's: the delete carries the UID and resourceVersion this run last
// wrote, so a Lease another run took over is never deleted. It can be
// called more than once.
func (h *Held) Release() {
	h.releaseOnce.Do(func() {
		h.stop()
		h.done.Wait()
		h.deleteLeases()
		h.cancel(context.Canceled)
	})
}

// lose marks the run as having lost its Leases, the first time.
func (h *Held) lose(err *LostError) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		return
	}
	h.err = err
	klog.V(1).InfoS("lost a lock; stopping", "err", err)
	close(h.lost)
	h.cancel(err)
}

func (h *Held) isLost() bool {
	select {
	case <-h.lost:
		return true
	default:
		return false
	}
}

// deleteLeases deletes the held Leases that are still as this run last wrote them.
func (h *Held) deleteLeases() {
	h.mu.Lock()
	leases := slices.Clone(h.leases)
	h.mu.Unlock()
	for _, hl := range leases {
		h.mu.Lock()
		lease, taken := hl.lease, hl.taken
		h.mu.Unlock()
		if taken {
			klog.V(2).InfoS("not releasing a lock another run holds", "namespace", lease.Namespace)
			continue
		}
		uid, rv := lease.UID, lease.ResourceVersion
		ctx, cancel := context.WithTimeout(context.Background(), lockReleaseTimeout)
		err := h.locks.Client.Leases(lease.Namespace).Delete(ctx, lease.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}})
		cancel()
		switch {
		case err == nil, apierrors.IsNotFound(err):
		case apierrors.IsConflict(err):
			klog.V(2).InfoS("not releasing a lock written since by someone else", "namespace", lease.Namespace)
		default:
			klog.V(2).InfoS("releasing a lock failed; it expires by itself", "namespace", lease.Namespace, "err", err)
		}
	}
}

// renewLoop renews every Lease every renew period, sooner after a failure,
// until ctx ends or a Lease is lost.
func (h *Held) renewLoop(ctx context.Context) {
	// The first Lease taken is renewed a renew period after it was taken.
	first := h.locks.renew
	if len(h.leases) > 0 {
		first = max(0, first-age(h.leases[0].renewed))
	}
	timer := time.NewTimer(first)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.lost:
			return
		case <-timer.C:
		}
		next := h.locks.renew
		for _, hl := range h.leases { // the slice is fixed after Acquire
			ok, err := h.renewOne(ctx, hl)
			if ctx.Err() != nil || h.isLost() {
				return
			}
			h.mu.Lock()
			hl.failed = err
			h.mu.Unlock()
			if !ok {
				klog.V(2).InfoS("renewing a lock failed; retrying", "namespace", hl.lease.Namespace, "err", err)
				next = h.locks.retry
			}
		}
		timer.Reset(next)
	}
}

// renewOne renews one Lease with the resourceVersion last written. ok is
// false when it failed for a reason that may pass; a Lease another run took
// is lost.
func (h *Held) renewOne(ctx context.Context, hl *heldLease) (ok bool, err error) {
	h.mu.Lock()
	lease, since := hl.lease.DeepCopy(), hl.renewed
	h.mu.Unlock()
	// A Lease older than its duration may be someone else's already.
	if h.overdue(since) {
		h.mu.Lock()
		failed := hl.failed
		h.mu.Unlock()
		h.loseOverdue(lease.Namespace, since, failed)
		return false, nil
	}
	// No request outlives the Lease: past that, its answer does not matter.
	ctx, cancel := context.WithDeadline(ctx, since.Add(h.locks.duration))
	defer cancel()
	leases := h.locks.Client.Leases(lease.Namespace)
	for attempt := 0; ; attempt++ {
		sent := time.Now()
		now := metav1.NewMicroTime(sent)
		lease.Spec.RenewTime = &now
		renewed, err := leases.Update(ctx, lease, metav1.UpdateOptions{})
		switch {
		case err == nil:
			h.mu.Lock()
			hl.lease, hl.renewed = renewed, sent
			h.mu.Unlock()
			return true, nil
		case apierrors.IsNotFound(err):
			h.loseTaken(hl, &LostError{Namespace: lease.Namespace, Reason: "someone deleted its Lease"})
			return false, err
		case !apierrors.IsConflict(err) || attempt > 0:
			return false, err
		}
		// Written since: by another run that took it over, or by someone
		// who changed it and left it ours (a label).
		current, err := leases.Get(ctx, lease.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			h.loseTaken(hl, &LostError{Namespace: lease.Namespace, Reason: "someone deleted its Lease"})
			return false, err
		case err != nil:
			return false, err
		}
		if holder := holderOf(current); holder != h.locks.Identity || current.UID != lease.UID {
			if holder == "" {
				h.loseTaken(hl, &LostError{Namespace: lease.Namespace, Reason: "someone cleared its holder"})
			} else {
				h.loseTaken(hl, &LostError{Namespace: lease.Namespace, Holder: holder})
			}
			return false, nil
		}
		lease = current
	}
}

// loseTaken marks a Lease as no longer this run's, and the run as having lost it.
func (h *Held) loseTaken(hl *heldLease, err *LostError) {
	h.mu.Lock()
	hl.taken = true
	h.mu.Unlock()
	h.lose(err)
}

// loseOverdue marks the run as having lost a Lease it did not renew in time.
func (h *Held) loseOverdue(namespace string, since time.Time, last error) {
	reason := fmt.Sprintf("not renewed for %s, longer than its %s duration (the process was paused, or the API server out of reach)",
		age(since).Round(time.Second), h.locks.duration)
	if last != nil {
		reason += fmt.Sprintf("; the last renewal: %v", last)
	}
	h.lose(&LostError{Namespace: namespace, Reason: reason + "; another run may hold it now"})
}

// watchAge loses the Leases not renewed for their duration, whatever the
// renewals wait for.
func (h *Held) watchAge(ctx context.Context) {
	ticker := time.NewTicker(min(lockCheck, h.locks.renew))
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.lost:
			return
		case <-ticker.C:
		}
		h.mu.Lock()
		var overdue *heldLease
		for _, hl := range h.leases {
			if !hl.taken && h.overdue(hl.renewed) {
				overdue = hl
				break
			}
		}
		var namespace string
		var since time.Time
		var failed error
		if overdue != nil {
			namespace, since, failed = overdue.lease.Namespace, overdue.renewed, overdue.failed
		}
		h.mu.Unlock()
		if overdue != nil {
			h.loseOverdue(namespace, since, failed)
			return
		}
	}
}

// overdue is true when a renewal at since is as old as the lease duration.
func (h *Held) overdue(since time.Time) bool { return age(since) >= h.locks.duration }

// age is how long ago t was, by the monotonic clock or, when more, by the
// wall clock: Linux's monotonic clock stops while the machine sleeps, but
// other runs judge the Lease by the wall clock.
func age(t time.Time) time.Duration {
	return max(time.Since(t), time.Now().Round(0).Sub(t.Round(0)))
}

func holderOf(lease *coordinationv1.Lease) string {
	if lease.Spec.HolderIdentity == nil {
		return ""
	}
	return *lease.Spec.HolderIdentity
}

func (l Locks) acquire(ctx context.Context, namespace string, sent time.Time) (*coordinationv1.Lease, error) {
	leases := l.Client.Leases(namespace)
	now := metav1.NewMicroTime(sent)
	seconds := int32((l.duration + time.Second - 1) / time.Second)
	lease, err := leases.Get(ctx, LockName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		created, err := leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: LockName, Namespace: namespace},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &l.Identity, LeaseDurationSeconds: &seconds,
				AcquireTime: &now, RenewTime: &now},
		}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("namespace %s: %w (it took the lock a moment ago); try again when it is done", namespace, ErrLocked)
		}
		if err != nil {
			return nil, fmt.Errorf("taking the lock of namespace %s: %w", namespace, err)
		}
		return created, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the lock of namespace %s: %w", namespace, err)
	}
	holder := holderOf(lease)
	if holder != "" && !expired(lease) && !crashedHere(holder) {
		return nil, fmt.Errorf("namespace %s: %w: %s holds the Lease %s (renewed %s ago); wait for it to finish, or %s after it stopped",
			namespace, ErrLocked, holder, LockName, time.Since(lease.Spec.RenewTime.Time).Round(time.Second), l.duration)
	}
	// Expired, or its holder crashed on this machine: take it over. The
	// update carries the resourceVersion read, so of two runs taking it
	// over at once one fails.
	lease.Spec.HolderIdentity, lease.Spec.LeaseDurationSeconds = &l.Identity, &seconds
	lease.Spec.AcquireTime, lease.Spec.RenewTime = &now, &now
	taken, err := leases.Update(ctx, lease, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		return nil, fmt.Errorf("namespace %s: %w (it took the lock a moment ago)", namespace, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("taking over the lock of namespace %s from %s: %w", namespace, holder, err)
	}
	return taken, nil
}

func expired(lease *coordinationv1.Lease) bool {
	if lease.Spec.RenewTime == nil || lease.Spec.LeaseDurationSeconds == nil {
		return true
	}
	return time.Since(lease.Spec.RenewTime.Time) > time.Duration(*lease.Spec.LeaseDurationSeconds)*time.Second
}

// crashedHere is true when the holder ran on this host and its process is gone.
func crashedHere(holder string) bool {
	host, _ := os.Hostname()
	rest, ok := strings.CutPrefix(holder, "relabel@"+host+"/")
	if !ok {
		return false
	}
	pidText, _, _ := strings.Cut(rest, "/")
	pid, err := strconv.Atoi(pidText)
	if err != nil || pid <= 0 {
		return false
	}
	if pid == os.Getpid() {
		return false
	}
	return processGone(pid)
}
