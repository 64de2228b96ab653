package cli

import (
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/urfave/cli/v2"
	"k8s.io/apimachinery/pkg/labels"

	"relabel.dev/relabel/engine"
	"relabel.dev/relabel/rules"
	workload "relabel.dev/relabel/unstructured"
)

func auditCommand() *cli.Command {
	return &cli.Command{
		Name:  "audit",
		Usage: "report which workloads lack a label in their selector, pod template or metadata",
		UsageText: "relabel audit --label KEY[=VALUE] [--gvr RESOURCE]... [-n NAMESPACE | -A] [-l SELECTOR] [-o table|json|yaml|html] [--exit-code]\n\n" +
			"   relabel audit --label stage -A\n" +
			"   relabel audit --label stage -A -o html > report.html\n" +
			"   relabel audit --label stage=production --gvr deploy -n shop -o json --exit-code",
		Flags: append(connectionFlags(),
			&cli.StringFlag{Name: "label", Usage: "the label to look for: KEY, or KEY=VALUE to check the value too"},
			&cli.StringSliceFlag{Name: "gvr", Usage: "resource to audit (apps/v1/deployments, deploy, sts, rollouts.argoproj.io); repeatable; default: every workload kind"},
			&cli.StringFlag{Name: "selector", Aliases: []string{"l"}, Usage: "only objects matching this label selector (kubectl's -l)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: outputTable, Usage: "table, json, yaml or html (a self-contained page to open in a browser)"},
			&cli.BoolFlag{Name: "exit-code", Usage: "exit with code 3 when any object lacks the label"},
			rulesFlag(),
		),
		Action: auditAction,
	}
}

// AuditConfig is the audit command's input, checked before any request.
type AuditConfig struct {
	Connection Connection
	Label      workload.Label
	GVRs       []string
	Selector   string
	Output     string
	ExitCode   bool
	Rules      *rules.File
}

func auditConfigFrom(c *cli.Context) (AuditConfig, error) {
	if err := argsNone(c); err != nil {
		return AuditConfig{}, err
	}
	conn, err := connectionFrom(c)
	if err != nil {
		return AuditConfig{}, err
	}
	if c.String("label") == "" {
		return AuditConfig{}, usageErrorf("--label is required")
	}
	label, err := workload.ParseLabel(c.String("label"), true)
	if err != nil {
		return AuditConfig{}, UsageError{Err: fmt.Errorf("--label: %w", err)}
	}
	selector, err := parseSelector(c.String("selector"))
	if err != nil {
		return AuditConfig{}, err
	}
	output, err := parseOutput(c.String("output"), outputTable, outputJSON, outputYAML, outputHTML)
	if err != nil {
		return AuditConfig{}, err
	}
	file, err := loadRules(c)
	if err != nil {
		return AuditConfig{}, err
	}
	return AuditConfig{Connection: conn, Label: label, GVRs: c.StringSlice("gvr"), Selector: selector, Output: output, ExitCode: c.Bool("exit-code"), Rules: file}, nil
}

func parseSelector(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	sel, err := labels.Parse(s)
	if err != nil {
		return "", usageErrorf("--selector %q: %v", s, err)
	}
	return sel.String(), nil
}

func auditAction(c *cli.Context) error {
	cfg, err := auditConfigFrom(c)
	if err != nil {
		return err
	}
	clients, kinds, err := connectAndSelect(c.Context, cfg.Connection, c.App.ErrWriter, cfg.Rules, cfg.GVRs)
	if err != nil {
		return err
	}
	findings, err := engine.Auditor{Dynamic: clients.Dynamic}.Audit(c.Context, engine.Scope{Kinds: kinds, Namespace: clients.Namespace, Selector: cfg.Selector}, cfg.Label)
	if err != nil {
		return err
	}
	report := newAuditReport(cfg.Label, findings)
	switch cfg.Output {
	case outputTable:
		err = printAuditTable(c.App.Writer, c.App.ErrWriter, report, clients.Namespace)
	case outputHTML:
		err = printAuditHTML(c.App.Writer, report, auditScope{Host: clients.Host, Context: clients.Context, Namespace: clients.Namespace, Time: time.Now()})
	default:
		err = printDocument(c.App.Writer, cfg.Output, report)
	}
	if err != nil {
		return err
	}
	if cfg.ExitCode && report.Summary.Lacking > 0 {
		return fmt.Errorf("%w: %d of %d objects lack %s", ErrFindings, report.Summary.Lacking, report.Summary.Objects, cfg.Label)
	}
	return nil
}

// AuditReport is the machine-readable form of `relabel audit`.
type AuditReport struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	Label      string           `json:"label"`
	Summary    AuditSummary     `json:"summary"`
	Items      []engine.Finding `json:"items"`
}

// AuditSummary counts objects in all and per kind.
type AuditSummary struct {
	Objects  int           `json:"objects"`
	Complete int           `json:"complete"`
	Lacking  int           `json:"lacking"`
	Kinds    []KindSummary `json:"kinds"`
}

// KindSummary counts the objects of one kind.
type KindSummary struct {
	GVR      string `json:"gvr"`
	Kind     string `json:"kind"`
	Objects  int    `json:"objects"`
	Complete int    `json:"complete"`
	Lacking  int    `json:"lacking"`
}

func newAuditReport(label workload.Label, findings []engine.Finding) AuditReport {
	r := AuditReport{APIVersion: SchemaVersion, Kind: "AuditReport", Label: label.String(), Items: findings}
	if r.Items == nil {
		r.Items = []engine.Finding{}
	}
	perKind := map[string]*KindSummary{}
	for _, f := range findings {
		k := perKind[f.GVR]
		if k == nil {
			k = &KindSummary{GVR: f.GVR, Kind: f.Kind}
			perKind[f.GVR] = k
		}
		k.Objects++
		r.Summary.Objects++
		if f.Complete {
			k.Complete++
			r.Summary.Complete++
		} else {
			k.Lacking++
			r.Summary.Lacking++
		}
	}
	r.Summary.Kinds = []KindSummary{}
	for _, k := range perKind {
		r.Summary.Kinds = append(r.Summary.Kinds, *k)
	}
	sort.Slice(r.Summary.Kinds, func(i, j int) bool { return r.Summary.Kinds[i].GVR < r.Summary.Kinds[j].GVR })
	return r
}

func printAuditTable(w, stderr io.Writer, r AuditReport, namespace string) error {
	if len(r.Items) == 0 {
		if namespace == "" {
			fmt.Fprintln(stderr, "No resources found")
		} else {
			fmt.Fprintf(stderr, "No resources found in %s namespace.\n", namespace)
		}
		return nil
	}
	headers := []string{"KIND", "NAME", "SELECTOR", "TEMPLATE", "METADATA", "OWNER"}
	if namespace == "" {
		headers = append([]string{"NAMESPACE"}, headers...)
	}
	t := newTable(w, headers...)
	for _, f := range r.Items {
		owner := f.Owner
		if f.ManagedBy != "" {
			owner = joinNonEmpty(owner, "managed by "+f.ManagedBy)
		}
		cells := []string{f.Kind, f.Name, string(f.Selector), string(f.Template), string(f.Metadata), owner}
		if namespace == "" {
			cells = append([]string{f.Namespace}, cells...)
		}
		t.row(cells...)
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d objects, %d lack %s", r.Summary.Objects, r.Summary.Lacking, r.Label)
	for i, k := range r.Summary.Kinds {
		sep := ", "
		if i == 0 {
			sep = " ("
		}
		fmt.Fprintf(w, "%s%s %d/%d", sep, k.Kind, k.Lacking, k.Objects)
	}
	if len(r.Summary.Kinds) > 0 {
		fmt.Fprint(w, ")")
	}
	fmt.Fprintln(w)
	return nil
}

func joinNonEmpty(a, b string) string {
	if a == "" {
		return b
	}
	return a + ", " + b
}
