package cli

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"relabel.dev/relabel/engine"
	"relabel.dev/relabel/rules"
)

func flightItem(name string, strategy rules.Strategy) engine.Item {
	return engine.Item{Kind: rules.Kind{Kind: "Deployment", Group: "apps", Version: "v1", Resource: "deployments", MaxNameLength: 253},
		Namespace: "shop", Name: name, Action: engine.ActionMigrate, Strategy: strategy}
}

func steps(s ...engine.Step) []engine.Step { return s }

func TestLeftBehind(t *testing.T) {
	tempCopy, adopt := rules.TempCopy, rules.Adopt
	for _, tc := range []struct {
		name     string
		strategy rules.Strategy
		steps    []engine.Step
		want     string // "" for no line
		deleted  bool   // counted as deleted and not recreated
	}{
		{"backed up", tempCopy, steps(engine.StepBackedUp),
			"apps/v1/deployments shop/web: the original is untouched; its copy web-temp may exist next to it; rerun the same command to finish, or delete web-temp", false},
		{"copy created", tempCopy, steps(engine.StepBackedUp, engine.StepCopyCreated),
			"apps/v1/deployments shop/web: the original is untouched; its copy web-temp runs next to it; rerun the same command to finish, or delete web-temp", false},
		{"copy ready", tempCopy, steps(engine.StepBackedUp, engine.StepCopyCreated, engine.StepCopyReady),
			"apps/v1/deployments shop/web: its copy web-temp serves; the original may be being deleted; rerun the same command to finish", false},
		{"original deleted", tempCopy, steps(engine.StepBackedUp, engine.StepCopyCreated, engine.StepCopyReady, engine.StepOriginalDeleted),
			"apps/v1/deployments shop/web: the original is deleted and not recreated yet; web-temp serves; rerun the same command to finish", true},
		{"recreated", tempCopy, steps(engine.StepCopyReady, engine.StepOriginalDeleted, engine.StepRecreated),
			"apps/v1/deployments shop/web: recreated with the label, not ready yet; web-temp serves next to it; rerun the same command to finish", false},
		{"recreated, with a warning reported twice", tempCopy, steps(engine.StepOriginalDeleted, engine.StepRecreated, engine.StepRecreated),
			"apps/v1/deployments shop/web: recreated with the label, not ready yet; web-temp serves next to it; rerun the same command to finish", false},
		{"ready", tempCopy, steps(engine.StepOriginalDeleted, engine.StepRecreated, engine.StepReady),
			"apps/v1/deployments shop/web: recreated and ready; its copy web-temp may not be deleted yet; rerun the same command to finish", false},
		{"copy deleted: nothing left", tempCopy, steps(engine.StepOriginalDeleted, engine.StepRecreated, engine.StepReady, engine.StepCopyDeleted), "", false},
		{"rolled back: nothing left", tempCopy, steps(engine.StepCopyCreated, engine.StepRolledBack), "", false},
		{"deleted again after a recreation someone else undid", tempCopy, steps(engine.StepOriginalDeleted, engine.StepRecreated, engine.StepCopyReady, engine.StepOriginalDeleted),
			"apps/v1/deployments shop/web: the original is deleted and not recreated yet; web-temp serves; rerun the same command to finish", true},

		{"adopt: backed up", adopt, steps(engine.StepBackedUp),
			"apps/v1/deployments shop/web: the original is untouched; some of what it owns may carry the label already; rerun the same command to finish", false},
		{"adopt: dependents labelled", adopt, steps(engine.StepBackedUp, engine.StepDependentsLabelled),
			"apps/v1/deployments shop/web: what it owns carries the label; the original may be deleted (orphan propagation) and not recreated yet; rerun the same command to finish", false},
		{"adopt: orphaned", adopt, steps(engine.StepBackedUp, engine.StepDependentsLabelled, engine.StepOrphaned),
			"apps/v1/deployments shop/web: the original is deleted (orphan propagation: its pods keep running, unowned) and not recreated yet; rerun the same command to finish", true},
		{"adopt: orphaned, stragglers labelled", adopt, steps(engine.StepOrphaned, engine.StepDependentsLabelled),
			"apps/v1/deployments shop/web: the original is deleted (orphan propagation: its pods keep running, unowned) and not recreated yet; rerun the same command to finish", true},
		{"adopt: recreated", adopt, steps(engine.StepOrphaned, engine.StepRecreated),
			"apps/v1/deployments shop/web: recreated with the label and adopting its pods, not ready yet; rerun the same command to finish", false},
		{"adopt: orphans deleted", adopt, steps(engine.StepOrphaned, engine.StepRecreated, engine.StepReady, engine.StepOrphansDeleted),
			"apps/v1/deployments shop/web: migrated; its adopt marker may be left in the backup directory; a rerun clears it", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objects := []flightObject{{Item: flightItem("web", tc.strategy), Steps: tc.steps}}
			var want []string
			if tc.want != "" {
				want = []string{"  " + tc.want}
			}
			if got := leftBehind(objects, "-temp"); !slices.Equal(got, want) {
				t.Errorf("leftBehind\n got %q\nwant %q", got, want)
			}
			if got := originalsDeleted(objects); got != map[bool]int{true: 1, false: 0}[tc.deleted] {
				t.Errorf("originalsDeleted = %d, want deleted=%v", got, tc.deleted)
			}
		})
	}
}

func TestInFlightRecord(t *testing.T) {
	f := newInFlight("-temp", []string{"shop"}, nil)
	now := time.Now()
	for _, pr := range []engine.Progress{
		{Time: now, Item: flightItem("web", rules.TempCopy), Step: engine.StepBackedUp},
		{Time: now, Item: flightItem("api", rules.TempCopy), Step: engine.StepBackedUp},
		{Time: now, Item: flightItem("web", rules.TempCopy), Step: engine.StepCopyCreated},
		{Time: now, Item: flightItem("api", rules.TempCopy), Step: engine.StepFinished, Outcome: engine.Failed},
		{Time: now, Item: flightItem("db", rules.TempCopy), Step: engine.StepDryRun},
	} {
		f.record(pr)
	}
	got := f.snapshot()
	if len(got) != 1 || got[0].Item.Name != "web" || !slices.Equal(got[0].Steps, steps(engine.StepBackedUp, engine.StepCopyCreated)) {
		t.Fatalf("in flight %+v, want only web with its two steps (finished and dry-run objects are not in flight)", got)
	}
	lines := f.leftBehind()
	if len(lines) != 2 || !strings.Contains(lines[1], "Lease relabel-lock in shop") {
		t.Errorf("leftBehind %q: want web's line and the Lease", lines)
	}
	if lines := newInFlight("-temp", []string{"shop"}, nil).leftBehind(); len(lines) != 0 {
		t.Errorf("nothing in flight leaves %q; want nothing, not even the Lease line", lines)
	}
}

// TestInFlightResumed: an object an earlier run left half done is in flight
// before it reports a step (its original may be held by a finalizer, and
// waiting for it reports nothing); one the plan only migrates is not.
func TestInFlightResumed(t *testing.T) {
	resumed := flightItem("held", rules.TempCopy)
	resumed.Action, resumed.Reason = engine.ActionResume, "being deleted, its temporary copy serves; recreated once it is gone"
	f := newInFlight("-temp", []string{"shop"}, []engine.Item{resumed, flightItem("web", rules.TempCopy)})
	want := "  apps/v1/deployments shop/held: left by an earlier run (being deleted, its temporary copy serves; recreated once it is gone); rerun the same command to finish"
	if lines := f.leftBehind(); len(lines) != 2 || lines[0] != want {
		t.Fatalf("leftBehind %q, want %q and the Lease", lines, want)
	}
	f.record(engine.Progress{Item: resumed, Step: engine.StepRecreated})
	if lines := f.leftBehind(); len(lines) != 2 || !strings.Contains(lines[0], "shop/held: recreated with the label") {
		t.Errorf("after its first step: %q", lines)
	}
	f.record(engine.Progress{Item: resumed, Step: engine.StepFinished, Outcome: engine.Migrated})
	if lines := f.leftBehind(); len(lines) != 0 {
		t.Errorf("after it finished: %q, want nothing", lines)
	}
}

// testInterrupts is Interrupts with a clock the test moves and an exit that
// only counts.
func testInterrupts(t *testing.T) (h *Interrupts, ctx context.Context, out *bytes.Buffer, exits *int, clock *time.Time) {
	t.Helper()
	out, exits, clock = &bytes.Buffer{}, new(int), new(time.Time)
	*clock = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ctx, cancel := context.WithCancelCause(context.Background())
	t.Cleanup(func() { cancel(nil) })
	h = &Interrupts{stderr: out, cancel: cancel, exit: func() { *exits++ }, window: forceWindow, now: func() time.Time { return *clock }}
	return h, ctx, out, exits, clock
}

func TestInterruptsStages(t *testing.T) {
	h, ctx, out, exits, clock := testInterrupts(t)
	f := newInFlight("-temp", []string{"shop"}, nil)
	f.record(engine.Progress{Item: flightItem("web", rules.TempCopy), Step: engine.StepOriginalDeleted})
	f.record(engine.Progress{Item: flightItem("api", rules.TempCopy), Step: engine.StepCopyCreated})
	var said []string
	done := h.follow(f, func(lines ...string) { said = append(said, lines...) })
	defer done()

	h.interrupt()
	if ctx.Err() == nil {
		t.Fatal("the first interrupt did not cancel the context")
	}
	if want := []string{"stopping: finishing 1 objects whose original is deleted; Ctrl-C again to see what stopping now would leave behind"}; !slices.Equal(said, want) {
		t.Errorf("first: %q, want %q", said, want)
	}

	said = nil
	h.interrupt()
	text := strings.Join(said, "\n")
	for _, want := range []string{
		"stopping now would leave behind:",
		"apps/v1/deployments shop/api: the original is untouched; its copy api-temp runs next to it",
		"apps/v1/deployments shop/web: the original is deleted and not recreated yet; web-temp serves; rerun the same command to finish",
		"Lease relabel-lock in shop",
		"Ctrl-C again within 10s to stop now anyway",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("second: lacks %q:\n%s", want, text)
		}
	}
	if *exits != 0 {
		t.Fatal("the second interrupt exited")
	}

	// After the window a Ctrl-C asks again instead of exiting.
	*clock = clock.Add(forceWindow + time.Second)
	said = nil
	h.interrupt()
	if *exits != 0 || !strings.Contains(strings.Join(said, "\n"), "Ctrl-C again within 10s") {
		t.Fatalf("a Ctrl-C after the window: exits %d, said %q; want the question again", *exits, said)
	}

	*clock = clock.Add(forceWindow - time.Second)
	said = nil
	h.interrupt()
	if *exits != 1 {
		t.Fatalf("the third interrupt within the window: %d exits, want 1", *exits)
	}
	if text := strings.Join(said, "\n"); !strings.HasPrefix(text, "stopping now; left behind:") || !strings.Contains(text, "shop/web: the original is deleted") {
		t.Errorf("third: %q, want what is left behind", text)
	}
	if out.Len() != 0 {
		t.Errorf("wrote %q to stderr directly while a migration prints", out.String())
	}
}

func TestInterruptsWithNothingInFlight(t *testing.T) {
	t.Run("no migration running", func(t *testing.T) {
		h, ctx, out, exits, _ := testInterrupts(t)
		h.interrupt()
		if ctx.Err() == nil || *exits != 0 || out.String() != "stopping; Ctrl-C again to exit at once\n" {
			t.Fatalf("first: ctx %v, exits %d, stderr %q", ctx.Err(), *exits, out.String())
		}
		h.interrupt()
		if *exits != 1 {
			t.Fatalf("second: %d exits, want 1: nothing would be left behind", *exits)
		}
	})
	t.Run("objects finished", func(t *testing.T) {
		h, _, _, exits, _ := testInterrupts(t)
		f := newInFlight("-temp", []string{"shop"}, nil)
		f.record(engine.Progress{Item: flightItem("web", rules.TempCopy), Step: engine.StepCopyDeleted})
		var said []string
		defer h.follow(f, func(lines ...string) { said = append(said, lines...) })()
		h.interrupt()
		h.interrupt()
		if *exits != 1 || !slices.Contains(said, "stopping now: nothing is in flight") {
			t.Fatalf("second: %d exits, said %q; want an exit at once", *exits, said)
		}
	})
	t.Run("a nil Interrupts follows nothing", func(t *testing.T) {
		var h *Interrupts
		h.follow(newInFlight("-temp", nil, nil), func(...string) {})()
	})
}
