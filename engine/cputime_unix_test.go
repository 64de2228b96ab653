//go:build unix

package engine

import (
	"syscall"
	"time"
)

// processCPU is the CPU time the process has used, all its threads, the
// garbage collector's included.
func processCPU() time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		return 0
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}
