package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"k8s.io/apimachinery/pkg/util/validation"

	"relabel.dev/relabel/engine"
	"relabel.dev/relabel/rules"
	workload "relabel.dev/relabel/unstructured"
)

// --concurrency auto starts with autoConcurrency objects at once: the
// cluster's controllers, not relabel, bound a migration (two rollouts per
// object), and they work on many objects at once. Each copy that becomes
// ready shows the cluster had room for its pods and kept up, and lets one
// more object start, up to maxAutoConcurrency; a copy rolled back (its pods
// found no room in time) or a 429 halves the window. --concurrency N fixes it.
const (
	autoConcurrency    = 50
	maxAutoConcurrency = 400
)

func migrateFlags() []cli.Flag {
	return append(connectionFlags(true),
		&cli.StringFlag{Name: "label", Usage: "the label to add, KEY=VALUE"},
		&cli.StringSliceFlag{Name: "gvr", Usage: "resource to migrate (apps/v1/deployments, deploy, sts, rollouts.argoproj.io); repeatable; default: every workload kind"},
		&cli.StringFlag{Name: "selector", Aliases: []string{"l"}, Usage: "only objects matching this label selector (kubectl's -l)"},
		&cli.StringFlag{Name: "strategy", Value: string(rules.StrategyAuto), Usage: "auto (per object: adopt for StatefulSets and DaemonSets, temp-copy otherwise), temp-copy or adopt"},
		&cli.Int64Flag{Name: "max-surge-pods", Usage: "with --strategy auto, adopt instead of copying objects whose copy would add more pods than this (0: no bound)"},
		&cli.DurationFlag{Name: "timeout", Value: 10 * time.Minute, Usage: "how long to wait for one object's copy or new object to become ready; on expiry the copy is rolled back"},
		&cli.StringFlag{Name: "concurrency", Value: "auto", Usage: fmt.Sprintf("objects migrated at once: N, or auto (%d at first, two more for each copy that becomes ready, up to %d; halved when a copy is rolled back)", autoConcurrency, maxAutoConcurrency)},
		&cli.StringFlag{Name: "backup-dir", Value: defaultBackupDir(), Usage: "where manifests are saved before any write"},
		&cli.StringFlag{Name: "temp-suffix", Value: "-temp", Usage: "suffix of the temporary copy's name"},
		&cli.StringFlag{Name: "dry-run", Usage: "client: print the plan only; server: also let the API server validate the copies and new objects"},
		&cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "do not ask before the first write"},
		&cli.BoolFlag{Name: "include-owned", Usage: "also migrate objects controlled by another object (its controller may fight the change)"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: outputTable, Usage: "table, wide, json or yaml (the final report)"},
		&cli.BoolFlag{Name: "multi-cluster", Usage: "with --yes, confirm a migration over several contexts (--all-contexts or --context given more than once); clusters go one after another"},
		&cli.BoolFlag{Name: "keep-going", Usage: "with several contexts, go on with the next cluster after one fails"},
		&cli.BoolFlag{Name: "pause-gitops", Usage: "suspend the Flux Kustomization or HelmRelease, or the Argo CD Application's automated sync, of each object while it migrates; restore exactly what was changed afterwards"},
		&cli.StringFlag{Name: "argocd-namespace", Value: "argocd", Usage: "namespace of Argo CD's Applications, unless an object's tracking id names another"},
		rulesFlag(),
	)
}

func defaultBackupDir() string {
	state := os.Getenv("XDG_STATE_HOME")
	if state == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "relabel-backups"
		}
		state = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(state, "relabel", "backups")
}

// MigrateConfig is the migration's input, checked before any request.
type MigrateConfig struct {
	Targets []Target
	// Several: more than one context was asked for; clusters are migrated
	// one after another, each in its own section.
	Several      bool
	MultiCluster bool
	KeepGoing    bool
	Label        workload.Label
	GVRs         []string
	Selector     string
	Strategy     rules.Strategy
	MaxSurgePods int64
	Timeout      time.Duration
	Concurrency  int
	// MaxConcurrency is what the window may open to (auto); Concurrency when fixed.
	MaxConcurrency int
	BackupDir      string
	TempSuffix     string
	DryRun         engine.DryRun
	Yes            bool
	IncludeOwned   bool
	Output         string
	Rules          *rules.File
	// PauseGitOps pauses each object's GitOps owners while it migrates.
	PauseGitOps     bool
	ArgoCDNamespace string
}

func migrateConfigFrom(c *cli.Context) (MigrateConfig, error) {
	if err := argsNone(c); err != nil {
		return MigrateConfig{}, err
	}
	conn, err := connectionFrom(c)
	if err != nil {
		return MigrateConfig{}, err
	}
	contexts, err := contextsFrom(c)
	if err != nil {
		return MigrateConfig{}, err
	}
	file, err := loadRules(c)
	if err != nil {
		return MigrateConfig{}, err
	}
	var label workload.Label
	switch {
	case c.String("label") != "":
		if label, err = workload.ParseLabel(c.String("label"), false); err != nil {
			return MigrateConfig{}, UsageError{Err: fmt.Errorf("--label: %w", err)}
		}
	case file == nil || len(file.Rules) == 0:
		return MigrateConfig{}, usageErrorf("--label KEY=VALUE is required (see relabel --help), or --rules with rules")
	}
	selector, err := parseSelector(c.String("selector"))
	if err != nil {
		return MigrateConfig{}, err
	}
	cfg := MigrateConfig{
		Several: contexts.Several(), MultiCluster: c.Bool("multi-cluster"), KeepGoing: c.Bool("keep-going"), Label: label, GVRs: c.StringSlice("gvr"), Selector: selector,
		Timeout: c.Duration("timeout"), BackupDir: c.String("backup-dir"),
		TempSuffix: c.String("temp-suffix"), Yes: c.Bool("yes"), IncludeOwned: c.Bool("include-owned"), Rules: file,
		PauseGitOps: c.Bool("pause-gitops"), ArgoCDNamespace: c.String("argocd-namespace"),
	}
	if errs := validation.IsDNS1123Label(cfg.ArgoCDNamespace); len(errs) > 0 {
		return cfg, usageErrorf("--argocd-namespace %q: %s", cfg.ArgoCDNamespace, strings.Join(errs, "; "))
	}
	if cfg.MaxSurgePods = c.Int64("max-surge-pods"); cfg.MaxSurgePods < 0 {
		return cfg, usageErrorf("--max-surge-pods must not be negative")
	}
	switch cfg.Strategy = rules.Strategy(c.String("strategy")); cfg.Strategy {
	case rules.StrategyAuto, rules.TempCopy, rules.Adopt:
	default:
		return cfg, usageErrorf("--strategy %q: want auto, temp-copy or adopt", cfg.Strategy)
	}
	switch d := engine.DryRun(c.String("dry-run")); d {
	case engine.DryRunNone, engine.DryRunClient, engine.DryRunServer:
		cfg.DryRun = d
	default:
		return cfg, usageErrorf("--dry-run %q: want client or server", d)
	}
	if cfg.Timeout <= 0 {
		return cfg, usageErrorf("--timeout must be positive")
	}
	if cfg.Concurrency, cfg.MaxConcurrency, err = parseConcurrency(c.String("concurrency")); err != nil {
		return cfg, err
	}
	if cfg.BackupDir == "" {
		return cfg, usageErrorf("--backup-dir must not be empty")
	}
	if !validSuffix(cfg.TempSuffix) {
		return cfg, usageErrorf("--temp-suffix %q: want a dash and lower-case letters or digits, like -temp", cfg.TempSuffix)
	}
	if cfg.Output, err = parseOutput(c.String("output"), outputTable, outputWide, outputJSON, outputYAML); err != nil {
		return cfg, err
	}
	// Last: it reads the kubeconfig, whose errors are not bad input.
	if cfg.Targets, err = contexts.targets(conn); err != nil {
		return cfg, err
	}
	if cfg.Several && cfg.DryRun == engine.DryRunNone && !(cfg.Yes && cfg.MultiCluster) {
		names := make([]string, len(cfg.Targets))
		for i, t := range cfg.Targets {
			names[i] = t.Context
		}
		return cfg, usageErrorf("refusing to migrate %d contexts (%s) without --yes --multi-cluster; nothing was changed", len(names), strings.Join(names, ", "))
	}
	return cfg, nil
}

func validSuffix(s string) bool {
	if len(s) < 2 || len(s) > 20 || s[0] != '-' {
		return false
	}
	for _, r := range s[1:] {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}

func migrateAction(c *cli.Context) error {
	cfg, err := migrateConfigFrom(c)
	if err != nil {
		return err
	}
	if cfg.Several {
		return migrateClusters(c, cfg)
	}
	ctx, stdout, stderr := c.Context, c.App.Writer, c.App.ErrWriter
	cm, err := planCluster(ctx, cfg, cfg.Targets[0], stderr)
	if err != nil {
		return err
	}
	if cm.act == 0 {
		return printMigrationReport(stdout, cfg, newMigrationReport(cfg, nil))
	}
	if cfg.DryRun == engine.DryRunNone {
		if err := confirm(c.App.Reader, stderr, cfg.Yes, cm.act); err != nil {
			return err
		}
		// Losing the lock cancels ctx, as a Ctrl-C does.
		var release func()
		if ctx, release, err = cm.lock(ctx); err != nil {
			return err
		}
		defer release()
	}
	results, err := cm.run(ctx, cfg, stderr)
	if err != nil {
		return lockLost(ctx, err)
	}
	if err := printMigrationReport(stdout, cfg, newMigrationReport(cfg, results)); err != nil {
		return err
	}
	return lockLost(ctx, migrationOutcome(results, cm.act))
}

// run migrates the cluster's planned objects.
func (cm *clusterMigration) run(ctx context.Context, cfg MigrateConfig, stderr io.Writer) ([]engine.Result, error) {
	events := &engine.Events{Client: cm.clients.Kube.CoreV1()}
	defer events.Wait()
	progress := newProgressPrinter(stderr, cm.act, crashAfter())
	defer progress.close()
	// What Ctrl-C reports comes from the plan and the steps objects report.
	flight := newInFlight(cfg.TempSuffix, nil, nil)
	if cfg.DryRun == engine.DryRunNone {
		flight = newInFlight(cfg.TempSuffix, leaseNamespaces(cm.items), cm.items)
	}
	defer interruptsFrom(ctx).follow(flight, progress.notice)()
	var pauser *engine.Pauser
	if cfg.PauseGitOps && cfg.DryRun == engine.DryRunNone {
		pauser = &engine.Pauser{Dynamic: cm.clients.Dynamic, Leases: cm.clients.Kube.CoordinationV1(), Holder: cm.identity,
			Say: func(msg string) { progress.notice(msg) }}
	}
	m := &engine.Migrator{
		GitOps:  pauser,
		Dynamic: cm.clients.Dynamic,
		Backups: cm.backups,
		Events:  events,
		OnProgress: func(pr engine.Progress) {
			flight.record(pr)
			progress.print(pr)
		},
		Options: engine.Options{
			TempSuffix: cfg.TempSuffix, Timeout: cfg.Timeout, Concurrency: cfg.Concurrency, MaxConcurrency: cfg.MaxConcurrency,
			DryRun: cfg.DryRun,
		},
	}
	return m.Run(ctx, cm.items)
}

// migrationOutcome is the error of a run whose objects failed or stopped.
func migrationOutcome(results []engine.Result, act int) error {
	var failed, interrupted int
	for _, r := range results {
		switch r.Outcome {
		case engine.Failed:
			failed++
		case engine.Interrupted:
			interrupted++
		}
	}
	if interrupted > 0 {
		return fmt.Errorf("interrupted with %d objects unfinished; run the same command again to finish them", interrupted)
	}
	if failed > 0 {
		return fmt.Errorf("%w: %d of %d", ErrFailed, failed, act)
	}
	return nil
}

// errNotStarted marks the clusters left alone after an earlier one failed
// or the run was interrupted; it follows an error, so it needs no rank.
var errNotStarted = errors.New("not started: the run stopped at an earlier context (--keep-going goes on after a failure)")

// migrateClusters migrates several clusters one after another. Every
// cluster is planned and checked, and every Lease taken, before the first
// write anywhere.
func migrateClusters(c *cli.Context, cfg MigrateConfig) error {
	ctx, stdout, stderr := c.Context, c.App.Writer, c.App.ErrWriter
	planned := make([]*clusterMigration, len(cfg.Targets))
	outcomes := make([]clusterOutcome, len(cfg.Targets))
	refused := false
	for i, t := range cfg.Targets {
		sectionHeader(stderr, i == 0, t.Context, t.Server)
		cm, err := planCluster(ctx, cfg, t, stderr)
		if err != nil {
			fmt.Fprintln(stderr, "error:", err)
			refused = true
		}
		planned[i], outcomes[i] = cm, clusterOutcome{context: t.Context, err: err}
	}
	if refused {
		return worstOutcome(outcomes)
	}
	// Each cluster's run stops when it loses its Leases (a context of its own).
	locked := make([]context.Context, len(planned))
	for i := range locked {
		locked[i] = ctx
	}
	if cfg.DryRun == engine.DryRunNone {
		for i, cm := range planned {
			if cm.act == 0 {
				continue
			}
			lockCtx, release, err := cm.lock(ctx)
			if err != nil {
				return fmt.Errorf("context %s: %w; nothing was changed", cm.target.Context, err)
			}
			defer release()
			locked[i] = lockCtx
		}
	}
	results := make([]ClusterResult[MigrationReport], len(planned))
	stop := false
	for i, cm := range planned {
		var report *MigrationReport
		var err error
		switch {
		case stop || ctx.Err() != nil: // Ctrl-C between two clusters starts no other
			err = errNotStarted
		case cm.act == 0:
			r := newMigrationReport(cfg, nil)
			report = &r
		default:
			sectionHeader(stderr, false, cm.target.Context, cm.target.Server)
			var res []engine.Result
			if res, err = cm.run(locked[i], cfg, stderr); err == nil {
				r := newMigrationReport(cfg, res)
				report = &r
				err = migrationOutcome(res, cm.act)
			}
			err = lockLost(locked[i], err)
		}
		results[i] = newClusterResult(cm.target, report, nil)
		if err != nil {
			results[i].Error = err.Error()
		}
		outcomes[i].err = err
		stop = stop || (err != nil && (!cfg.KeepGoing || ctx.Err() != nil))
	}
	if err := printMultiMigration(stdout, cfg, results); err != nil {
		return err
	}
	return worstOutcome(outcomes)
}

// parseConcurrency reads --concurrency: auto, or a fixed number of objects.
func parseConcurrency(v string) (start, limit int, err error) {
	if v == "auto" {
		return autoConcurrency, maxAutoConcurrency, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, 0, usageErrorf("--concurrency %q: want auto or a number of objects, at least 1", v)
	}
	return n, n, nil
}
