package cli

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"relabel.dev/relabel/engine"
)

func restoreCommand() *cli.Command {
	return &cli.Command{
		Name:  "restore",
		Usage: "recreate objects that are missing from the cluster from their backups",
		UsageText: "relabel restore [--backup-dir DIR] [--gvr RESOURCE]... [-n NAMESPACE | -A] [NAME]...\n\n" +
			"   relabel restore -n shop web          # recreate shop/web if it is gone\n" +
			"   relabel restore -A --dry-run         # list what would be recreated",
		Flags: append(connectionFlags(false),
			&cli.StringFlag{Name: "backup-dir", Value: defaultBackupDir(), Usage: "where relabel saved the manifests"},
			&cli.StringSliceFlag{Name: "gvr", Usage: "only backups of this resource; repeatable"},
			&cli.BoolFlag{Name: "dry-run", Usage: "list what would be recreated, create nothing"},
		),
		Action: restoreAction,
	}
}

// restoreAction never overwrites: objects that exist are left alone, so it
// is safe to run at any time. engine.Restorer decides and creates; this
// parses the flags and prints.
func restoreAction(c *cli.Context) error {
	conn, err := connectionFrom(c)
	if err != nil {
		return err
	}
	contexts := Contexts{Names: c.StringSlice("context")}
	if contexts.Several() {
		return usageErrorf("--context: restore works on one context at a time")
	}
	targets, err := contexts.targets(conn)
	if err != nil {
		return err
	}
	clients, kinds, err := connectAndSelect(c.Context, targets[0].Connection, c.App.ErrWriter, nil, c.StringSlice("gvr"))
	if err != nil {
		return err
	}
	restorer := engine.Restorer{Dynamic: clients.Dynamic, Backups: engine.Backups{Dir: c.String("backup-dir")}}
	results, err := restorer.Restore(c.Context, engine.RestoreOptions{
		BackupQuery: engine.BackupQuery{Kinds: kinds, Namespace: clients.Namespace, Names: c.Args().Slice()},
		DryRun:      c.Bool("dry-run"),
	})
	restored, present, failed := printRestored(c.App.Writer, c.App.ErrWriter, results)
	if err != nil {
		return err // after the lines of what was done before it
	}
	fmt.Fprintf(c.App.Writer, "restored %d, already present %d, failed %d\n", restored, present, failed)
	if failed > 0 {
		return fmt.Errorf("%w: %d could not be restored", ErrFailed, failed)
	}
	return nil
}

// printRestored prints a line per object restored, that would be, or that
// failed, and counts them; a dry run counts what it would restore as restored.
func printRestored(stdout, stderr io.Writer, results []engine.RestoreResult) (restored, present, failed int) {
	for _, r := range results {
		switch r.Outcome {
		case engine.Restored:
			fmt.Fprintf(stdout, "restored %s\n", r.Key())
			restored++
		case engine.WouldRestore:
			fmt.Fprintf(stdout, "would restore %s\n", r.Key())
			restored++
		case engine.AlreadyPresent:
			present++
		case engine.RestoreFailed:
			fmt.Fprintln(stderr, r.Err)
			failed++
		}
	}
	return restored, present, failed
}
