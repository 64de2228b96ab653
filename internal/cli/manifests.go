package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"relabel.dev/relabel/internal/manifests"
	"relabel.dev/relabel/rules"
	workload "relabel.dev/relabel/unstructured"
)

func manifestsCommand() *cli.Command {
	return &cli.Command{
		Name:  "manifests",
		Usage: "add the label to workloads in YAML files, kustomize bases and Helm charts, as relabel does on the cluster",
		UsageText: "relabel manifests --label KEY=VALUE [--check] [--dry-run] [--rules FILE] PATH...\n\n" +
			"   relabel manifests --label stage=production deploy/\n" +
			"   relabel manifests --label stage=production --dry-run charts/shop\n" +
			"   relabel manifests --label stage=production --check .",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "label", Usage: "the label to add, KEY=VALUE"},
			&cli.BoolFlag{Name: "check", Usage: "change nothing; list the workloads that lack the label and exit with code 3 when any does"},
			&cli.BoolFlag{Name: "dry-run", Usage: "change nothing; print the changes as a unified diff"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: outputTable, Usage: "with --check: table or json"},
			rulesFlag(),
		},
		Action: manifestsAction,
	}
}

// ManifestsConfig is the manifests command's input.
type ManifestsConfig struct {
	Paths  []string
	Opts   manifests.Options
	Check  bool
	DryRun bool
	Output string
}

func manifestsConfigFrom(c *cli.Context) (ManifestsConfig, error) {
	cfg := ManifestsConfig{Paths: c.Args().Slice(), Check: c.Bool("check"), DryRun: c.Bool("dry-run")}
	if len(cfg.Paths) == 0 {
		return cfg, usageErrorf("manifests: name a file or directory")
	}
	if cfg.Check && cfg.DryRun {
		return cfg, usageErrorf("--check and --dry-run: give one")
	}
	var err error
	if cfg.Output, err = parseOutput(c.String("output"), outputTable, outputJSON); err != nil {
		return cfg, err
	}
	if cfg.Opts.Rules, err = loadRules(c); err != nil {
		return cfg, err
	}
	switch {
	case c.String("label") != "":
		if cfg.Opts.Label, err = workload.ParseLabel(c.String("label"), false); err != nil {
			return cfg, UsageError{Err: fmt.Errorf("--label: %w", err)}
		}
	case cfg.Opts.Rules == nil || len(cfg.Opts.Rules.Rules) == 0:
		return cfg, usageErrorf("--label KEY=VALUE is required, or --rules with rules")
	}
	return cfg, nil
}

func manifestsAction(c *cli.Context) error {
	cfg, err := manifestsConfigFrom(c)
	if err != nil {
		return err
	}
	return RunManifests(cfg, c.App.Writer, c.App.ErrWriter)
}

// RunManifests computes every file's change, then prints, checks or writes.
func RunManifests(cfg ManifestsConfig, stdout, stderr io.Writer) error {
	plan, err := manifests.Load(cfg.Paths, cfg.Opts)
	if err != nil {
		if errors.Is(err, manifests.ErrParse) || errors.Is(err, manifests.ErrNoPath) {
			return UsageError{Err: err}
		}
		return err
	}
	for _, n := range plan.Notes {
		fmt.Fprintln(stderr, "note:", n)
	}
	switch {
	case cfg.Check:
		return manifestsCheck(plan, cfg.Output, stdout)
	case cfg.DryRun:
		for _, r := range plan.Changed() {
			fmt.Fprint(stdout, r.Diff())
		}
		return nil
	}
	if err := plan.Write(); err != nil {
		return err
	}
	changed := plan.Changed()
	for _, r := range changed {
		fmt.Fprintf(stdout, "%s: %s\n", r.Path, describeChange(r))
	}
	lacking := 0
	for _, w := range plan.Workloads() {
		if w.Lacking {
			lacking++
		}
	}
	fmt.Fprintf(stdout, "%s changed; %d of %s labelled\n", count(len(changed), "file"), lacking, count(len(plan.Workloads()), "workload"))
	return nil
}

func describeChange(r *manifests.Result) string {
	n := 0
	for _, w := range r.Workloads {
		if w.Lacking {
			n++
		}
	}
	if n == 0 {
		return "named templates rewritten"
	}
	return "labelled " + count(n, "workload")
}

func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// checkReport is the -o json document of --check.
type checkReport struct {
	APIVersion string               `json:"apiVersion"`
	Kind       string               `json:"kind"`
	Items      []manifests.Workload `json:"items"`
	Lacking    int                  `json:"lacking"`
}

func manifestsCheck(plan *manifests.Plan, output string, stdout io.Writer) error {
	report := checkReport{APIVersion: SchemaVersion, Kind: "ManifestsCheck", Items: []manifests.Workload{}}
	var label rules.Label
	for _, w := range plan.Workloads() {
		if !w.Lacking {
			continue
		}
		report.Items = append(report.Items, w)
		report.Lacking++
		label = w.Label
	}
	if output == outputJSON {
		if err := printDocument(stdout, outputJSON, report); err != nil {
			return err
		}
	} else {
		for _, w := range report.Items {
			fmt.Fprintf(stdout, "%s:%d %s %s\n", w.File, w.Line, w.Kind, w.Ref())
		}
	}
	if report.Lacking > 0 {
		return fmt.Errorf("%w: %d of %d workloads lack %s", ErrFindings, report.Lacking, len(plan.Workloads()), label)
	}
	return nil
}
