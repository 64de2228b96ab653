package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/resourceversion"
)

// A pass decides from the informer's cache, which watches every object of
// the plan anyway, rather than from a GET per object and pass. The cache may
// lag the API server: after relabel's own write a pass waits until the cache
// shows it, and every write carries a precondition (UID, resourceVersion) or
// fails on a name that is taken, so a change by someone else that the cache
// has not shown yet makes the write fail, not go wrong. Whole objects (a
// backup, a copy's spec) come from one GET, kept while the cache shows the
// same version.
type reads struct {
	// wrote is, per name, relabel's last write to it in this run: the cache
	// is read again only once it shows that write.
	wrote map[string]write
	// whole is, per name, the last whole object read or written; the cache
	// keeps objects slim.
	whole map[string]*unstructured.Unstructured
	// stale is the last comparison of a copy's spec with its original's.
	stale staleCheck
}

func newReads() *reads {
	return &reads{wrote: map[string]write{}, whole: map[string]*unstructured.Unstructured{}}
}

// write is what the cache must show after one of relabel's writes.
type write struct {
	uid types.UID
	// resourceVersion is the version the write made, or for a delete the
	// version deleted.
	resourceVersion string
	deleted         bool
}

// errIncomparable says a cached object's resourceVersion cannot be ordered
// against a write's (an API server that does not serve comparable ones):
// the pass reads from the API server instead.
var errIncomparable = errors.New("resourceVersions cannot be compared")

// shows says whether the cache's obj (nil when absent) reflects the write.
// A create or update is shown by the same object at that version or later,
// or by another object of that name (replaced since); a delete by the
// object's absence, another object, or a later version (it is terminating).
// An absent object after a create may be a delete since or a cache behind:
// it is not taken as shown.
func shows(w write, obj *unstructured.Unstructured) (bool, error) {
	if obj == nil {
		return w.deleted, nil
	}
	if obj.GetUID() != w.uid {
		return true, nil
	}
	cmp, err := resourceversion.CompareResourceVersion(obj.GetResourceVersion(), w.resourceVersion)
	if err != nil {
		return false, fmt.Errorf("%w: %w", errIncomparable, err)
	}
	if w.deleted {
		return cmp > 0, nil
	}
	return cmp >= 0, nil
}

// catchUpTimeout bounds the wait for the cache to show relabel's write; a
// watch that lags longer than this is bypassed with one GET.
const catchUpTimeout = 10 * time.Second

// wrote records obj as the API server returned it, after relabel's create
// or update, or from a GET that found the cache behind: it is kept whole,
// and the cache is read again only once it shows that version.
func (om objectMigration) wrote(obj *unstructured.Unstructured) {
	om.reads.wrote[obj.GetName()] = write{uid: obj.GetUID(), resourceVersion: obj.GetResourceVersion()}
	om.reads.whole[obj.GetName()] = obj
}

// deleted records the delete of obj.
func (om objectMigration) deleted(obj *unstructured.Unstructured) {
	om.reads.wrote[obj.GetName()] = write{uid: obj.GetUID(), resourceVersion: obj.GetResourceVersion(), deleted: true}
	delete(om.reads.whole, obj.GetName())
}

// read returns the object of that name as the cache shows it (nil when
// absent), once the cache shows relabel's last write to it; from the API
// server when the cache does not within catchUpTimeout. Reads go on after
// a Ctrl-C: the passes that bring a deleted original back need them.
func (om objectMigration) read(ctx context.Context, name string) (*unstructured.Unstructured, error) {
	ctx = context.WithoutCancel(ctx)
	it := om.item
	if w, ok := om.reads.wrote[name]; ok {
		err := om.watch.waitFor(ctx, it.Kind, it.Namespace, name, name+" in the cache as relabel last wrote it", catchUpTimeout,
			func(obj *unstructured.Unstructured) (bool, string, error) {
				ok, err := shows(w, obj)
				return ok, "the cache is behind relabel's last write", err
			})
		switch {
		case err == nil:
			delete(om.reads.wrote, name)
		case isWaitTimeout(err), errors.Is(err, errIncomparable):
			obj, err := om.get(ctx, name)
			if err != nil {
				return nil, err
			}
			delete(om.reads.wrote, name)
			if obj != nil {
				om.reads.whole[name] = obj
			}
			return obj, nil
		default:
			return nil, err
		}
	}
	obj, err := om.watch.cached(it.Kind, it.Namespace, name)
	if err != nil {
		return nil, errorf(it, "%w", err)
	}
	return obj, nil
}

// readThrough reads the object of that name from the API server, for a
// write that found the cache behind (a create of a name that is taken): the
// next pass waits until the cache shows what the API server has.
func (om objectMigration) readThrough(ctx context.Context, name string) error {
	obj, err := om.get(context.WithoutCancel(ctx), name)
	if err != nil || obj == nil {
		return err
	}
	om.wrote(obj)
	return nil
}

// wholeOf returns cached as a whole object: the one kept when it is of the
// same version, else from one GET. The GET may find a later version, or
// none: changed reports that, and the caller decides again.
func (om objectMigration) wholeOf(ctx context.Context, cached *unstructured.Unstructured) (obj *unstructured.Unstructured, changed bool, err error) {
	name := cached.GetName()
	if kept := om.reads.whole[name]; kept != nil && sameVersion(kept, cached) {
		return kept, false, nil
	}
	obj, err = om.get(ctx, name)
	if err != nil || obj == nil {
		return nil, true, err
	}
	if !sameVersion(obj, cached) {
		// Later than the cache: the next pass waits until the cache shows it.
		om.wrote(obj)
		return obj, true, nil
	}
	om.reads.whole[name] = obj
	return obj, false, nil
}

func sameVersion(a, b *unstructured.Unstructured) bool {
	return a.GetUID() == b.GetUID() && a.GetResourceVersion() == b.GetResourceVersion()
}

// staleCheck remembers whether a copy's spec matched its original's, for
// the versions of both it compared: generations, which only spec changes
// move, so status updates do not make a pass read both whole again.
type staleCheck struct {
	key   staleKey
	stale bool
	done  bool
}

type staleKey struct {
	original, temp       types.UID
	originalGen, tempGen int64
	originalRV, tempRV   string
	target               string
}

func staleKeyOf(original, temp *unstructured.Unstructured, target string) staleKey {
	k := staleKey{original: original.GetUID(), temp: temp.GetUID(),
		originalGen: original.GetGeneration(), tempGen: temp.GetGeneration(), target: target}
	// Without generations (some custom resources), only the same versions count.
	if k.originalGen == 0 || k.tempGen == 0 {
		k.originalRV, k.tempRV = original.GetResourceVersion(), temp.GetResourceVersion()
	}
	return k
}
