// Package cli is relabel's command layer: it turns flags into typed
// configuration once, builds the clients, and calls the library packages.
// It never exits; main chooses exit codes from the errors it returns.
package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"
)

// UsageError marks bad input: a flag, argument or value that cannot be used.
// No request that writes has been sent when it is returned.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

func usageErrorf(format string, args ...any) error {
	return UsageError{Err: fmt.Errorf(format, args...)}
}

// ErrFindings is returned by audit --exit-code when objects lack the label.
var ErrFindings = errors.New("some objects lack the label")

// ErrFailed is returned when a migration finished but some objects failed.
var ErrFailed = errors.New("some objects failed to migrate")

// Build information, set by main from link-time variables.
type BuildInfo struct {
	Version, Commit, Date string
}

// NewApp wires the commands.
func NewApp(build BuildInfo, stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	onUsage := func(_ *cli.Context, err error, _ bool) error { return UsageError{Err: err} }
	app := &cli.App{
		Name:      "relabel",
		Usage:     "add a label to the immutable selector of Kubernetes workloads, without downtime",
		UsageText: "relabel --label KEY=VALUE [--gvr RESOURCE]... [-n NAMESPACE | -A] [-l SELECTOR] [flags]\nrelabel audit --label KEY[=VALUE] [flags]\nrelabel kinds [flags]",
		Description: "relabel adds KEY=VALUE to spec.selector, the pod template labels and the labels of\n" +
			"Deployments, StatefulSets, DaemonSets and workload custom resources, whose selector the\n" +
			"API server does not let you change in place.",
		Version:                build.Version,
		HideVersion:            true,
		Reader:                 stdin,
		Writer:                 stdout,
		ErrWriter:              stderr,
		EnableBashCompletion:   true,
		HideHelpCommand:        true,
		UseShortOptionHandling: false,
		Suggest:                true,
		OnUsageError:           onUsage,
		// Errors travel back to main, which alone chooses the exit code.
		ExitErrHandler: func(*cli.Context, error) {},
		Flags:          migrateFlags(),
		Action:         migrateAction,
		Commands: []*cli.Command{
			auditCommand(),
			kindsCommand(),
			rbacCommand(),
			restoreCommand(),
			rulesCommand(),
			versionCommand(build),
		},
	}
	for _, c := range app.Commands {
		c.OnUsageError = onUsage
		for _, sub := range c.Subcommands {
			sub.OnUsageError = onUsage
		}
	}
	return app
}

// argsNone refuses stray positional arguments, a common typo for a flag value.
func argsNone(c *cli.Context) error {
	if c.Args().Len() > 0 {
		return usageErrorf("unexpected argument %q", c.Args().First())
	}
	return nil
}
