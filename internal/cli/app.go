// Package cli is relabel's command layer: it turns flags into typed
// configuration once, builds the clients, and calls the library packages.
// It never exits; main chooses exit codes from the errors it returns.
package cli

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

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

// PluginName is the executable name that makes relabel a kubectl plugin.
const PluginName = "kubectl-relabel"

// NewApp wires the commands. program is the name relabel was run as (the
// base name of argv[0]): as kubectl-relabel, help and usage read
// "kubectl relabel ...", the way the user types it.
func NewApp(program string, build BuildInfo, stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	onUsage := func(_ *cli.Context, err error, _ bool) error { return UsageError{Err: err} }
	name, helpName := "relabel", "relabel"
	if strings.TrimSuffix(program, ".exe") == PluginName {
		name, helpName = PluginName, "kubectl relabel"
	}
	app := &cli.App{
		Name:      name,
		HelpName:  helpName,
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
			backupsCommand(),
			kindsCommand(),
			manifestsCommand(),
			readyCommand(),
			rbacCommand(),
			restoreCommand(),
			rulesCommand(),
			versionCommand(build),
			completionCommand(name),
		},
	}
	app.UsageText = usageFor(app.UsageText, helpName)
	app.BashComplete = completeFlagValues(app.Flags, cli.DefaultAppComplete)
	for _, c := range app.Commands {
		c.BashComplete = completeFlagValues(c.Flags, cli.DefaultCompleteWithFlags(c))
		c.HideHelpCommand = true
		c.OnUsageError = onUsage
		c.UsageText = usageFor(c.UsageText, helpName)
		for _, sub := range c.Subcommands {
			sub.BashComplete = completeFlagValues(sub.Flags, cli.DefaultCompleteWithFlags(sub))
			sub.HideHelpCommand = true
			sub.OnUsageError = onUsage
			sub.UsageText = usageFor(sub.UsageText, helpName)
		}
	}
	return app
}

var usageLineStart = regexp.MustCompile(`(?m)^(\s*)relabel\b`)

// usageFor makes the usage examples, written for "relabel", name the program
// as it was invoked.
func usageFor(text, helpName string) string {
	return usageLineStart.ReplaceAllString(text, "${1}"+helpName)
}

// argsNone refuses stray positional arguments, a common typo for a flag value.
func argsNone(c *cli.Context) error {
	if c.Args().Len() > 0 {
		return usageErrorf("unexpected argument %q", c.Args().First())
	}
	return nil
}
