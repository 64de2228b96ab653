package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"relabel.dev/relabel/engine"
)

func restoreCommand() *cli.Command {
	return &cli.Command{
		Name:  "restore",
		Usage: "recreate objects a migration removed and did not bring back, from their backups",
		UsageText: "relabel restore [--backup-dir DIR] [--gvr RESOURCE]... [-n NAMESPACE | -A] [--dry-run] [--force] [--yes] [NAME]...\n\n" +
			"   relabel restore -n shop web          # recreate shop/web if a migration left it missing\n" +
			"   relabel restore -A --dry-run         # list what would be recreated, and from which cluster's backups",
		Flags: append(connectionFlags(false),
			&cli.StringFlag{Name: "backup-dir", Value: defaultBackupDir(), Usage: "where relabel saved the manifests (the cluster's backups are in a directory of its own below it)"},
			&cli.StringSliceFlag{Name: "gvr", Usage: "only backups of this resource; repeatable"},
			&cli.BoolFlag{Name: "dry-run", Usage: "list what would be recreated, create nothing"},
			&cli.BoolFlag{Name: "force", Usage: "also restore missing objects no adopt marker or temporary copy says a migration removed (deleted on purpose since?)"},
			&cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "do not ask before creating"},
		),
		Action: restoreAction,
	}
}

// restoreAction never overwrites: objects that exist are left alone. It
// restores only this cluster's backups, and only objects relabel's own
// records show missing because of a migration, unless --force.
// engine.Restorer decides and creates; this parses the flags, prints the
// plan, asks and prints the outcome.
func restoreAction(c *cli.Context) error {
	conn, err := connectionFrom(c)
	if err != nil {
		return err
	}
	contexts := Contexts{Names: c.StringSlice("context")}
	if contexts.Several() {
		return usageErrorf("--context: restore works on one context at a time")
	}
	dir := c.String("backup-dir")
	if dir == "" {
		return usageErrorf("--backup-dir must not be empty")
	}
	targets, err := contexts.targets(conn)
	if err != nil {
		return err
	}
	ctx, stdout, stderr := c.Context, c.App.Writer, c.App.ErrWriter
	clients, kinds, err := connectAndSelect(ctx, targets[0].Connection, stderr, nil, c.StringSlice("gvr"))
	if err != nil {
		return err
	}
	backups, err := clusterBackups(ctx, clients, dir, stderr)
	if err != nil {
		return err
	}
	restorer := engine.Restorer{Dynamic: clients.Dynamic, Backups: backups}
	dryRun := c.Bool("dry-run")
	query := engine.BackupQuery{Kinds: kinds, Namespace: clients.Namespace, Names: c.Args().Slice()}
	plan, err := restorer.Plan(ctx, engine.RestoreOptions{BackupQuery: query, Force: c.Bool("force")})
	var foreign engine.ForeignBackupsError
	if errors.As(err, &foreign) {
		return UsageError{Err: err}
	}
	fmt.Fprintf(stdout, "Backups of cluster %s in %s%s\n", backups.Cluster, backups.Tree(), recordedContexts(backups))
	printRestorePlan(stdout, plan, dryRun)
	if err != nil {
		return err // after the lines of what was decided before it
	}
	if others, err := backups.Elsewhere(query); err == nil && len(others) > 0 {
		fmt.Fprintf(stderr, "note: %d matching backups in %s are of other clusters (or of none recorded) and are left alone\n", len(others), dir)
	}
	todo := 0
	for _, r := range plan {
		if r.Outcome == engine.WouldRestore {
			todo++
		}
	}
	results := plan
	if !dryRun && todo > 0 {
		question := fmt.Sprintf("Restore %d objects into cluster %s? [y/N] ", todo, backups.Cluster.ID)
		if err := ask(c.App.Reader, stderr, c.Bool("yes"), question, fmt.Sprintf("refusing to restore %d objects without confirmation: no terminal to ask on; pass --yes", todo)); err != nil {
			return err
		}
		results = restorer.Apply(ctx, plan)
	}
	restored, present, refused, failed := printRestored(stdout, stderr, results)
	fmt.Fprintf(stdout, "restored %d, already present %d, refused %d, failed %d\n", restored, present, refused, failed)
	switch {
	case failed > 0:
		return fmt.Errorf("%d objects could not be restored", failed)
	case refused > 0:
		return fmt.Errorf("%d objects refused: no record of relabel says a migration removed them; pass --force to restore them anyway", refused)
	}
	return nil
}

// recordedContexts names the contexts the backups were taken through.
func recordedContexts(b engine.Backups) string {
	rec, ok, err := b.Record()
	if err != nil || !ok || len(rec.Contexts) == 0 {
		return ""
	}
	return " (backed up through context " + strings.Join(rec.Contexts, ", ") + ")"
}

// printRestorePlan prints a line per object to restore or refused, with
// its UID, the time of its backup and the reason.
func printRestorePlan(w io.Writer, plan []engine.RestoreResult, dryRun bool) {
	for _, r := range plan {
		verb := ""
		switch r.Outcome {
		case engine.WouldRestore:
			verb = "restore"
			if dryRun {
				verb = "would restore"
			}
		case engine.RestoreRefused:
			verb = "refuse"
		default:
			continue
		}
		fmt.Fprintf(w, "  %-13s %s (uid %s, backed up %s): %s\n", verb, r.Key(), r.Object.GetUID(), r.Time.Format("2006-01-02 15:04:05Z07:00"), r.Reason)
	}
}

// printRestored prints a line per object restored, that would be, refused,
// or that failed, and counts them; a dry run counts what it would restore
// as restored.
func printRestored(stdout, stderr io.Writer, results []engine.RestoreResult) (restored, present, refused, failed int) {
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
			continue
		case engine.RestoreRefused:
			fmt.Fprintf(stderr, "refused %s: %s\n", r.Key(), r.Reason)
			refused++
			continue
		case engine.RestoreFailed:
			fmt.Fprintln(stderr, r.Err)
			failed++
			continue
		}
		if r.Copy != "" {
			fmt.Fprintf(stdout, "  its temporary copy %s still runs: rerun the migration to relabel %s and remove the copy\n", r.Copy, r.Object.GetName())
		}
	}
	return restored, present, refused, failed
}
