//go:build !relabeltest

package cli

import "relabel.dev/relabel/engine"

// crashPoint is the crash-safety tests' hook; without the relabeltest build
// tag there is none, and nothing reads $RELABEL_TEST_CRASH_AFTER.
type crashPoint struct{}

func crashAfter() crashPoint { return crashPoint{} }

func (*crashPoint) after(engine.Step) {}
