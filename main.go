// Command relabel adds a label to the immutable selector of Kubernetes
// workloads without downtime. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

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
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
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
