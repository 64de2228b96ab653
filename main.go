// Command relabel adds a label to the immutable selector of Kubernetes
// workloads without downtime. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"relabel.dev/relabel/internal/cli"
)

// Set at link time (see Makefile).
var (
	version = "dev"
	commit  = "unknown"
	date    = "unknown"
)

// Exit codes, documented in README.md.
const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2
	exitFindings = 3
	// exitForced: the user forced the stop with a third Ctrl-C, 128+SIGINT
	// as a shell reports a process that SIGINT ended.
	exitForced = 130
)

func main() {
	// The first SIGINT or SIGTERM cancels ctx; the next two report what a
	// forced stop would leave behind, then force it (cli.Interrupts).
	ctx, stop := cli.NotifyInterrupts(context.Background(), os.Stderr, func() { os.Exit(exitForced) })
	program := filepath.Base(os.Args[0])
	app := cli.NewApp(program, cli.BuildInfo{Version: version, Commit: commit, Date: date}, os.Stdin, os.Stdout, os.Stderr)
	err := app.RunContext(ctx, os.Args)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
	}
	os.Exit(exitCode(err))
}

func exitCode(err error) int {
	var usage cli.UsageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &usage):
		return exitUsage
	case errors.Is(err, cli.ErrFindings):
		return exitFindings
	case errors.Is(err, cli.ErrNotReady):
		return exitError
	default:
		return exitError
	}
}
