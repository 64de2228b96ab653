package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"relabel.dev/relabel/engine"
	"relabel.dev/relabel/rules"
	workload "relabel.dev/relabel/unstructured"
)

// forceWindow is how long the third Ctrl-C is awaited after the second.
const forceWindow = 10 * time.Second

// Interrupts turns SIGINT and SIGTERM into the stop an operator expects of
// a tool that deletes and recreates workloads:
//
//  1. the first cancels the command's context: no object starts another
//     step, and an object whose original is already deleted is recreated
//     before relabel ends; one line says how many those are;
//  2. the second prints, per object in flight, what stopping at once would
//     leave behind (from the steps it reported), and asks for a third
//     within forceWindow; with nothing in flight it exits at once;
//  3. the third, within that window, prints the same and exits at once.
type Interrupts struct {
	stderr io.Writer
	cancel context.CancelCauseFunc
	// exit ends the process; main passes one that exits with its code for
	// a forced stop.
	exit   func()
	window time.Duration
	now    func() time.Time

	mu       sync.Mutex
	stopping bool
	prompted time.Time // when the second Ctrl-C asked for a third
	running  *runningMigration
}

// runningMigration is the migration Interrupts reports on.
type runningMigration struct {
	flight *inFlight
	// say prints lines without tearing the progress status line.
	say func(lines ...string)
}

type interruptsKey struct{}

// errInterrupted is the cause of the context a signal cancels: it names
// why an object stopped in the report.
var errInterrupted = errors.New("interrupted by a signal (Ctrl-C or SIGTERM)")

// NotifyInterrupts returns a context that the first SIGINT or SIGTERM
// cancels, and carries the Interrupts that handle the ones after it (see
// Interrupts); forceExit is called when the user forces the stop. stop
// restores the default handling of the signals.
func NotifyInterrupts(parent context.Context, stderr io.Writer, forceExit func()) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	h := &Interrupts{stderr: stderr, cancel: cancel, exit: forceExit, window: forceWindow, now: time.Now}
	signals := make(chan os.Signal, 3)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-signals:
				h.interrupt()
			}
		}
	})
	return context.WithValue(ctx, interruptsKey{}, h), func() {
		signal.Stop(signals)
		close(done)
		wg.Wait()
		cancel(nil)
	}
}

// interruptsFrom returns the context's Interrupts, or nil: commands run by
// tests without NotifyInterrupts.
func interruptsFrom(ctx context.Context) *Interrupts {
	h, _ := ctx.Value(interruptsKey{}).(*Interrupts)
	return h
}

// follow makes the interrupts report on a migration until done is called.
func (h *Interrupts) follow(flight *inFlight, say func(lines ...string)) (done func()) {
	if h == nil {
		return func() {}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	m := &runningMigration{flight: flight, say: say}
	h.running = m
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.running == m {
			h.running = nil
		}
	}
}

func (h *Interrupts) interrupt() {
	h.mu.Lock()
	defer h.mu.Unlock()
	say := func(lines ...string) {
		for _, l := range lines {
			fmt.Fprintln(h.stderr, l)
		}
	}
	if h.running != nil {
		say = h.running.say
	}
	if !h.stopping {
		h.stopping = true
		h.cancel(errInterrupted)
		if h.running == nil {
			say("stopping; Ctrl-C again to exit at once")
			return
		}
		say(fmt.Sprintf("stopping: finishing %d objects whose original is deleted; Ctrl-C again to see what stopping now would leave behind",
			originalsDeleted(h.running.flight.snapshot())))
		return
	}
	var left []string
	if h.running != nil {
		left = h.running.flight.leftBehind()
	}
	if len(left) == 0 {
		say("stopping now: nothing is in flight")
		h.exit()
		return
	}
	now := h.now()
	if !h.prompted.IsZero() && now.Sub(h.prompted) <= h.window {
		say(append([]string{"stopping now; left behind:"}, left...)...)
		h.exit()
		return
	}
	// The first prompt, or a Ctrl-C after the window closed: ask again.
	h.prompted = now
	say(append(append([]string{"stopping now would leave behind:"}, left...),
		fmt.Sprintf("Ctrl-C again within %s to stop now anyway; otherwise relabel goes on stopping", h.window))...)
}

// inFlight follows, from their progress, the objects of a migration that
// have started and not finished.
type inFlight struct {
	tempSuffix string
	// leases are the namespaces whose Lease the run holds.
	leases []string

	mu      sync.Mutex
	objects map[string]*flightObject
}

// newInFlight follows a migration of the items. Those the plan resumes
// count as in flight before their first step: an earlier run left them
// half done, and the step they wait in (an original a finalizer holds)
// may report nothing.
func newInFlight(tempSuffix string, leases []string, items []engine.Item) *inFlight {
	f := &inFlight{tempSuffix: tempSuffix, leases: leases, objects: map[string]*flightObject{}}
	for _, it := range items {
		if it.Action == engine.ActionResume {
			f.objects[it.Key()] = &flightObject{Item: it}
		}
	}
	return f
}

// record notes one step; it is called from several goroutines at once.
func (f *inFlight) record(pr engine.Progress) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := pr.Item.Key()
	switch pr.Step {
	case engine.StepFinished, engine.StepDryRun: // a dry run writes nothing
		delete(f.objects, key)
		return
	}
	o := f.objects[key]
	if o == nil {
		o = &flightObject{Item: pr.Item}
		f.objects[key] = o
	}
	o.Steps = append(o.Steps, pr.Step)
}

// snapshot returns the objects in flight, by key.
func (f *inFlight) snapshot() []flightObject {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]flightObject, 0, len(f.objects))
	for _, o := range f.objects {
		out = append(out, flightObject{Item: o.Item, Steps: slices.Clone(o.Steps)})
	}
	slices.SortFunc(out, func(a, b flightObject) int { return strings.Compare(a.Item.Key(), b.Item.Key()) })
	return out
}

// leftBehind is what a forced stop would leave: a line per object in
// flight, then the Leases, when anything is left at all.
func (f *inFlight) leftBehind() []string {
	lines := leftBehind(f.snapshot(), f.tempSuffix)
	if len(lines) > 0 && len(f.leases) > 0 {
		lines = append(lines, fmt.Sprintf("  the Lease %s in %s, until it expires; a rerun on this machine takes it over at once",
			engine.LockName, strings.Join(f.leases, ", ")))
	}
	return lines
}

// flightObject is what the CLI knows of one object being migrated: the
// steps it reported, in order.
type flightObject struct {
	Item  engine.Item
	Steps []engine.Step
}

// state sums up the steps: the last, whether this run deleted the original
// and whether it recreated it since.
func (o flightObject) state() (last engine.Step, deleted, recreated bool) {
	for _, s := range o.Steps {
		switch s {
		case engine.StepOriginalDeleted, engine.StepOrphaned:
			deleted, recreated = true, false
		case engine.StepRecreated:
			recreated = true
		}
		last = s
	}
	return last, deleted, recreated
}

// originalsDeleted counts the objects whose original is deleted and not
// recreated yet: those a graceful stop still finishes.
func originalsDeleted(objects []flightObject) int {
	n := 0
	for _, o := range objects {
		if _, deleted, recreated := o.state(); deleted && !recreated {
			n++
		}
	}
	return n
}

// leftBehind describes, one line per object, what stopping the process at
// once would leave of each object in flight; objects whose last step
// leaves nothing behind have no line.
func leftBehind(objects []flightObject, tempSuffix string) []string {
	var lines []string
	for _, o := range objects {
		if state := leftState(o, tempSuffix); state != "" {
			lines = append(lines, "  "+o.Item.Key()+": "+state)
		}
	}
	return lines
}

const rerun = "rerun the same command to finish"

// leftState is what one object would be left as, "" for nothing.
func leftState(o flightObject, tempSuffix string) string {
	it := o.Item
	temp := workload.TempName(it.Name, tempSuffix, it.Kind.MaxNameLength)
	last, deleted, recreated := o.state()
	if last == "" {
		return "left by an earlier run (" + it.Reason + "); " + rerun
	}
	if it.Strategy == rules.Adopt {
		switch {
		case deleted && !recreated:
			return "the original is deleted (orphan propagation: its pods keep running, unowned) and not recreated yet; " + rerun
		case last == engine.StepBackedUp:
			return "the original is untouched; some of what it owns may carry the label already; " + rerun
		case last == engine.StepDependentsLabelled:
			return "what it owns carries the label; the original may be deleted (orphan propagation) and not recreated yet; " + rerun
		case last == engine.StepRecreated:
			return "recreated with the label and adopting its pods, not ready yet; " + rerun
		case last == engine.StepReady:
			return "recreated and ready; the old revisions it left may not be removed yet; " + rerun
		case last == engine.StepOrphansDeleted:
			return "migrated; its adopt marker may be left in the backup directory; a rerun clears it"
		}
		return "last step " + string(last) + "; " + rerun
	}
	switch {
	case deleted && !recreated:
		return "the original is deleted and not recreated yet; " + temp + " serves; " + rerun
	case last == engine.StepBackedUp:
		return "the original is untouched; its copy " + temp + " may exist next to it; " + rerun + ", or delete " + temp
	case last == engine.StepCopyCreated, last == engine.StepCopyUpdated:
		return "the original is untouched; its copy " + temp + " runs next to it; " + rerun + ", or delete " + temp
	case last == engine.StepCopyReady:
		return "its copy " + temp + " serves; the original may be being deleted; " + rerun
	case last == engine.StepRecreated:
		return "recreated with the label, not ready yet; " + temp + " serves next to it; " + rerun
	case last == engine.StepReady:
		return "recreated and ready; its copy " + temp + " may not be deleted yet; " + rerun
	case last == engine.StepCopyDeleted, last == engine.StepRolledBack:
		return ""
	}
	return "last step " + string(last) + "; " + rerun
}
