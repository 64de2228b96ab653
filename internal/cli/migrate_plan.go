package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"golang.org/x/term"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"relabel.dev/relabel/engine"
)

// clusterMigration is one cluster's migration, planned and checked.
type clusterMigration struct {
	target  Target
	clients *Clients
	items   []engine.Item
	act     int
	backups engine.Backups
	// identity names the run as the holder of its Leases and of its
	// records on paused GitOps objects.
	identity string
}

// planCluster plans one cluster's migration and checks, without writing,
// all that must hold before the first write: the namespace, the plan,
// permissions and the backup directory.
func planCluster(ctx context.Context, cfg MigrateConfig, t Target, stderr io.Writer) (*clusterMigration, error) {
	clients, kinds, err := connectAndSelect(ctx, t.Connection, stderr, cfg.Rules, cfg.GVRs)
	if err != nil {
		return nil, err
	}
	if clients.Namespace != "" {
		// Users limited to one namespace may not read namespaces; only a clear "not found" stops here.
		if _, err := clients.Kube.CoreV1().Namespaces().Get(ctx, clients.Namespace, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return nil, UsageError{Err: fmt.Errorf("namespace %s does not exist", clients.Namespace)}
		}
	}
	// Two clusters may hold objects of the same namespace and name: each has
	// its tree in the backup directory, named by its id.
	backups, err := clusterBackups(ctx, clients, cfg.BackupDir, stderr)
	if err != nil {
		return nil, err
	}
	cm := &clusterMigration{target: t, clients: clients, backups: backups, identity: engine.NewIdentity()}
	scope := engine.Scope{Kinds: kinds, Namespace: clients.Namespace, Selector: cfg.Selector}
	cm.items, err = engine.Plan(ctx, engine.Auditor{Dynamic: clients.Dynamic}, scope, engine.PlanOptions{
		Label: cfg.Label, IncludeOwned: cfg.IncludeOwned, NamespaceGiven: t.Namespace != "",
		Strategy: cfg.Strategy, Backups: &cm.backups, Rules: cfg.Rules, MaxSurgePods: cfg.MaxSurgePods,
		ArgoCDNamespace: cfg.ArgoCDNamespace,
	})
	if errors.Is(err, engine.ErrStrategyRefused) || errors.Is(err, engine.ErrBadRule) {
		return nil, UsageError{Err: err}
	}
	if err != nil {
		return nil, err
	}
	if err == nil {
		err = engine.ResolveGitOps(ctx, clients.Dynamic, cm.items, cfg.PauseGitOps)
	}
	if err != nil {
		return nil, err
	}
	printPlan(stderr, cm.items, cm.backups.Tree(), cfg.PauseGitOps)
	// A selector that already has the key with another value is a mistake to
	// look into, not something to step around.
	var conflicts []string
	for _, it := range cm.items {
		if it.Conflict {
			conflicts = append(conflicts, it.Kind.Kind+" "+it.Ref()+": "+it.Reason)
		}
	}
	if len(conflicts) > 0 {
		return nil, usageErrorf("%d objects cannot take the label, nothing was changed (exclude them with -l): %s", len(conflicts), strings.Join(conflicts, "; "))
	}
	if cm.act, _ = engine.Count(cm.items); cm.act == 0 || cfg.DryRun != engine.DryRunNone {
		return cm, nil
	}
	perms := engine.RequiredPermissions(cm.items)
	if cfg.PauseGitOps {
		perms = append(perms, engine.GitOpsPermissions(cm.items)...)
	}
	missing, err := engine.Preflight(ctx, clients.Kube.AuthorizationV1().SelfSubjectAccessReviews(), perms)
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		return nil, engine.MissingPermissionsError{Missing: missing}
	}
	if err := cm.backups.Check(); err != nil {
		return nil, err
	}
	return cm, nil
}

// lock takes the Lease of every namespace the plan writes to, on the
// client of its own that keeps renewals clear of the migration's rate
// limit. The run goes on in locked: ctx, but cancelled, as by a Ctrl-C, with
// the *engine.LostError as its cause when the run loses a Lease.
func (cm *clusterMigration) lock(ctx context.Context) (locked context.Context, release func(), err error) {
	held, err := engine.Locks{Client: cm.clients.Lock.CoordinationV1(), Identity: cm.identity}.Acquire(ctx, planNamespaces(cm.items))
	if err != nil {
		return ctx, nil, err
	}
	return held.Context(), held.Release, nil
}

// lockLost is err, unless the run in ctx lost its lock: then the loss.
func lockLost(ctx context.Context, err error) error {
	var lost *engine.LostError
	if errors.As(context.Cause(ctx), &lost) {
		return fmt.Errorf("%w: stopped before any new step; objects in flight were brought to a safe point; rerun to finish", lost)
	}
	return err
}

func printPlan(w io.Writer, items []engine.Item, backupDir string, pauseGitOps bool) {
	act, skip := engine.Count(items)
	fmt.Fprintf(w, "Plan: %d objects to migrate (%d skipped), backups in %s\n", act, skip, backupDir)
	for _, it := range items {
		if it.Action == engine.ActionSkip {
			// Objects left alone for a reason other than being done are worth a line.
			if it.Reason != engine.ReasonLabelled && it.Reason != "" {
				fmt.Fprintf(w, "  %-8s %s %s: %s\n", it.Action, it.Kind.Kind, it.Ref(), it.Reason)
			}
			continue
		}
		line := fmt.Sprintf("  %-8s %s %s +%s (%s)", it.Action, it.Kind.Kind, it.Ref(), it.Label, it.Strategy)
		if it.Reason != "" {
			line += ": " + it.Reason
		}
		switch {
		case len(it.GitOps) > 0 && pauseGitOps:
			names := make([]string, len(it.GitOps))
			for i, o := range it.GitOps {
				names[i] = o.String()
			}
			line += "; pauses " + strings.Join(names, ", ") + " while it migrates"
		case len(it.GitOps) > 0:
			for _, o := range it.GitOps {
				line += "; warning: " + engine.GitOpsConsequence(o)
			}
		case it.ManagedBy != "":
			line += fmt.Sprintf("; warning: managed by %s, which may revert the change", it.ManagedBy)
		}
		fmt.Fprintln(w, line)
	}
}

// planNamespaces lists the namespaces the plan writes to.
func planNamespaces(items []engine.Item) []string {
	seen := map[string]bool{}
	var out []string
	for _, it := range items {
		if it.Action != engine.ActionSkip && !seen[it.Namespace] {
			seen[it.Namespace] = true
			out = append(out, it.Namespace)
		}
	}
	return out
}

// confirm asks on a terminal before the first write; without one, --yes is required.
func confirm(stdin io.Reader, w io.Writer, yes bool, count int) error {
	if yes {
		return nil
	}
	f, ok := stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return usageErrorf("refusing to change %d objects without confirmation: no terminal to ask on; pass --yes", count)
	}
	fmt.Fprintf(w, "Migrate %d objects? [y/N] ", count)
	answer, _ := bufio.NewReader(stdin).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
		return usageErrorf("not confirmed; nothing was changed")
	}
	return nil
}

// leaseNamespaces names the namespaces whose Lease lock takes, as Locks
// does: cluster-scoped objects take the one in default.
func leaseNamespaces(items []engine.Item) []string {
	var out []string
	for _, ns := range planNamespaces(items) {
		if ns == "" {
			ns = metav1.NamespaceDefault
		}
		if !slices.Contains(out, ns) {
			out = append(out, ns)
		}
	}
	slices.Sort(out)
	return out
}
