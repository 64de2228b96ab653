package engine

import "fmt"

// The decision core: for each strategy, a pure function from what one pass
// observed of an object to the one next thing to do. The executors in
// object.go and adopt.go observe, ask, act and observe again, so any state a
// crash can leave the cluster in is a row of decide_test.go, not a guess.

// Presence is whether an object exists, and whether it is going.
type Presence int

const (
	Absent Presence = iota
	Present
	Terminating
)

func (p Presence) String() string {
	return [...]string{"absent", "present", "terminating"}[p]
}

// Observed is what one pass saw of one object, in facts a decision needs.
type Observed struct {
	Original Presence
	// OriginalLabelled: selector, template and metadata carry the label.
	OriginalLabelled bool
	// OriginalReady: its readiness rule says it serves.
	OriginalReady bool
	// OriginalGaveUp says why a wait for the original ended in this run
	// without it being ready (a timeout, a failed verdict); empty otherwise.
	OriginalGaveUp string

	// Copy is NAME-temp, whoever made it.
	Copy Presence
	// CopyOurs: NAME-temp is relabel's copy of this object.
	CopyOurs bool
	// CopyOfThisOriginal: the copy records the UID of the original present now.
	CopyOfThisOriginal bool
	// CopyLeftOver: the copy is of an earlier original whose migration
	// finished: the present one carries the label the copy's run added.
	CopyLeftOver bool
	// CopyStale: the copy's spec is not what the original would give now.
	CopyStale bool
	CopyReady bool
	// CopyGaveUp says why the copy cannot be relied on (a timeout, a failed
	// verdict, a refusal by admission of the relabelled object).
	CopyGaveUp string

	// Refused says why the API server refused the relabelled object (a
	// server-side dry run, in this run); empty when it accepted it.
	Refused string

	// Adopt: the marker says an orphan delete of this object was started.
	Marker bool
	// MarkerOfThisOriginal: the marker records the UID of the original present now.
	MarkerOfThisOriginal bool
	// MarkerLeftOver: the marker is of an earlier original whose migration
	// finished but for its clean-up: the present one carries its label.
	MarkerLeftOver bool

	// Replaces counts the attempts to delete the original in this run.
	Replaces int
}

// Next is the next step of a migration.
type Next int

const (
	Done Next = iota
	Stop
	CreateCopy
	RefreshCopy
	WaitCopyReady
	RollBack
	DeleteOriginal
	WaitOriginalGone
	Recreate
	WaitOriginalReady
	DeleteCopy
	WaitCopyGone
	// Adopt only.
	OrphanOriginal
	RecreateAdopting
	DeleteOrphans
)

var actionNames = map[Next]string{Done: "done", Stop: "stop", CreateCopy: "create-copy", RefreshCopy: "refresh-copy",
	WaitCopyReady: "wait-copy-ready", RollBack: "roll-back", DeleteOriginal: "delete-original", WaitOriginalGone: "wait-original-gone",
	Recreate: "recreate", WaitOriginalReady: "wait-original-ready", DeleteCopy: "delete-copy", WaitCopyGone: "wait-copy-gone",
	OrphanOriginal: "orphan-original", RecreateAdopting: "recreate-adopting", DeleteOrphans: "delete-orphans"}

func (a Next) String() string { return actionNames[a] }

// Decision is an action and, for Stop and RollBack, why.
type Decision struct {
	Next   Next
	Reason string
}

func (d Decision) String() string {
	if d.Reason == "" {
		return d.Next.String()
	}
	return d.Next.String() + ": " + d.Reason
}

// MustContinue says whether the action must run even after Ctrl-C: relabel
// deleted the original, and only its recreation brings it back.
func (d Decision) MustContinue() bool {
	return d.Next == WaitOriginalGone || d.Next == Recreate || d.Next == RecreateAdopting
}

// Reasons a migration stops with. The executor adds names and commands.
const (
	reasonGone           = "the object no longer exists"
	reasonForeignCopy    = "NAME-temp exists and is not relabel's copy"
	reasonOtherWriter    = "someone else created the original after relabel deleted the one it copied"
	reasonDeletedByOther = "being deleted by someone else"
	reasonTooManyTries   = "it changed each time before relabel could delete it"
	reasonNotReady       = "the new object is not ready"
)

// decideTempCopy is the temp-copy strategy: a copy serves while the
// original is deleted and recreated with the label.
func decideTempCopy(o Observed) Decision {
	switch {
	case o.Copy != Absent && !o.CopyOurs:
		return Decision{Stop, reasonForeignCopy}

	case o.Original == Absent && o.Copy == Absent:
		return Decision{Stop, reasonGone}
	case o.Original == Absent:
		// Deleted by relabel: the copy is the proof. Bring it back.
		return Decision{Next: Recreate}

	case o.OriginalLabelled:
		switch {
		case o.Copy == Absent:
			return Decision{Next: Done}
		case o.Copy == Terminating:
			return Decision{Next: WaitCopyGone}
		case o.Original == Terminating:
			// A finished original someone deletes: the copy serves; let it be.
			return Decision{Stop, reasonDeletedByOther}
		case o.OriginalReady:
			return Decision{Next: DeleteCopy}
		case o.OriginalGaveUp != "":
			return Decision{Stop, reasonNotReady + ": " + o.OriginalGaveUp}
		}
		return Decision{Next: WaitOriginalReady}

	// The original is there without the label.
	case o.Copy != Absent && !o.CopyOfThisOriginal && o.CopyLeftOver:
		// An earlier run, adding another label, stopped before removing its copy.
		switch {
		case o.Copy == Terminating:
			return Decision{Next: WaitCopyGone}
		case o.OriginalReady:
			return Decision{Next: DeleteCopy}
		case o.OriginalGaveUp != "":
			return Decision{Stop, reasonNotReady + ": " + o.OriginalGaveUp}
		}
		return Decision{Next: WaitOriginalReady}
	case o.Copy != Absent && !o.CopyOfThisOriginal:
		return Decision{Stop, reasonOtherWriter}
	case o.Original == Terminating && o.Copy == Present:
		// Deleted by a run that stopped while a finalizer held it.
		return Decision{Next: WaitOriginalGone}
	case o.Original == Terminating:
		return Decision{Stop, reasonDeletedByOther}
	case o.Copy == Terminating:
		return Decision{Next: WaitCopyGone}
	case o.Copy == Absent && o.Refused != "":
		return Decision{Stop, o.Refused}
	case o.Copy == Absent && o.CopyGaveUp != "":
		// Rolled back in this run: report it, do not start again.
		return Decision{Stop, o.CopyGaveUp}
	case o.Copy == Absent:
		return Decision{Next: CreateCopy}
	case o.Refused != "":
		return Decision{RollBack, o.Refused}
	case o.CopyGaveUp != "":
		return Decision{RollBack, o.CopyGaveUp}
	case o.CopyStale:
		return Decision{Next: RefreshCopy}
	case !o.CopyReady:
		return Decision{Next: WaitCopyReady}
	case o.Replaces >= maxReplaces:
		return Decision{Stop, fmt.Sprintf("%s, %d times (another controller or person writing it?)", reasonTooManyTries, o.Replaces)}
	}
	return Decision{Next: DeleteOriginal}
}

// decideAdopt is the adopt strategy: the live pods get the label, the
// original is orphan-deleted and recreated, and adopts them.
func decideAdopt(o Observed) Decision {
	switch {
	case o.Original == Absent && !o.Marker:
		return Decision{Stop, reasonGone}
	case o.Original == Absent:
		// Orphan-deleted by relabel: the marker is the proof. Bring it back.
		return Decision{Next: RecreateAdopting}

	case o.OriginalLabelled:
		switch {
		case !o.Marker:
			return Decision{Next: Done}
		case o.OriginalReady:
			return Decision{Next: DeleteOrphans}
		case o.OriginalGaveUp != "":
			return Decision{Stop, reasonNotReady + ": " + o.OriginalGaveUp}
		}
		return Decision{Next: WaitOriginalReady}

	case o.Marker && !o.MarkerOfThisOriginal && o.MarkerLeftOver:
		// An earlier run, adding another label, stopped before its clean-up.
		switch {
		case o.OriginalReady:
			return Decision{Next: DeleteOrphans}
		case o.OriginalGaveUp != "":
			return Decision{Stop, reasonNotReady + ": " + o.OriginalGaveUp}
		}
		return Decision{Next: WaitOriginalReady}
	case o.Marker && !o.MarkerOfThisOriginal:
		return Decision{Stop, reasonOtherWriter}
	case o.Original == Terminating && o.Marker:
		// The garbage collector releases its dependents before it goes.
		return Decision{Next: WaitOriginalGone}
	case o.Original == Terminating:
		return Decision{Stop, reasonDeletedByOther}
	case o.Refused != "":
		// The relabelled object would be refused: nothing touched yet.
		return Decision{Stop, o.Refused}
	case o.Replaces >= maxReplaces:
		return Decision{Stop, fmt.Sprintf("%s, %d times (another controller or person writing it?)", reasonTooManyTries, o.Replaces)}
	}
	return Decision{Next: OrphanOriginal}
}
