package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
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
		UsageText: "relabel audit --label KEY[=VALUE] [--gvr RESOURCE]... [-n NAMESPACE | -A] [-l SELECTOR] [-o table|wide|json|yaml|html] [--exit-code]\n\n" +
			"   relabel audit --label stage -A\n" +
			"   relabel audit --label stage -A -o html > report.html\n" +
			"   relabel audit --label stage=production --gvr deploy -n shop -o json --exit-code\n" +
			"   relabel audit --label stage -A --all-contexts --exit-code",
		Flags: append(connectionFlags(true),
			&cli.StringFlag{Name: "label", Usage: "the label to look for: KEY, or KEY=VALUE to check the value too"},
			&cli.StringSliceFlag{Name: "gvr", Usage: "resource to audit (apps/v1/deployments, deploy, sts, rollouts.argoproj.io); repeatable; default: every workload kind"},
			&cli.StringFlag{Name: "selector", Aliases: []string{"l"}, Usage: "only objects matching this label selector (kubectl's -l)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: outputTable, Usage: "table, wide, json, yaml or html (a self-contained page to open in a browser; one cluster only)"},
			&cli.BoolFlag{Name: "exit-code", Usage: "exit with code 3 when any object lacks the label"},
			rulesFlag(),
		),
		Action: auditAction,
	}
}

// AuditConfig is the audit command's input, checked before any request.
type AuditConfig struct {
	Targets []Target
	// Several: one section per context, and the multi-cluster document.
	Several  bool
	Label    workload.Label
	GVRs     []string
	Selector string
	Output   string
	ExitCode bool
	Rules    *rules.File
}

func auditConfigFrom(c *cli.Context) (AuditConfig, error) {
	if err := argsNone(c); err != nil {
		return AuditConfig{}, err
	}
	conn, err := connectionFrom(c)
	if err != nil {
		return AuditConfig{}, err
	}
	contexts, err := contextsFrom(c)
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
	output, err := parseOutput(c.String("output"), outputTable, outputWide, outputJSON, outputYAML, outputHTML)
	if err != nil {
		return AuditConfig{}, err
	}
	if output == outputHTML && contexts.Several() {
		return AuditConfig{}, usageErrorf("--output html covers one cluster; give one --context")
	}
	file, err := loadRules(c)
	if err != nil {
		return AuditConfig{}, err
	}
	// Last: it reads the kubeconfig, whose errors are not bad input.
	targets, err := contexts.targets(conn)
	if err != nil {
		return AuditConfig{}, err
	}
	return AuditConfig{Targets: targets, Several: contexts.Several(), Label: label, GVRs: c.StringSlice("gvr"),
		Selector: selector, Output: output, ExitCode: c.Bool("exit-code"), Rules: file}, nil
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
	stdout, stderr := c.App.Writer, c.App.ErrWriter
	if !cfg.Several {
		report, err := auditCluster(c.Context, cfg, cfg.Targets[0], stderr)
		if err != nil {
			return err
		}
		if err := printAudit(stdout, stderr, cfg.Output, *report); err != nil {
			return err
		}
		return cfg.findings(report)
	}
	results := eachCluster(c.Context, cfg.Targets, stderr, func(ctx context.Context, t Target, stderr io.Writer) (*AuditReport, error) {
		return auditCluster(ctx, cfg, t, stderr)
	})
	if err := printMultiAudit(stdout, cfg, results); err != nil {
		return err
	}
	outcomes := make([]clusterOutcome, len(results))
	for i, r := range results {
		outcomes[i] = clusterOutcome{context: r.Context, err: r.err}
		if r.err == nil {
			outcomes[i].err = cfg.findings(r.Report)
		}
	}
	return worstOutcome(outcomes)
}

// auditCluster audits one cluster.
func auditCluster(ctx context.Context, cfg AuditConfig, t Target, stderr io.Writer) (*AuditReport, error) {
	clients, kinds, err := connectAndSelect(ctx, t.Connection, stderr, cfg.Rules, cfg.GVRs)
	if err != nil {
		return nil, err
	}
	raw, err := engine.NewRawClient(clients.Config)
	if err != nil {
		return nil, err
	}
	findings, err := engine.Auditor{Dynamic: clients.Dynamic, REST: raw}.Audit(ctx, engine.Scope{Kinds: kinds, Namespace: clients.Namespace, Selector: cfg.Selector}, cfg.Label)
	if err != nil {
		return nil, err
	}
	report := newAuditReport(cfg.Label, findings)
	report.scope = auditScope{Host: clients.Host, Context: clients.Context, Namespace: clients.Namespace, Time: time.Now()}
	return &report, nil
}

// findings is ErrFindings for --exit-code when objects lack the label.
func (cfg AuditConfig) findings(r *AuditReport) error {
	if cfg.ExitCode && r.Summary.Lacking > 0 {
		return fmt.Errorf("%w: %d of %d objects lack %s", ErrFindings, r.Summary.Lacking, r.Summary.Objects, cfg.Label)
	}
	return nil
}

func printAudit(w, stderr io.Writer, format string, r AuditReport) error {
	switch format {
	case outputTable, outputWide:
		return printAuditTable(w, stderr, r, format == outputWide)
	case outputHTML:
		return printAuditHTML(w, r, r.scope)
	case outputJSON:
		return printAuditJSON(w, r)
	}
	return printDocument(w, format, r)
}

// MultiClusterAuditReport is the machine-readable form of `relabel audit`
// over several contexts: each cluster's AuditReport, or its error.
type MultiClusterAuditReport struct {
	APIVersion string                       `json:"apiVersion"`
	Kind       string                       `json:"kind"`
	Label      string                       `json:"label"`
	Summary    MultiClusterSummary          `json:"summary"`
	Clusters   []ClusterResult[AuditReport] `json:"clusters"`
}

// MultiClusterSummary adds up the clusters of a multi-cluster audit.
type MultiClusterSummary struct {
	Contexts int `json:"contexts"`
	// Failed counts the clusters that could not be audited.
	Failed   int `json:"failed"`
	Objects  int `json:"objects"`
	Complete int `json:"complete"`
	Lacking  int `json:"lacking"`
}

func printMultiAudit(w io.Writer, cfg AuditConfig, results []ClusterResult[AuditReport]) error {
	if cfg.Output == outputJSON || cfg.Output == outputYAML {
		doc := MultiClusterAuditReport{APIVersion: SchemaVersion, Kind: "MultiClusterAuditReport", Label: cfg.Label.String(), Clusters: results}
		doc.Summary.Contexts = len(results)
		for _, r := range results {
			if r.Report == nil {
				doc.Summary.Failed++
				continue
			}
			doc.Summary.Objects += r.Report.Summary.Objects
			doc.Summary.Complete += r.Report.Summary.Complete
			doc.Summary.Lacking += r.Report.Summary.Lacking
		}
		return printDocument(w, cfg.Output, doc)
	}
	for i, r := range results {
		sectionHeader(w, i == 0, r.Context, r.Server)
		if r.Report == nil {
			fmt.Fprintln(w, "error:", r.Error)
			continue
		}
		// "No resources found" belongs in the section, not apart on stderr.
		if err := printAuditTable(w, w, *r.Report, cfg.Output == outputWide); err != nil {
			return err
		}
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
	// scope is where and when the audit looked.
	scope auditScope
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

func printAuditTable(w, stderr io.Writer, r AuditReport, wide bool) error {
	if len(r.Items) == 0 {
		if r.scope.Namespace == "" {
			fmt.Fprintln(stderr, "No resources found")
		} else {
			fmt.Fprintf(stderr, "No resources found in %s namespace.\n", r.scope.Namespace)
		}
		return nil
	}
	headers := []string{"KIND", "NAME", "SELECTOR", "TEMPLATE", "METADATA", "OWNER"}
	if wide {
		headers = append(headers, "MANAGED BY", "LABEL SELECTOR")
	}
	if r.scope.Namespace == "" {
		headers = append([]string{"NAMESPACE"}, headers...)
	}
	t := newTable(w, headers...)
	for _, f := range r.Items {
		cells := []string{f.Kind, f.Name, f.Selector.String(), f.Template.String(), f.Metadata.String()}
		if wide {
			cells = append(cells, f.Owner, f.ManagedBy, f.LabelSelector)
		} else if f.ManagedBy != "" {
			cells = append(cells, joinNonEmpty(f.Owner, "managed by "+f.ManagedBy))
		} else {
			cells = append(cells, f.Owner)
		}
		if r.scope.Namespace == "" {
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

// printAuditJSON writes r as printDocument does, byte for byte, but an item
// at a time: the whole document of a large cluster is never in memory twice
// (encoding/json builds it whole, then indents a copy).
func printAuditJSON(w io.Writer, r AuditReport) error {
	head := r
	head.Items = nil
	doc, err := json.MarshalIndent(head, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding JSON: %w", err)
	}
	// doc ends with `"items": null` and the closing brace.
	doc = bytes.TrimSuffix(doc, []byte("null\n}"))
	bw := bufio.NewWriter(w)
	bw.Write(doc)
	if len(r.Items) == 0 {
		bw.WriteString("[]\n}\n")
		return bw.Flush()
	}
	bw.WriteString("[\n")
	for i, item := range r.Items {
		out, err := json.MarshalIndent(item, "    ", "  ")
		if err != nil {
			return fmt.Errorf("encoding JSON: %w", err)
		}
		bw.WriteString("    ")
		bw.Write(out)
		if i < len(r.Items)-1 {
			bw.WriteByte(',')
		}
		bw.WriteByte('\n')
	}
	bw.WriteString("  ]\n}\n")
	return bw.Flush()
}
