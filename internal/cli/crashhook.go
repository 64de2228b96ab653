//go:build relabeltest

package cli

import (
	"os"
	"strconv"
	"strings"

	"relabel.dev/relabel/engine"
)

// This file is built only with -tags relabeltest, as the end-to-end tests
// build relabel: the shipped binary has no way to kill itself.

// crashPoint is STEP or STEP:N, the Nth time any object reaches STEP.
type crashPoint struct {
	step  engine.Step
	count int
}

// crashAfter reads the crash point from $RELABEL_TEST_CRASH_AFTER.
func crashAfter() crashPoint {
	step, n, _ := strings.Cut(os.Getenv(EnvCrashAfter), ":")
	count, err := strconv.Atoi(n)
	if err != nil || count < 1 {
		count = 1
	}
	return crashPoint{step: engine.Step(step), count: count}
}

// after kills the process, without any cleanup, when step is the crash
// point: a crash exactly after a step, for the crash-safety tests. Its
// caller serialises the calls.
func (c *crashPoint) after(step engine.Step) {
	if c.step == "" || step != c.step {
		return
	}
	if c.count--; c.count > 0 {
		return
	}
	// SIGKILL on Unix; os.Process.Kill also builds for Windows.
	if self, err := os.FindProcess(os.Getpid()); err == nil {
		_ = self.Kill()
	}
}
