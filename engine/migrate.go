package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"relabel.dev/relabel/rules"
)

// Step is a milestone of one object's migration.
type Step string

const (
	StepBackedUp        Step = "backed-up"
	StepCopyCreated     Step = "copy-created"
	StepCopyUpdated     Step = "copy-updated"
	StepCopyReady       Step = "copy-ready"
	StepOriginalDeleted Step = "original-deleted"
	StepRecreated       Step = "recreated"
	StepReady           Step = "ready"
	StepCopyDeleted     Step = "copy-deleted"
	StepRolledBack      Step = "rolled-back"
	StepDryRun          Step = "dry-run"
	// StepFinished ends every object's migration; Progress.Outcome says how.
	StepFinished Step = "finished"
)

// Progress is one step of one object, reported as it happens.
type Progress struct {
	Time    time.Time
	Item    Item
	Step    Step
	Elapsed time.Duration // since the object's migration started
	Message string
	// Outcome is set with StepFinished.
	Outcome Outcome
}

// Outcome is how an object's migration ended.
type Outcome string

const (
	Migrated    Outcome = "migrated"
	Skipped     Outcome = "skipped"
	Failed      Outcome = "failed"
	Interrupted Outcome = "interrupted"
)

// Result is one object's outcome.
type Result struct {
	Item     Item
	Outcome  Outcome
	Duration time.Duration
	Message  string
	// Diff shows, for a dry run, the copy and the recreated object against the original.
	Diff string
}

// DryRun modes.
type DryRun string

const (
	DryRunNone   DryRun = ""
	DryRunClient DryRun = "client"
	DryRunServer DryRun = "server"
)

// Options tune a migration.
type Options struct {
	// TempSuffix names the copy: NAME+TempSuffix.
	TempSuffix string
	// Timeout bounds each wait for readiness of one object.
	Timeout time.Duration
	// Concurrency is how many objects migrate at once; with MaxConcurrency
	// above it, how many at first: the window then opens by two for each copy
	// that becomes ready, up to MaxConcurrency, and halves when a copy is
	// rolled back or the API server answers 429 (see window).
	Concurrency    int
	MaxConcurrency int
	DryRun         DryRun
	// MaxRetries bounds retries of transient errors per object.
	MaxRetries int
}

// Migrator migrates objects with the temp-copy strategy.
type Migrator struct {
	Dynamic dynamic.Interface
	Backups Backups
	// Events records Kubernetes Events on the objects; nil records none.
	Events *Events
	// OnProgress is called for every step, from several goroutines at once.
	OnProgress func(Progress)
	// GitOps, when set, pauses the GitOps objects of each object while it
	// is in flight (Item.GitOps).
	GitOps *Pauser
	Options
}

// Run migrates the items that are not skipped and returns one result per item.
// A cancelled ctx stops objects between steps; an object whose original was
// already deleted is recreated first, so nothing is left without its workload.
func (m *Migrator) Run(ctx context.Context, items []Item) ([]Result, error) {
	var todo []Item
	results := make([]Result, 0, len(items))
	for _, it := range items {
		if it.Action == ActionSkip {
			results = append(results, Result{Item: it, Outcome: Skipped, Message: it.Reason})
			continue
		}
		todo = append(todo, it)
	}
	if len(todo) == 0 {
		return results, nil
	}
	if m.DryRun != DryRunNone {
		for _, it := range todo {
			results = append(results, m.dryRun(ctx, it))
		}
		return results, nil
	}
	if err := m.Backups.Check(); err != nil {
		return nil, err
	}

	w, err := newWatchers(m.Dynamic, todo, m.TempSuffix)
	if err != nil {
		return nil, err
	}
	// Informers outlive a Ctrl-C so that an object in the middle of its
	// recreation can finish. Their first list is waited for on ctx, and for
	// at most informerSyncTimeout: nothing has been written yet, so a Ctrl-C
	// or an API server that does not answer ends the run there.
	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		stopWatch()
		w.stop()
	}()
	if err := w.start(watchCtx, ctx); err != nil {
		return nil, err
	}
	if m.GitOps != nil {
		m.GitOps.Sweep(ctx, items)
	}

	queue := workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[int](),
		workqueue.TypedRateLimitingQueueConfig[int]{Name: "relabel"})
	var (
		mu       sync.Mutex
		finished = make([]*Result, len(todo))
		done     int
		started  = make([]time.Time, len(todo))
		paused   = make([]bool, len(todo))
	)
	finish := func(i int, r Result) {
		mu.Lock()
		release := paused[i] && finished[i] == nil
		paused[i] = false
		mu.Unlock()
		// The object is done with: its GitOps objects resume once no other
		// object holds them, after a Ctrl-C too.
		if release {
			m.GitOps.Release(ctx, r.Item)
		}
		mu.Lock()
		defer mu.Unlock()
		if finished[i] == nil {
			finished[i] = &r
			done++
			if m.OnProgress != nil {
				m.OnProgress(Progress{Time: time.Now(), Item: r.Item, Step: StepFinished, Elapsed: r.Duration, Message: r.Message, Outcome: r.Outcome})
			}
		}
		if done == len(todo) {
			queue.ShutDown()
		}
	}
	for i := range todo {
		queue.Add(i)
	}
	go func() {
		<-ctx.Done()
		queue.ShutDown()
	}()

	maxRetries := m.MaxRetries
	if maxRetries == 0 {
		maxRetries = 5
	}
	win := newWindow(m.Concurrency, m.MaxConcurrency)
	var wg sync.WaitGroup
	for range min(max(m.Concurrency, m.MaxConcurrency, 1), len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i, quit := queue.Get()
				if quit {
					return
				}
				if win.acquire(ctx) != nil {
					queue.Done(i) // interrupted before it started
					continue
				}
				mu.Lock()
				if started[i].IsZero() {
					started[i] = time.Now()
				}
				start, acquire := started[i], m.GitOps != nil && !paused[i] && finished[i] == nil
				mu.Unlock()
				if acquire {
					if err := m.GitOps.Acquire(ctx, todo[i]); err != nil {
						queue.Forget(i)
						finish(i, Result{Item: todo[i], Outcome: Failed, Duration: time.Since(start), Message: err.Error()})
						win.release()
						queue.Done(i)
						continue
					}
					mu.Lock()
					paused[i] = true
					mu.Unlock()
				}
				om := objectMigration{Migrator: m, watch: w, item: todo[i], start: start, reads: newReads(), window: win}
				run := om.run
				if om.item.Strategy == rules.Adopt {
					run = om.runAdopt
				}
				err := run(ctx)
				switch {
				case err == nil:
					queue.Forget(i)
					finish(i, Result{Item: todo[i], Outcome: Migrated, Duration: time.Since(start)})
				case ctx.Err() != nil:
					finish(i, Result{Item: todo[i], Outcome: Interrupted, Duration: time.Since(start), Message: interruption(ctx, err)})
				case retriable(err) && queue.NumRequeues(i) < maxRetries:
					klog.V(2).InfoS("retrying", "object", todo[i].Key(), "err", err)
					if apierrors.IsTooManyRequests(err) {
						win.shrink()
					}
					queue.AddRateLimited(i)
				default:
					queue.Forget(i)
					finish(i, Result{Item: todo[i], Outcome: Failed, Duration: time.Since(start), Message: err.Error()})
				}
				win.release()
				queue.Done(i)
			}
		}()
	}
	wg.Wait()
	for i, r := range finished {
		if r == nil {
			r = &Result{Item: todo[i], Outcome: Interrupted, Message: "not started"}
		}
		results = append(results, *r)
	}
	return results, nil
}

// interruption says why an object stopped: the context's cause (Ctrl-C, a
// lost lock) rather than a bare "context canceled".
func interruption(ctx context.Context, err error) string {
	if cause := context.Cause(ctx); errors.Is(err, ctx.Err()) && cause != nil && cause != ctx.Err() {
		return cause.Error()
	}
	return err.Error()
}

// retriable tells transient API errors from final ones.
func retriable(err error) bool {
	switch {
	case isWaitTimeout(err):
		return false
	case apierrors.IsConflict(err), apierrors.IsServerTimeout(err), apierrors.IsTimeout(err),
		apierrors.IsTooManyRequests(err), apierrors.IsInternalError(err), apierrors.IsServiceUnavailable(err),
		apierrors.IsUnexpectedServerError(err):
		return true
	case net.IsConnectionRefused(err), net.IsConnectionReset(err), net.IsProbableEOF(err):
		return true
	}
	return false
}

func (m *Migrator) report(it Item, start time.Time, step Step, msg string) {
	klog.V(5).InfoS("step", "object", it.Key(), "step", step, "message", msg)
	if m.OnProgress != nil {
		m.OnProgress(Progress{Time: time.Now(), Item: it, Step: step, Elapsed: time.Since(start), Message: msg})
	}
}

func (m *Migrator) event(obj *unstructured.Unstructured, reason, format string, args ...any) {
	if obj != nil {
		m.Events.Eventf(obj, reason, format, args...)
	}
}

func errorf(it Item, format string, args ...any) error {
	return fmt.Errorf("%s: %w", it.Key(), fmt.Errorf(format, args...))
}
