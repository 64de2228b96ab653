package cli

import (
	"fmt"
	"slices"

	"github.com/urfave/cli/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"relabel.dev/relabel/engine"
	"relabel.dev/relabel/rules"
	workload "relabel.dev/relabel/unstructured"
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
// is safe to run at any time.
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
	names := c.Args().Slice()
	clients, kinds, err := connectAndSelect(c.Context, targets[0].Connection, c.App.ErrWriter, nil, c.StringSlice("gvr"))
	if err != nil {
		return err
	}
	backups := engine.Backups{Dir: c.String("backup-dir")}
	var restored, present, failed int
	for _, kind := range kinds {
		objs, err := backups.List(&kind, clients.Namespace)
		if err != nil {
			return fmt.Errorf("reading backups in %s: %w", backups.Dir, err)
		}
		for _, obj := range objs {
			if len(names) > 0 && !slices.Contains(names, obj.GetName()) {
				continue
			}
			if obj.GroupVersionKind().GroupKind() != (schema.GroupKind{Group: kind.Group, Kind: kind.Kind}) {
				continue
			}
			ref := rules.FormatGVR(kind.GVR()) + " " + obj.GetNamespace() + "/" + obj.GetName()
			client := clients.Dynamic.Resource(kind.GVR()).Namespace(obj.GetNamespace())
			if _, err := client.Get(c.Context, obj.GetName(), metav1.GetOptions{}); err == nil {
				present++
				continue
			} else if !apierrors.IsNotFound(err) {
				return fmt.Errorf("reading %s: %w", ref, err)
			}
			if c.Bool("dry-run") {
				fmt.Fprintf(c.App.Writer, "would restore %s\n", ref)
				restored++
				continue
			}
			if _, err := client.Create(c.Context, workload.ForCreate(obj), metav1.CreateOptions{}); err != nil {
				fmt.Fprintf(c.App.ErrWriter, "restoring %s: %v\n", ref, err)
				failed++
				continue
			}
			fmt.Fprintf(c.App.Writer, "restored %s\n", ref)
			restored++
		}
	}
	fmt.Fprintf(c.App.Writer, "restored %d, already present %d, failed %d\n", restored, present, failed)
	if failed > 0 {
		return fmt.Errorf("%w: %d could not be restored", ErrFailed, failed)
	}
	return nil
}
