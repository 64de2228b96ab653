package engine

import (
	"strings"
	"testing"
)

// Each row is a state the cluster (and this run's memory) can be in; the
// "crash after" rows are what a rerun observes after relabel died right
// after that step.
func TestDecideTempCopy(t *testing.T) {
	// The common states, named as a rerun would find them.
	var (
		untouched = Observed{Original: Present}
		copyMade  = Observed{Original: Present, Copy: Present, CopyOurs: true, CopyOfThisOriginal: true}
		copyReady = changed(copyMade, func(o *Observed) { o.CopyReady = true })
		deleting  = changed(copyReady, func(o *Observed) { o.Original = Terminating })
		deleted   = Observed{Copy: Present, CopyOurs: true, CopyReady: true}
		recreated = Observed{Original: Present, OriginalLabelled: true, Copy: Present, CopyOurs: true, CopyReady: true}
		ready     = changed(recreated, func(o *Observed) { o.OriginalReady = true })
		copyGoing = changed(ready, func(o *Observed) { o.Copy = Terminating })
		finished  = Observed{Original: Present, OriginalLabelled: true, OriginalReady: true}
	)
	tests := []struct {
		name string
		o    Observed
		want Next
		// wantReason is a part of the reason, for Stop and RollBack.
		wantReason string
	}{
		{"untouched: make the copy", untouched, CreateCopy, ""},
		{"crash after backed-up: make the copy", untouched, CreateCopy, ""},
		{"crash after copy-created: wait for the copy", copyMade, WaitCopyReady, ""},
		{"crash after copy-ready: delete the original", copyReady, DeleteOriginal, ""},
		{"crash after original-deleted, a finalizer holds it: wait until it is gone", deleting, WaitOriginalGone, ""},
		{"crash after original-deleted, gone: recreate", deleted, Recreate, ""},
		{"crash after recreated: wait for it", recreated, WaitOriginalReady, ""},
		{"crash after ready: delete the copy", ready, DeleteCopy, ""},
		{"crash while the copy goes: wait until it is gone", copyGoing, WaitCopyGone, ""},
		{"crash after copy-deleted: done", finished, Done, ""},
		{"already labelled: done", finished, Done, ""},
		{"a labelled original that is not ready yet and no copy: done", Observed{Original: Present, OriginalLabelled: true}, Done, ""},

		{"the copy is not ready: wait", changed(copyMade, func(o *Observed) { o.CopyReady = false }), WaitCopyReady, ""},
		{"the copy is stale: refresh it before relying on it", changed(copyReady, func(o *Observed) { o.CopyStale = true }), RefreshCopy, ""},
		{"the copy timed out: roll back", changed(copyMade, func(o *Observed) { o.CopyGaveUp = "timed out" }), RollBack, "timed out"},
		{"the copy cannot progress: roll back", changed(copyReady, func(o *Observed) { o.CopyGaveUp = "exceeded quota" }), RollBack, "exceeded quota"},
		{"rolled back: stop, do not start again", changed(untouched, func(o *Observed) { o.CopyGaveUp = "exceeded quota" }), Stop, "exceeded quota"},
		{"the copy being rolled back: wait until it is gone", changed(copyMade, func(o *Observed) { o.Copy = Terminating }), WaitCopyGone, ""},
		{"admission refuses before the copy: stop", changed(untouched, func(o *Observed) { o.Refused = "denied" }), Stop, "denied"},
		{"admission refuses once the copy is ready: roll back", changed(copyReady, func(o *Observed) { o.Refused = "denied" }), RollBack, "denied"},
		{"the original keeps changing: stop", changed(copyReady, func(o *Observed) { o.Replaces = maxReplaces }), Stop, reasonTooManyTries},
		{"one conflict: try again", changed(copyReady, func(o *Observed) { o.Replaces = 1 }), DeleteOriginal, ""},

		{"the new object never got ready: stop, the copy serves", changed(recreated, func(o *Observed) { o.OriginalGaveUp = "timed out" }), Stop, reasonNotReady},
		{"a copy left by an earlier run adding another label, the original ready: delete it", changed(copyReady, func(o *Observed) {
			o.CopyOfThisOriginal, o.CopyLeftOver, o.OriginalReady = false, true, true
		}), DeleteCopy, ""},
		{"a copy left by an earlier run, the original not ready: wait", changed(copyReady, func(o *Observed) { o.CopyOfThisOriginal, o.CopyLeftOver = false, true }),
			WaitOriginalReady, ""},
		{"someone else recreated the original: stop", changed(copyReady, func(o *Observed) { o.CopyOfThisOriginal = false }), Stop, reasonOtherWriter},
		{"someone else deletes the original, no copy: stop", Observed{Original: Terminating}, Stop, reasonDeletedByOther},
		{"someone else deletes the relabelled original: stop", changed(recreated, func(o *Observed) { o.Original = Terminating }), Stop, reasonDeletedByOther},
		{"NAME-temp is not relabel's: stop", changed(copyMade, func(o *Observed) { o.CopyOurs = false }), Stop, reasonForeignCopy},
		{"NAME-temp is not relabel's, no original: stop", Observed{Copy: Present}, Stop, reasonForeignCopy},
		{"nothing there: stop", Observed{}, Stop, reasonGone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := decideTempCopy(tc.o)
			if got.Next != tc.want || !strings.Contains(got.Reason, tc.wantReason) {
				t.Errorf("decideTempCopy(%+v) = %s, want %s with %q", tc.o, got, tc.want, tc.wantReason)
			}
		})
	}
}

func TestDecideAdopt(t *testing.T) {
	var (
		untouched = Observed{Original: Present}
		marked    = Observed{Original: Present, Marker: true, MarkerOfThisOriginal: true}
		orphaning = changed(marked, func(o *Observed) { o.Original = Terminating })
		orphaned  = Observed{Marker: true}
		recreated = Observed{Original: Present, OriginalLabelled: true, Marker: true}
		ready     = changed(recreated, func(o *Observed) { o.OriginalReady = true })
		finished  = Observed{Original: Present, OriginalLabelled: true, OriginalReady: true}
	)
	tests := []struct {
		name       string
		o          Observed
		want       Next
		wantReason string
	}{
		{"untouched: orphan-delete it", untouched, OrphanOriginal, ""},
		{"crash after backed-up or dependents-labelled: orphan-delete it", untouched, OrphanOriginal, ""},
		{"crash after the marker: orphan-delete it", marked, OrphanOriginal, ""},
		{"crash after original-orphaned, not yet gone: wait", orphaning, WaitOriginalGone, ""},
		{"crash after original-orphaned, gone: recreate adopting", orphaned, RecreateAdopting, ""},
		{"crash after recreated: wait for it", recreated, WaitOriginalReady, ""},
		{"crash after ready: delete the orphaned revisions", ready, DeleteOrphans, ""},
		{"crash after orphans-deleted: done", finished, Done, ""},
		{"already labelled: done", finished, Done, ""},

		{"admission refuses: stop, nothing touched", changed(untouched, func(o *Observed) { o.Refused = "denied" }), Stop, "denied"},
		{"the new object never got ready: stop", changed(recreated, func(o *Observed) { o.OriginalGaveUp = "timed out" }), Stop, reasonNotReady},
		{"a marker left by an earlier run adding another label, ready: clean up", changed(marked, func(o *Observed) {
			o.MarkerOfThisOriginal, o.MarkerLeftOver, o.OriginalReady = false, true, true
		}), DeleteOrphans, ""},
		{"the marker is of another object: stop", changed(marked, func(o *Observed) { o.MarkerOfThisOriginal = false }), Stop, reasonOtherWriter},
		{"someone else deletes it: stop", Observed{Original: Terminating}, Stop, reasonDeletedByOther},
		{"the original keeps changing: stop", changed(untouched, func(o *Observed) { o.Replaces = maxReplaces }), Stop, reasonTooManyTries},
		{"nothing there: stop", Observed{}, Stop, reasonGone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := decideAdopt(tc.o)
			if got.Next != tc.want || !strings.Contains(got.Reason, tc.wantReason) {
				t.Errorf("decideAdopt(%+v) = %s, want %s with %q", tc.o, got, tc.want, tc.wantReason)
			}
		})
	}
}

// Only the actions that bring back an original relabel deleted go on after Ctrl-C.
func TestMustContinue(t *testing.T) {
	for n := Done; n <= DeleteOrphans; n++ {
		want := n == WaitOriginalGone || n == Recreate || n == RecreateAdopting
		if got := (Decision{Next: n}).MustContinue(); got != want {
			t.Errorf("%s: MustContinue = %v, want %v", n, got, want)
		}
	}
}

func changed(o Observed, change func(*Observed)) Observed {
	change(&o)
	return o
}
