//go:build unix

package engine

import (
	"errors"
	"syscall"
)

// processGone is true when no process has this pid.
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
