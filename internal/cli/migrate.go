package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"relabel.dev/relabel/engine"
	"relabel.dev/relabel/rules"
	workload "relabel.dev/relabel/unstructured"
)

func migrateFlags() []cli.Flag {
	return append(connectionFlags(true),
		&cli.StringFlag{Name: "label", Usage: "the label to add, KEY=VALUE"},
		&cli.StringSliceFlag{Name: "gvr", Usage: "resource to migrate (apps/v1/deployments, deploy, sts, rollouts.argoproj.io); repeatable; default: every workload kind"},
		&cli.StringFlag{Name: "selector", Aliases: []string{"l"}, Usage: "only objects matching this label selector (kubectl's -l)"},
		&cli.StringFlag{Name: "strategy", Value: string(rules.StrategyAuto), Usage: "auto (per object: adopt for StatefulSets and DaemonSets, temp-copy otherwise), temp-copy or adopt"},
		&cli.Int64Flag{Name: "max-surge-pods", Usage: "with --strategy auto, adopt instead of copying objects whose copy would add more pods than this (0: no bound)"},
		&cli.DurationFlag{Name: "timeout", Value: 10 * time.Minute, Usage: "how long to wait for one object's copy or new object to become ready; on expiry the copy is rolled back"},
		&cli.IntFlag{Name: "concurrency", Value: 10, Usage: "objects migrated at once"},
		&cli.StringFlag{Name: "backup-dir", Value: defaultBackupDir(), Usage: "where manifests are saved before any write"},
		&cli.StringFlag{Name: "temp-suffix", Value: "-temp", Usage: "suffix of the temporary copy's name"},
		&cli.StringFlag{Name: "dry-run", Usage: "client: print the plan only; server: also let the API server validate the copies and new objects"},
		&cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "do not ask before the first write"},
		&cli.BoolFlag{Name: "include-owned", Usage: "also migrate objects controlled by another object (its controller may fight the change)"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: outputTable, Usage: "table, wide, json or yaml (the final report)"},
		&cli.BoolFlag{Name: "multi-cluster", Usage: "with --yes, confirm a migration over several contexts (--all-contexts or --context given more than once); clusters go one after another"},
		&cli.BoolFlag{Name: "keep-going", Usage: "with several contexts, go on with the next cluster after one fails"},
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
	BackupDir    string
	TempSuffix   string
	DryRun       engine.DryRun
	Yes          bool
	IncludeOwned bool
	Output       string
	Rules        *rules.File
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
		Timeout: c.Duration("timeout"), Concurrency: c.Int("concurrency"), BackupDir: c.String("backup-dir"),
		TempSuffix: c.String("temp-suffix"), Yes: c.Bool("yes"), IncludeOwned: c.Bool("include-owned"), Rules: file,
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
	if cfg.Concurrency < 1 {
		return cfg, usageErrorf("--concurrency must be at least 1")
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
		release, err := cm.lock(ctx)
		if err != nil {
			return err
		}
		defer release()
	}
	results, err := cm.run(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	if err := printMigrationReport(stdout, cfg, newMigrationReport(cfg, results)); err != nil {
		return err
	}
	return migrationOutcome(results, cm.act)
}

// clusterMigration is one cluster's migration, planned and checked.
type clusterMigration struct {
	target  Target
	clients *Clients
	items   []engine.Item
	act     int
	backups engine.Backups
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
	cm := &clusterMigration{target: t, clients: clients, backups: engine.Backups{Dir: cfg.BackupDir}}
	if cfg.Several {
		// Two clusters may hold objects of the same namespace and name.
		cm.backups.Dir = filepath.Join(cfg.BackupDir, contextDir(t.Context))
	}
	scope := engine.Scope{Kinds: kinds, Namespace: clients.Namespace, Selector: cfg.Selector}
	cm.items, err = engine.Plan(ctx, engine.Auditor{Dynamic: clients.Dynamic}, scope, engine.PlanOptions{
		Label: cfg.Label, IncludeOwned: cfg.IncludeOwned, NamespaceGiven: t.Namespace != "",
		Strategy: cfg.Strategy, Backups: &cm.backups, Rules: cfg.Rules, MaxSurgePods: cfg.MaxSurgePods,
	})
	if errors.Is(err, engine.ErrStrategyRefused) || errors.Is(err, engine.ErrBadRule) {
		return nil, UsageError{Err: err}
	}
	if err != nil {
		return nil, err
	}
	printPlan(stderr, cm.items, cm.backups.Dir)
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
	missing, err := engine.Preflight(ctx, clients.Kube.AuthorizationV1().SelfSubjectAccessReviews(), engine.RequiredPermissions(cm.items))
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

// contextDir names a context's backup directory: context names may hold
// slashes (EKS ARNs) and must not climb out of the backup directory.
func contextDir(context string) string {
	name := url.PathEscape(context)
	if strings.Trim(name, ".") == "" {
		name = strings.ReplaceAll(name, ".", "%2E")
	}
	return name
}

// lock takes the Lease of every namespace the plan writes to.
func (cm *clusterMigration) lock(ctx context.Context) (release func(), err error) {
	return engine.Locks{Client: cm.clients.Kube.CoordinationV1(), Identity: engine.NewIdentity()}.Acquire(ctx, planNamespaces(cm.items))
}

// run migrates the cluster's planned objects.
func (cm *clusterMigration) run(ctx context.Context, cfg MigrateConfig, stderr io.Writer) ([]engine.Result, error) {
	events := &engine.Events{Client: cm.clients.Kube.CoreV1()}
	defer events.Wait()
	progress := newProgressPrinter(stderr, cm.act, crashAfter())
	defer progress.close()
	m := &engine.Migrator{
		Dynamic:    cm.clients.Dynamic,
		Backups:    cm.backups,
		Events:     events,
		OnProgress: progress.print,
		Options: engine.Options{
			TempSuffix: cfg.TempSuffix, Timeout: cfg.Timeout, Concurrency: cfg.Concurrency,
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
	if cfg.DryRun == engine.DryRunNone {
		for _, cm := range planned {
			if cm.act == 0 {
				continue
			}
			release, err := cm.lock(ctx)
			if err != nil {
				return fmt.Errorf("context %s: %w; nothing was changed", cm.target.Context, err)
			}
			defer release()
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
			if res, err = cm.run(ctx, cfg, stderr); err == nil {
				r := newMigrationReport(cfg, res)
				report = &r
				err = migrationOutcome(res, cm.act)
			}
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

func printPlan(w io.Writer, items []engine.Item, backupDir string) {
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
		if it.ManagedBy != "" {
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

// EnvCrashAfter makes relabel kill itself right after the named step; the
// crash-safety tests use it to stop a migration at a precise point.
const EnvCrashAfter = "RELABEL_TEST_CRASH_AFTER"

// crashPoint is STEP or STEP:N, the Nth time any object reaches STEP.
type crashPoint struct {
	step  engine.Step
	count int
}

func crashAfter() crashPoint {
	step, n, _ := strings.Cut(os.Getenv(EnvCrashAfter), ":")
	count, err := strconv.Atoi(n)
	if err != nil || count < 1 {
		count = 1
	}
	return crashPoint{step: engine.Step(step), count: count}
}

// MigrationReport is the machine-readable form of a migration's results.
type MigrationReport struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Label      string            `json:"label"`
	DryRun     string            `json:"dryRun,omitempty"`
	Summary    map[string]int    `json:"summary"`
	Items      []MigrationResult `json:"items"`
}

// MigrationResult is one object's line of the report.
type MigrationResult struct {
	GVR             string  `json:"gvr"`
	Kind            string  `json:"kind"`
	Namespace       string  `json:"namespace,omitempty"`
	Name            string  `json:"name"`
	Strategy        string  `json:"strategy"`
	Outcome         string  `json:"outcome"`
	DurationSeconds float64 `json:"durationSeconds"`
	Message         string  `json:"message,omitempty"`
	// label and diff (with its header) are for the table only.
	label string
	diff  string
}

func newMigrationReport(cfg MigrateConfig, results []engine.Result) MigrationReport {
	report := MigrationReport{APIVersion: SchemaVersion, Kind: "MigrationReport", Label: cfg.Label.String(), DryRun: string(cfg.DryRun),
		Summary: map[string]int{}, Items: []MigrationResult{}}
	for _, r := range results {
		report.Summary[string(r.Outcome)]++
		item := MigrationResult{
			GVR: r.Item.Kind.GVRString(), Kind: r.Item.Kind.Kind, Namespace: r.Item.Namespace, Name: r.Item.Name,
			Strategy: string(r.Item.Strategy), Outcome: string(r.Outcome), DurationSeconds: r.Duration.Round(time.Millisecond).Seconds(), Message: r.Message,
			label: r.Item.Label.String(),
		}
		if r.Diff != "" {
			item.diff = fmt.Sprintf("# %s %s\n%s\n", r.Item.Kind.Kind, r.Item.Ref(), r.Diff)
		}
		report.Items = append(report.Items, item)
	}
	return report
}

func printMigrationReport(w io.Writer, cfg MigrateConfig, report MigrationReport) error {
	if cfg.Output == outputJSON || cfg.Output == outputYAML {
		return printDocument(w, cfg.Output, report)
	}
	if len(report.Items) == 0 {
		fmt.Fprintln(w, "Nothing to migrate.")
		return nil
	}
	for _, r := range report.Items {
		fmt.Fprint(w, r.diff)
	}
	wide := cfg.Output == outputWide
	headers := []string{"NAMESPACE", "KIND", "NAME", "RESULT", "DURATION", "MESSAGE"}
	if wide {
		headers = []string{"NAMESPACE", "KIND", "NAME", "RESULT", "DURATION", "STRATEGY", "LABEL", "GVR", "MESSAGE"}
	}
	t := newTable(w, headers...)
	for _, r := range report.Items {
		duration := fmt.Sprintf("%.1fs", r.DurationSeconds)
		if wide {
			t.row(r.Namespace, r.Kind, r.Name, r.Outcome, duration, r.Strategy, r.label, r.GVR, r.Message)
		} else {
			t.row(r.Namespace, r.Kind, r.Name, r.Outcome, duration, r.Message)
		}
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nmigrated %d, skipped %d, failed %d, interrupted %d\n",
		report.Summary[string(engine.Migrated)], report.Summary[string(engine.Skipped)], report.Summary[string(engine.Failed)], report.Summary[string(engine.Interrupted)])
	return nil
}

// MultiClusterMigrationReport is the machine-readable form of a migration
// over several contexts: each cluster's MigrationReport and, when it
// failed or was not started, its error.
type MultiClusterMigrationReport struct {
	APIVersion string                           `json:"apiVersion"`
	Kind       string                           `json:"kind"`
	Label      string                           `json:"label"`
	DryRun     string                           `json:"dryRun,omitempty"`
	Clusters   []ClusterResult[MigrationReport] `json:"clusters"`
}

func printMultiMigration(w io.Writer, cfg MigrateConfig, results []ClusterResult[MigrationReport]) error {
	if cfg.Output == outputJSON || cfg.Output == outputYAML {
		return printDocument(w, cfg.Output, MultiClusterMigrationReport{
			APIVersion: SchemaVersion, Kind: "MultiClusterMigrationReport", Label: cfg.Label.String(), DryRun: string(cfg.DryRun), Clusters: results,
		})
	}
	for i, r := range results {
		sectionHeader(w, i == 0, r.Context, r.Server)
		if r.Report != nil {
			if err := printMigrationReport(w, cfg, *r.Report); err != nil {
				return err
			}
		}
		if r.Error != "" {
			fmt.Fprintln(w, "error:", r.Error)
		}
	}
	return nil
}
