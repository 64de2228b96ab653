package cli

import (
	"fmt"
	"io"
	"time"

	"relabel.dev/relabel/engine"
)

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
