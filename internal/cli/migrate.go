package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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
	return append(connectionFlags(),
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
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: outputTable, Usage: "table or json (the final report)"},
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
	Connection   Connection
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
		Connection: conn, Label: label, GVRs: c.StringSlice("gvr"), Selector: selector,
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
	switch cfg.Output = c.String("output"); cfg.Output {
	case outputTable, outputJSON:
	default:
		return cfg, usageErrorf("--output %q: want table or json", cfg.Output)
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
	ctx, stdout, stderr := c.Context, c.App.Writer, c.App.ErrWriter
	clients, kinds, err := connectAndSelect(ctx, cfg.Connection, stderr, cfg.Rules, cfg.GVRs)
	if err != nil {
		return err
	}
	if clients.Namespace != "" {
		// Users limited to one namespace may not read namespaces; only a clear "not found" stops here.
		if _, err := clients.Kube.CoreV1().Namespaces().Get(ctx, clients.Namespace, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return UsageError{Err: fmt.Errorf("namespace %s does not exist", clients.Namespace)}
		}
	}
	scope := engine.Scope{Kinds: kinds, Namespace: clients.Namespace, Selector: cfg.Selector}
	backups := engine.Backups{Dir: cfg.BackupDir}
	items, err := engine.Plan(ctx, engine.Auditor{Dynamic: clients.Dynamic}, scope, engine.PlanOptions{
		Label: cfg.Label, IncludeOwned: cfg.IncludeOwned, NamespaceGiven: cfg.Connection.Namespace != "",
		Strategy: cfg.Strategy, Backups: &backups, Rules: cfg.Rules, MaxSurgePods: cfg.MaxSurgePods,
	})
	if errors.Is(err, engine.ErrStrategyRefused) || errors.Is(err, engine.ErrBadRule) {
		return UsageError{Err: err}
	}
	if err != nil {
		return err
	}
	printPlan(stderr, items, cfg)
	// A selector that already has the key with another value is a mistake to
	// look into, not something to step around.
	var conflicts []string
	for _, it := range items {
		if it.Conflict {
			conflicts = append(conflicts, it.Kind.Kind+" "+it.Ref()+": "+it.Reason)
		}
	}
	if len(conflicts) > 0 {
		return usageErrorf("%d objects cannot take the label, nothing was changed (exclude them with -l): %s", len(conflicts), strings.Join(conflicts, "; "))
	}
	act, _ := engine.Count(items)
	if act == 0 {
		return printMigrationReport(stdout, cfg, nil)
	}

	if cfg.DryRun == engine.DryRunNone {
		missing, err := engine.Preflight(ctx, clients.Kube.AuthorizationV1().SelfSubjectAccessReviews(), engine.RequiredPermissions(items))
		if err != nil {
			return err
		}
		if len(missing) > 0 {
			return engine.MissingPermissionsError{Missing: missing}
		}
		if err := backups.Check(); err != nil {
			return err
		}
		if err := confirm(c.App.Reader, stderr, cfg.Yes, act); err != nil {
			return err
		}
		release, err := engine.Locks{Client: clients.Kube.CoordinationV1(), Identity: engine.NewIdentity()}.Acquire(ctx, planNamespaces(items))
		if err != nil {
			return err
		}
		defer release()
	}

	events := &engine.Events{Client: clients.Kube.CoreV1()}
	defer events.Wait()

	progress := newProgressPrinter(stderr, act, crashAfter())
	defer progress.close()
	m := &engine.Migrator{
		Dynamic:    clients.Dynamic,
		Backups:    backups,
		Events:     events,
		OnProgress: progress.print,
		Options: engine.Options{
			TempSuffix: cfg.TempSuffix, Timeout: cfg.Timeout, Concurrency: cfg.Concurrency,
			Namespace: clients.Namespace, DryRun: cfg.DryRun,
		},
	}
	results, err := m.Run(ctx, items)
	if err != nil {
		return err
	}
	if err := printMigrationReport(stdout, cfg, results); err != nil {
		return err
	}
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

func printPlan(w io.Writer, items []engine.Item, cfg MigrateConfig) {
	act, skip := engine.Count(items)
	fmt.Fprintf(w, "Plan: %d objects to migrate (%d skipped), backups in %s\n", act, skip, cfg.BackupDir)
	for _, it := range items {
		if it.Action == engine.ActionSkip {
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

// progressPrinter prints one line per step as it happens and, on a
// terminal, keeps a summary line under them.
type progressPrinter struct {
	mu       sync.Mutex
	w        io.Writer
	terminal bool
	crash    crashPoint
	total    int
	start    time.Time
	started  map[string]bool
	outcomes map[engine.Outcome]int
}

func newProgressPrinter(w io.Writer, total int, crash crashPoint) *progressPrinter {
	f, ok := w.(*os.File)
	return &progressPrinter{
		w: w, terminal: ok && term.IsTerminal(int(f.Fd())), crash: crash, total: total,
		start: time.Now(), started: map[string]bool{}, outcomes: map[engine.Outcome]int{},
	}
}

func (p *progressPrinter) print(pr engine.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.started[pr.Item.Key()] = true
	line := fmt.Sprintf("%s %s %s %s (%s)", pr.Time.Format("15:04:05"), pr.Item.Kind.Kind, pr.Item.Ref(), pr.Step, pr.Elapsed.Round(100*time.Millisecond))
	if pr.Step == engine.StepFinished {
		p.outcomes[pr.Outcome]++
		line = fmt.Sprintf("%s %s %s %s (%s)", pr.Time.Format("15:04:05"), pr.Item.Kind.Kind, pr.Item.Ref(), pr.Outcome, pr.Elapsed.Round(100*time.Millisecond))
	}
	if pr.Message != "" {
		line += " " + pr.Message
	}
	if p.terminal {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintln(p.w, line)
	if p.terminal {
		finished := p.outcomes[engine.Migrated] + p.outcomes[engine.Failed] + p.outcomes[engine.Interrupted]
		fmt.Fprintf(p.w, "%d/%d done, %d in flight, %d failed, %s elapsed", p.outcomes[engine.Migrated], p.total,
			len(p.started)-finished, p.outcomes[engine.Failed], time.Since(p.start).Round(time.Second))
	}
	if p.crash.step != "" && pr.Step == p.crash.step {
		// A crash exactly after a step, for the crash-safety tests.
		if p.crash.count--; p.crash.count <= 0 {
			// SIGKILL on Unix; os.Process.Kill also builds for Windows.
			if self, err := os.FindProcess(os.Getpid()); err == nil {
				_ = self.Kill()
			}
		}
	}
}

func (p *progressPrinter) close() {
	if p.terminal {
		fmt.Fprintln(p.w)
	}
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
}

func printMigrationReport(w io.Writer, cfg MigrateConfig, results []engine.Result) error {
	report := MigrationReport{APIVersion: SchemaVersion, Kind: "MigrationReport", Label: cfg.Label.String(), DryRun: string(cfg.DryRun),
		Summary: map[string]int{}, Items: []MigrationResult{}}
	for _, r := range results {
		report.Summary[string(r.Outcome)]++
		report.Items = append(report.Items, MigrationResult{
			GVR: r.Item.Kind.GVRString(), Kind: r.Item.Kind.Kind, Namespace: r.Item.Namespace, Name: r.Item.Name,
			Strategy: string(r.Item.Strategy), Outcome: string(r.Outcome), DurationSeconds: r.Duration.Round(time.Millisecond).Seconds(), Message: r.Message,
		})
	}
	if cfg.Output == outputJSON {
		return printDocument(w, outputJSON, report)
	}
	if len(results) == 0 {
		fmt.Fprintln(w, "Nothing to migrate.")
		return nil
	}
	for _, r := range results {
		if r.Diff != "" {
			fmt.Fprintf(w, "# %s %s\n%s\n", r.Item.Kind.Kind, r.Item.Ref(), r.Diff)
		}
	}
	t := newTable(w, "NAMESPACE", "KIND", "NAME", "RESULT", "DURATION", "MESSAGE")
	for _, r := range report.Items {
		t.row(r.Namespace, r.Kind, r.Name, r.Outcome, fmt.Sprintf("%.1fs", r.DurationSeconds), r.Message)
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nmigrated %d, skipped %d, failed %d, interrupted %d\n",
		report.Summary[string(engine.Migrated)], report.Summary[string(engine.Skipped)], report.Summary[string(engine.Failed)], report.Summary[string(engine.Interrupted)])
	return nil
}
