package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
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

// Lock timing: a run renews its Leases every lockRenew; a Lease not renewed
// for lockDuration belongs to a run that is gone.
const (
	lockDuration = 30 * time.Second
	lockRenew    = 10 * time.Second
)

// ErrLocked marks a namespace another relabel run is working in.
var ErrLocked = errors.New("another relabel run is working here")

// Locks takes the per-namespace Leases.
type Locks struct {
	Client coordinationclient.LeasesGetter
	// Identity names this run: relabel@HOST/PID/RANDOM.
	Identity string
}

// NewIdentity names this process as a Lease holder. A holder on this host
// whose process is gone has crashed, and its Leases can be taken at once.
func NewIdentity() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("relabel@%s/%d/%s", host, os.Getpid(), rand.String(5))
}

// Acquire takes the Lease of every namespace ("" stands for cluster-scoped
// objects and uses "default") and keeps them renewed until release is called.
func (l Locks) Acquire(ctx context.Context, namespaces []string) (release func(), err error) {
	sort.Strings(namespaces)
	var held []*coordinationv1.Lease
	releaseAll := func() {
		for _, lease := range held {
			uid := lease.UID
			err := l.Client.Leases(lease.Namespace).Delete(context.Background(), lease.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
			if err != nil && !apierrors.IsNotFound(err) {
				klog.V(2).InfoS("releasing a lock failed; it expires by itself", "namespace", lease.Namespace, "err", err)
			}
		}
	}
	for _, ns := range namespaces {
		if ns == "" {
			ns = metav1.NamespaceDefault
		}
		lease, err := l.acquire(ctx, ns)
		if err != nil {
			releaseAll()
			return nil, err
		}
		held = append(held, lease)
	}
	renewCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		ticker := time.NewTicker(lockRenew)
		defer ticker.Stop()
		for {
			select {
			case <-renewCtx.Done():
				return
			case <-ticker.C:
				for i, lease := range held {
					now := metav1.NewMicroTime(time.Now())
					lease.Spec.RenewTime = &now
					renewed, err := l.Client.Leases(lease.Namespace).Update(renewCtx, lease, metav1.UpdateOptions{})
					if err != nil {
						klog.V(2).InfoS("renewing a lock failed", "namespace", lease.Namespace, "err", err)
						continue
					}
					held[i] = renewed
				}
			}
		}
	}()
	return func() {
		stop()
		<-done
		releaseAll()
	}, nil
}

func (l Locks) acquire(ctx context.Context, namespace string) (*coordinationv1.Lease, error) {
	leases := l.Client.Leases(namespace)
	now := metav1.NewMicroTime(time.Now())
	seconds := int32(lockDuration.Seconds())
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
	holder := ""
	if lease.Spec.HolderIdentity != nil {
		holder = *lease.Spec.HolderIdentity
	}
	if holder != "" && !expired(lease) && !crashedHere(holder) {
		return nil, fmt.Errorf("namespace %s: %w: %s holds the Lease %s (renewed %s ago); wait for it to finish, or %s after it stopped",
			namespace, ErrLocked, holder, LockName, time.Since(lease.Spec.RenewTime.Time).Round(time.Second), lockDuration)
	}
	// Expired, or its holder crashed on this machine: take it over.
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
