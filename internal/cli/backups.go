package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"relabel.dev/relabel/engine"
)

// clusterBackups is the cluster's part of the backup directory: its tree is
// named by the cluster's id, read once per run and context. A fallback to
// the API server's host is said on stderr.
func clusterBackups(ctx context.Context, clients *Clients, dir string, stderr io.Writer) (engine.Backups, error) {
	id, err := engine.IdentifyCluster(ctx, clients.Kube.CoreV1(), clients.Host, clients.Context)
	if err != nil {
		return engine.Backups{}, err
	}
	if id.Fallback != "" {
		fmt.Fprintf(stderr, "warning: %s; the cluster's backups are keyed by its API server's host instead (%s): grant get on namespaces/kube-system to key them by the cluster's UID\n", id.Fallback, id.ID)
	}
	return engine.Backups{Dir: dir, Cluster: id}, nil
}

// ask asks on a terminal; without one, yes is required.
func ask(stdin io.Reader, w io.Writer, yes bool, question, refusal string) error {
	if yes {
		return nil
	}
	f, ok := stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return usageErrorf("%s", refusal)
	}
	fmt.Fprint(w, question)
	answer, _ := bufio.NewReader(stdin).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
		return usageErrorf("not confirmed; nothing was changed")
	}
	return nil
}

func backupsCommand() *cli.Command {
	dirFlag := func() cli.Flag {
		return &cli.StringFlag{Name: "backup-dir", Value: defaultBackupDir(), Usage: "where relabel saved the manifests"}
	}
	return &cli.Command{
		Name:  "backups",
		Usage: "list and prune the manifests relabel saves before it writes",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "list the backups of every cluster, and whether their objects still exist in the context's cluster",
				UsageText: "relabel backups list [--backup-dir DIR] [-n NAMESPACE] [--offline] [-o table|json]\n\n" +
					"   relabel backups list                  # every backup; EXISTS for the current context's cluster\n" +
					"   relabel backups list --offline -o json",
				Flags: append(connectionFlags(false), dirFlag(),
					&cli.BoolFlag{Name: "offline", Usage: "read the files only, not the cluster"},
					&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: outputTable, Usage: "table or json"},
				),
				Action: backupsListAction,
			},
			{
				Name:  "prune",
				Usage: "remove old backups of the context's cluster that no migration needs any more",
				UsageText: "relabel backups prune --older-than DURATION [--backup-dir DIR] [-n NAMESPACE] [--dry-run] [--yes]\n\n" +
					"   relabel backups prune --older-than 720h --dry-run   # what 30 days of retention would remove",
				Flags: append(connectionFlags(false), dirFlag(),
					&cli.DurationFlag{Name: "older-than", Usage: "only backups written longer ago than this (required), e.g. 720h"},
					&cli.BoolFlag{Name: "dry-run", Usage: "list what would be removed, remove nothing"},
					&cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "do not ask before removing"},
				),
				Action: backupsPruneAction,
			},
		},
	}
}

// BackupList is the document of relabel backups list -o json.
type BackupList struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Dir        string `json:"dir"`
	// Cluster is the current context's, when it could be reached.
	Cluster  *engine.ClusterID      `json:"cluster,omitempty"`
	Clusters []engine.ClusterRecord `json:"clusters"`
	Items    []BackupListItem       `json:"items"`
}

// BackupListItem is one backup file.
type BackupListItem struct {
	// Cluster is the id of its cluster; "" for a file written before
	// backups were keyed by cluster.
	Cluster    string    `json:"cluster"`
	Namespace  string    `json:"namespace,omitempty"`
	APIVersion string    `json:"apiVersion,omitempty"`
	Kind       string    `json:"kind,omitempty"`
	Resource   string    `json:"resource"`
	Name       string    `json:"name"`
	UID        string    `json:"uid,omitempty"`
	Time       time.Time `json:"time"`
	Path       string    `json:"path"`
	// AdoptMarker: an interrupted adopt migration recorded the object's
	// orphan delete.
	AdoptMarker bool `json:"adoptMarker,omitempty"`
	// Exists is yes (with the backup's UID), replaced (another UID) or
	// missing, for the current cluster's backups; "" when not checked.
	Exists string `json:"exists,omitempty"`
	Error  string `json:"error,omitempty"`
}

func backupsListAction(c *cli.Context) error {
	if err := argsNone(c); err != nil {
		return err
	}
	format, err := parseOutput(c.String("output"), outputTable, outputJSON)
	if err != nil {
		return err
	}
	dir := c.String("backup-dir")
	if dir == "" {
		return usageErrorf("--backup-dir must not be empty")
	}
	ctx, stdout, stderr := c.Context, c.App.Writer, c.App.ErrWriter
	doc := BackupList{APIVersion: SchemaVersion, Kind: "BackupList", Dir: dir, Clusters: []engine.ClusterRecord{}, Items: []BackupListItem{}}
	var clients *Clients
	if !c.Bool("offline") {
		// Without a cluster the files are still worth a list.
		var id engine.ClusterID
		if clients, id, err = reachCluster(c, stderr); err != nil {
			fmt.Fprintf(stderr, "warning: %v; listing the files only (--offline says so at once)\n", err)
			clients = nil
		} else {
			doc.Cluster = &id
		}
	}
	entries, records, err := engine.Backups{Dir: dir}.Entries()
	if err != nil {
		return err
	}
	doc.Clusters = append(doc.Clusters, records...)
	ns := c.String("namespace")
	for _, e := range entries {
		if ns != "" && e.Namespace != ns {
			continue
		}
		item := BackupListItem{Cluster: e.Cluster, Namespace: e.Namespace, Resource: e.GVR.Resource, Name: e.Name, UID: e.UID,
			Time: e.Time, Path: e.Path, AdoptMarker: e.Marker}
		if e.Object != nil {
			item.APIVersion, item.Kind = e.Object.GetAPIVersion(), e.Object.GetKind()
		}
		if e.Err != nil {
			item.Error = e.Err.Error()
		}
		if clients != nil && e.Cluster == doc.Cluster.ID && e.Err == nil {
			if item.Exists, err = engine.Existence(ctx, clients.Dynamic, e); err != nil {
				item.Exists, item.Error = "", "reading the object: "+err.Error()
			}
		}
		doc.Items = append(doc.Items, item)
	}
	if format == outputJSON {
		return printDocument(stdout, format, doc)
	}
	return printBackupList(stdout, doc)
}

// reachCluster connects to the context's cluster and names it.
func reachCluster(c *cli.Context, stderr io.Writer) (*Clients, engine.ClusterID, error) {
	conn, err := connectionFrom(c)
	if err != nil {
		return nil, engine.ClusterID{}, err
	}
	if conn.RequestTimeout == 0 {
		conn.RequestTimeout = 10 * time.Second // an unreachable cluster must not hold up a local listing
	}
	contexts := Contexts{Names: c.StringSlice("context")}
	if contexts.Several() {
		return nil, engine.ClusterID{}, usageErrorf("--context: one context at a time")
	}
	targets, err := contexts.targets(conn)
	if err != nil {
		return nil, engine.ClusterID{}, err
	}
	clients, err := targets[0].Connection.Connect()
	if err != nil {
		return nil, engine.ClusterID{}, err
	}
	b, err := clusterBackups(c.Context, clients, c.String("backup-dir"), stderr)
	if err != nil {
		return nil, engine.ClusterID{}, fmt.Errorf("cluster %s: %w", clients.Host, err)
	}
	return clients, b.Cluster, nil
}

func printBackupList(w io.Writer, doc BackupList) error {
	if len(doc.Items) == 0 {
		fmt.Fprintf(w, "no backups in %s\n", doc.Dir)
		return nil
	}
	t := newTable(w, "CLUSTER", "NAMESPACE", "KIND", "NAME", "UID", "BACKED UP", "EXISTS", "MARKER")
	for _, it := range doc.Items {
		cluster, kind, exists, marker := it.Cluster, it.Kind, it.Exists, "-"
		if cluster == "" {
			cluster = "unknown"
		}
		if kind == "" {
			kind = it.Resource
		}
		switch {
		case it.Error != "" && exists == "":
			exists = "error"
		case exists == "":
			exists = "-"
		}
		if it.AdoptMarker {
			marker = "adopt"
		}
		t.row(cluster, it.Namespace, kind, it.Name, it.UID, it.Time.Format(time.RFC3339), exists, marker)
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, r := range doc.Clusters {
		this := ""
		if doc.Cluster != nil && doc.Cluster.ID == r.ID {
			this = " — this context's cluster"
		}
		fmt.Fprintf(w, "cluster %s: %s, context %s, %s%s\n", r.ID, r.Source, strings.Join(r.Contexts, ", "), r.Server, this)
	}
	if doc.Cluster == nil {
		fmt.Fprintln(w, "EXISTS not checked: no cluster was reached")
	}
	for _, it := range doc.Items {
		if it.Cluster == "" {
			fmt.Fprintf(w, "cluster unknown: written before backups were keyed by cluster (%s…); restore and prune leave them alone\n", it.Path)
			break
		}
	}
	for _, it := range doc.Items {
		if it.Error != "" {
			fmt.Fprintf(w, "%s: %s\n", it.Path, it.Error)
		}
	}
	return nil
}

func backupsPruneAction(c *cli.Context) error {
	if err := argsNone(c); err != nil {
		return err
	}
	olderThan := c.Duration("older-than")
	if olderThan <= 0 {
		return usageErrorf("--older-than DURATION is required and must be positive, e.g. --older-than 720h")
	}
	dir := c.String("backup-dir")
	if dir == "" {
		return usageErrorf("--backup-dir must not be empty")
	}
	conn, err := connectionFrom(c)
	if err != nil {
		return err
	}
	contexts := Contexts{Names: c.StringSlice("context")}
	if contexts.Several() {
		return usageErrorf("--context: prune works on one context at a time")
	}
	targets, err := contexts.targets(conn)
	if err != nil {
		return err
	}
	ctx, stdout, stderr := c.Context, c.App.Writer, c.App.ErrWriter
	// Whether a migration still needs a backup is only known from its cluster.
	clients, kinds, err := connectAndSelect(ctx, targets[0].Connection, stderr, nil, nil)
	if err != nil {
		return err
	}
	backups, err := clusterBackups(ctx, clients, dir, stderr)
	if err != nil {
		return err
	}
	pruner := engine.Pruner{Dynamic: clients.Dynamic, Backups: backups, Kinds: kinds, Namespace: c.String("namespace")}
	plan, err := pruner.Plan(ctx, olderThan)
	if err != nil {
		return err
	}
	remove := 0
	fmt.Fprintf(stdout, "Backups of cluster %s in %s%s\n", backups.Cluster, backups.Tree(), recordedContexts(backups))
	for _, r := range plan {
		verb := "keep"
		if r.Prune {
			verb = "remove"
			remove++
		}
		fmt.Fprintf(stdout, "  %-6s %s (uid %s, backed up %s): %s\n", verb, r.Key(), r.UID, r.Time.Format(time.RFC3339), r.Reason)
	}
	if entries, _, err := backups.Entries(); err == nil {
		others := 0
		for _, e := range entries {
			if e.Cluster != backups.Cluster.ID {
				others++
			}
		}
		if others > 0 {
			fmt.Fprintf(stderr, "note: %d backups in %s are of other clusters (or of none recorded) and are left alone; prune them through their own context\n", others, dir)
		}
	}
	switch {
	case c.Bool("dry-run"):
		fmt.Fprintf(stdout, "would remove %d backups, keep %d\n", remove, len(plan)-remove)
		return nil
	case remove == 0:
		fmt.Fprintf(stdout, "removed 0 backups, kept %d\n", len(plan))
		return nil
	}
	if err := ask(c.App.Reader, stderr, c.Bool("yes"), fmt.Sprintf("Remove %d backups of cluster %s? [y/N] ", remove, backups.Cluster.ID),
		fmt.Sprintf("refusing to remove %d backups without confirmation: no terminal to ask on; pass --yes", remove)); err != nil {
		return err
	}
	removed, failed := 0, 0
	for _, r := range pruner.Apply(plan) {
		switch {
		case r.Removed:
			removed++
		case r.Err != nil:
			fmt.Fprintln(stderr, "error:", r.Err)
			failed++
		}
	}
	fmt.Fprintf(stdout, "removed %d backups, kept %d\n", removed, len(plan)-removed)
	if failed > 0 {
		return fmt.Errorf("%d backups could not be removed", failed)
	}
	return nil
}
