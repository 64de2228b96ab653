//go:build unix

package engine

import (
	"os"
	"os/exec"
	"testing"
)

func TestProcessGone(t *testing.T) {
	if processGone(os.Getpid()) {
		t.Error("this process counts as gone")
	}
	child := exec.Command("true")
	if err := child.Run(); err != nil {
		t.Fatal(err)
	}
	// Run has reaped the child: its pid is free (and not reused this soon).
	if !processGone(child.Process.Pid) {
		t.Errorf("finished child %d counts as running", child.Process.Pid)
	}
}
