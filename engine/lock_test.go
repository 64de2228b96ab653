package engine

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

// leaseServer is a fake clientset whose Leases behave as the API server's
// do where the lock depends on it: every write gets a new resourceVersion,
// an update with another one is a conflict, and a delete honours its
// preconditions. fail, when set, answers updates instead.
type leaseServer struct {
	*fake.Clientset
	mu      sync.Mutex
	version int
	fail    error
}

var leasesResource = schema.GroupVersionResource{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"}

func newLeaseServer() *leaseServer {
	s := &leaseServer{Clientset: fake.NewClientset()}
	tracker := s.Tracker()
	s.PrependReactor("*", "leases", func(action clienttesting.Action) (bool, runtime.Object, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		ns := action.GetNamespace()
		stored := func(name string) (*coordinationv1.Lease, error) {
			obj, err := tracker.Get(leasesResource, ns, name)
			if err != nil {
				return nil, err
			}
			return obj.(*coordinationv1.Lease), nil
		}
		switch a := action.(type) {
		case clienttesting.CreateActionImpl:
			lease := a.Object.(*coordinationv1.Lease).DeepCopy()
			s.version++
			lease.ResourceVersion, lease.UID = strconv.Itoa(s.version), types.UID("uid-"+strconv.Itoa(s.version))
			if err := tracker.Create(leasesResource, lease, ns); err != nil {
				return true, nil, err
			}
			return true, lease, nil
		case clienttesting.UpdateActionImpl:
			if s.fail != nil {
				return true, nil, s.fail
			}
			lease := a.Object.(*coordinationv1.Lease).DeepCopy()
			current, err := stored(lease.Name)
			if err != nil {
				return true, nil, err
			}
			if lease.ResourceVersion != current.ResourceVersion {
				return true, nil, apierrors.NewConflict(leasesResource.GroupResource(), lease.Name, errors.New("the object has been modified"))
			}
			s.version++
			lease.ResourceVersion, lease.UID = strconv.Itoa(s.version), current.UID
			if err := tracker.Update(leasesResource, lease, ns); err != nil {
				return true, nil, err
			}
			return true, lease, nil
		case clienttesting.DeleteActionImpl:
			current, err := stored(a.Name)
			if err != nil {
				return true, nil, err
			}
			if p := a.DeleteOptions.Preconditions; p != nil {
				if (p.UID != nil && *p.UID != current.UID) || (p.ResourceVersion != nil && *p.ResourceVersion != current.ResourceVersion) {
					return true, nil, apierrors.NewConflict(leasesResource.GroupResource(), a.Name, errors.New("precondition failed"))
				}
			}
			return true, nil, tracker.Delete(leasesResource, ns, a.Name)
		}
		return false, nil, nil // get: the tracker's
	})
	return s
}

func (s *leaseServer) setFail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

func (s *leaseServer) lease(t *testing.T, ns string) *coordinationv1.Lease {
	t.Helper()
	lease, err := s.CoordinationV1().Leases(ns).Get(context.Background(), LockName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading the Lease of %s: %v", ns, err)
	}
	return lease
}

// takeOver does what a second run does with a Lease: hold it as another.
func (s *leaseServer) takeOver(t *testing.T, ns, holder string) *coordinationv1.Lease {
	t.Helper()
	lease := s.lease(t, ns)
	now := metav1.NewMicroTime(time.Now())
	lease.Spec.HolderIdentity, lease.Spec.AcquireTime, lease.Spec.RenewTime = &holder, &now, &now
	taken, err := s.CoordinationV1().Leases(ns).Update(context.Background(), lease, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("taking the Lease of %s over: %v", ns, err)
	}
	return taken
}

func testLocks(s *leaseServer) Locks {
	return Locks{Client: s.CoordinationV1(), Identity: "relabel@test/1/aaaaa"}
}

// acquire takes the Leases; they are released when the test ends, if it did not.
func acquire(t *testing.T, l Locks, namespaces ...string) *Held {
	t.Helper()
	h, err := l.Acquire(t.Context(), namespaces)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Release)
	return h
}

func isLost(h *Held) bool {
	select {
	case <-h.Lost():
		return true
	default:
		return false
	}
}

// Renewals keep the Lease for as long as the run goes on, each an update
// with the resourceVersion of the last.
func TestLockRenewsWithResourceVersion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newLeaseServer()
		h := acquire(t, testLocks(s), "shop", "", "default")
		first := s.lease(t, "shop")
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		if isLost(h) || h.Err() != nil || h.Context().Err() != nil {
			t.Fatalf("lost while renewing: %v", h.Err())
		}
		now := s.lease(t, "shop")
		if now.UID != first.UID || now.ResourceVersion == first.ResourceVersion || !now.Spec.RenewTime.After(first.Spec.RenewTime.Time) {
			t.Errorf("not renewed: %+v, then %+v", first.ObjectMeta, now.ObjectMeta)
		}
		updates := 0
		for _, a := range s.Actions() {
			if u, ok := a.(clienttesting.UpdateActionImpl); ok && u.GetNamespace() == "shop" {
				updates++
				if u.Object.(*coordinationv1.Lease).ResourceVersion == "" {
					t.Errorf("a renewal without a resourceVersion")
				}
			}
		}
		if updates != 30 { // every 10s for 5 minutes
			t.Errorf("%d renewals in 5 minutes, want 30", updates)
		}
		h.Release()
		for _, ns := range []string{"shop", "default"} {
			if _, err := s.CoordinationV1().Leases(ns).Get(context.Background(), LockName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("the Lease of %s was not released: %v", ns, err)
			}
		}
		if !errors.Is(context.Cause(h.Context()), context.Canceled) {
			t.Errorf("after Release, the context's cause is %v", context.Cause(h.Context()))
		}
	})
}

// A renewal after another run took the Lease over is refused: the run has
// lost it, stops, and leaves the other run's Lease alone.
func TestLockRenewalConflictIsLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newLeaseServer()
		h := acquire(t, testLocks(s), "shop")
		time.Sleep(15 * time.Second) // one renewal done
		synctest.Wait()
		theirs := s.takeOver(t, "shop", "relabel@elsewhere/7/bbbbb")
		time.Sleep(4 * time.Second) // not yet the next renewal
		synctest.Wait()
		if isLost(h) {
			t.Fatal("lost before a renewal saw the other holder")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if !isLost(h) {
			t.Fatal("not lost at the renewal after the takeover")
		}
		var lost *LostError
		if err := h.Err(); !errors.As(err, &lost) || lost.Holder != "relabel@elsewhere/7/bbbbb" || lost.Namespace != "shop" || !errors.Is(err, ErrLockLost) {
			t.Fatalf("Err() = %v, want the Lease of shop lost to relabel@elsewhere/7/bbbbb", err)
		}
		want := "lost the lock relabel-lock in namespace shop to relabel@elsewhere/7/bbbbb"
		if got := context.Cause(h.Context()); got == nil || got.Error() != want {
			t.Errorf("the context's cause is %v, want %q", got, want)
		}
		h.Release()
		after := s.lease(t, "shop")
		if after.UID != theirs.UID || after.ResourceVersion != theirs.ResourceVersion || holderOf(after) != "relabel@elsewhere/7/bbbbb" {
			t.Errorf("the other run's Lease was written: %+v, was %+v", after, theirs)
		}
	})
}

// A change to the Lease that leaves it this run's (a label, say) is no
// takeover: the renewal goes on from what is there.
func TestLockConflictWithItselfRenews(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newLeaseServer()
		h := acquire(t, testLocks(s), "shop")
		lease := s.lease(t, "shop")
		lease.Labels = map[string]string{"team": "a"}
		if _, err := s.CoordinationV1().Leases("shop").Update(context.Background(), lease, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if isLost(h) {
			t.Fatalf("lost to itself: %v", h.Err())
		}
	})
}

// Without a successful renewal for the lease duration the run has lost the
// Lease, whatever the renewals wait for: another may take it over.
func TestLockNoRenewalWithinDurationIsLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newLeaseServer()
		h := acquire(t, testLocks(s), "shop")
		time.Sleep(10*time.Second + time.Millisecond) // renewed at 10s
		synctest.Wait()
		s.setFail(apierrors.NewServiceUnavailable("etcd is down"))
		time.Sleep(29 * time.Second) // 39s: the last renewal is 29s old
		synctest.Wait()
		if isLost(h) {
			t.Fatalf("lost before the lease duration: %v", h.Err())
		}
		time.Sleep(time.Second + time.Millisecond)
		synctest.Wait()
		if !isLost(h) {
			t.Fatal("not lost after the lease duration without a renewal")
		}
		var lost *LostError
		if err := h.Err(); !errors.As(err, &lost) || lost.Holder != "" || !strings.Contains(err.Error(), "not renewed for 30s") || !strings.Contains(err.Error(), "etcd is down") {
			t.Errorf("Err() = %v, want not renewed for 30s, with the last error", err)
		}
		if !errors.Is(context.Cause(h.Context()), ErrLockLost) {
			t.Errorf("the context's cause is %v", context.Cause(h.Context()))
		}
		// Nobody took it: the Lease as this run last wrote it is still its to delete.
		s.setFail(nil)
		h.Release()
		if _, err := s.CoordinationV1().Leases("shop").Get(context.Background(), LockName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("the Lease nobody took over was not released: %v", err)
		}
	})
}

// A renewal that hangs (a network that drops packets) does not keep the
// run going past the lease duration either.
func TestLockHangingRenewalIsLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newLeaseServer()
		unblock := make(chan struct{})
		s.PrependReactor("update", "leases", func(clienttesting.Action) (bool, runtime.Object, error) {
			<-unblock // the fake does not follow the request's context
			return true, nil, apierrors.NewTimeoutError("no answer", 0)
		})
		h := acquire(t, testLocks(s), "shop")
		t.Cleanup(func() { close(unblock) }) // before Release, which waits for the renewal
		time.Sleep(30*time.Second - time.Millisecond)
		synctest.Wait()
		if isLost(h) {
			t.Fatal("lost before the lease duration")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if !isLost(h) {
			t.Fatal("not lost while the renewal hangs")
		}
	})
}

// Release deletes only a Lease that is as this run last wrote it.
func TestLockReleaseWithChangedResourceVersionKeepsLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newLeaseServer()
		h := acquire(t, testLocks(s), "shop", "web")
		// Another run takes shop over between two renewals; web stays ours.
		theirs := s.takeOver(t, "shop", "relabel@elsewhere/7/bbbbb")
		h.Release()
		if after := s.lease(t, "shop"); after.UID != theirs.UID || after.ResourceVersion != theirs.ResourceVersion {
			t.Errorf("the Lease written since was changed or deleted: %+v", after)
		}
		if _, err := s.CoordinationV1().Leases("web").Get(context.Background(), LockName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("the Lease still ours was not released: %v", err)
		}
		var deletes []string
		for _, a := range s.Actions() {
			if d, ok := a.(clienttesting.DeleteActionImpl); ok {
				p := d.DeleteOptions.Preconditions
				if p == nil || p.UID == nil || p.ResourceVersion == nil || *p.ResourceVersion == "" {
					t.Errorf("delete in %s without UID and resourceVersion preconditions: %+v", d.Namespace, p)
				}
				deletes = append(deletes, d.Namespace)
			}
		}
		if len(deletes) != 2 {
			t.Errorf("deletes in %v, want shop (refused) and web", deletes)
		}
	})
}

// The takeover rules are those of before: a live holder refuses, an expired
// Lease is taken over with the resourceVersion read.
func TestLockTakeoverRules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newLeaseServer()
		other := Locks{Client: s.CoordinationV1(), Identity: "relabel@elsewhere/7/bbbbb"}
		theirs := acquire(t, other, "shop")
		if _, err := testLocks(s).Acquire(t.Context(), []string{"shop"}); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "relabel@elsewhere/7/bbbbb") {
			t.Fatalf("acquiring a held Lease: %v, want ErrLocked naming the holder", err)
		}
		// The other run stops renewing without releasing (killed): after
		// the lease duration, its Lease is taken over.
		theirs.stop()
		theirs.done.Wait()
		time.Sleep(31 * time.Second)
		synctest.Wait()
		acquire(t, testLocks(s), "shop")
		if holderOf(s.lease(t, "shop")) != "relabel@test/1/aaaaa" {
			t.Errorf("holder %q after the takeover", holderOf(s.lease(t, "shop")))
		}
		// The old holder, were it to come back (it was paused), finds it
		// lost, and its release deletes nothing: the takeover updated the
		// same object, so a UID precondition alone would not refuse.
		if _, err := theirs.renewOne(context.Background(), theirs.leases[0]); err != nil || !isLost(theirs) {
			t.Errorf("the old holder's renewal: %v, lost %v", err, isLost(theirs))
		}
		theirs.deleteLeases()
		if holderOf(s.lease(t, "shop")) != "relabel@test/1/aaaaa" {
			t.Errorf("the old holder changed the Lease")
		}
	})
}
