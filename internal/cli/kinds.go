package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"relabel.dev/relabel/discovery"
	"relabel.dev/relabel/rules"
)

func kindsCommand() *cli.Command {
	return &cli.Command{
		Name:  "kinds",
		Usage: "list the workload kinds whose selector relabel can migrate",
		UsageText: "relabel kinds [-o table|wide|json|yaml]\n\n" +
			"   relabel kinds -o wide\n" +
			"   relabel kinds --all-contexts",
		Flags: append(connectionFlags(true),
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: outputTable, Usage: "table, wide, json or yaml (which loads as a rules file)"},
			rulesFlag(),
		),
		Action: kindsAction,
	}
}

// KindsConfig is the kinds command's input, checked before any request.
type KindsConfig struct {
	Targets []Target
	Several bool
	Output  string
	Rules   *rules.File
}

func kindsConfigFrom(c *cli.Context) (KindsConfig, error) {
	if err := argsNone(c); err != nil {
		return KindsConfig{}, err
	}
	output, err := parseOutput(c.String("output"), outputTable, outputWide, outputJSON, outputYAML)
	if err != nil {
		return KindsConfig{}, err
	}
	conn, err := connectionFrom(c)
	if err != nil {
		return KindsConfig{}, err
	}
	contexts, err := contextsFrom(c)
	if err != nil {
		return KindsConfig{}, err
	}
	file, err := loadRules(c)
	if err != nil {
		return KindsConfig{}, err
	}
	targets, err := contexts.targets(conn)
	if err != nil {
		return KindsConfig{}, err
	}
	return KindsConfig{Targets: targets, Several: contexts.Several(), Output: output, Rules: file}, nil
}

func kindsAction(c *cli.Context) error {
	cfg, err := kindsConfigFrom(c)
	if err != nil {
		return err
	}
	kindsOf := func(ctx context.Context, t Target, stderr io.Writer) (*KindsDocument, error) {
		clients, err := t.Connect()
		if err != nil {
			return nil, err
		}
		found, err := discover(ctx, clients, stderr, cfg.Rules)
		if err != nil {
			return nil, err
		}
		return newKindsDocument(found), nil
	}
	if !cfg.Several {
		doc, err := kindsOf(c.Context, cfg.Targets[0], c.App.ErrWriter)
		if err != nil {
			return err
		}
		return printKinds(c.App.Writer, cfg.Output, *doc)
	}
	results := eachCluster(c.Context, cfg.Targets, c.App.ErrWriter, kindsOf)
	if err := printMultiKinds(c.App.Writer, cfg.Output, results); err != nil {
		return err
	}
	outcomes := make([]clusterOutcome, len(results))
	for i, r := range results {
		outcomes[i] = clusterOutcome{context: r.Context, err: r.err}
	}
	return worstOutcome(outcomes)
}

// KindsDocument is the machine-readable form of `relabel kinds`.
type KindsDocument struct {
	APIVersion string              `json:"apiVersion"`
	Kind       string              `json:"kind"`
	Kinds      []rules.Kind        `json:"kinds"`
	Skipped    []discovery.Skipped `json:"skipped"`
	Warnings   []string            `json:"warnings,omitempty"`
}

func newKindsDocument(found *discovery.Result) *KindsDocument {
	return &KindsDocument{
		APIVersion: SchemaVersion, Kind: "Kinds",
		Kinds: found.Workloads, Skipped: found.Skipped, Warnings: found.Warnings,
	}
}

// MultiClusterKinds is the machine-readable form of `relabel kinds` over
// several contexts: each cluster's Kinds document, or its error.
type MultiClusterKinds struct {
	APIVersion string                         `json:"apiVersion"`
	Kind       string                         `json:"kind"`
	Clusters   []ClusterResult[KindsDocument] `json:"clusters"`
}

func printMultiKinds(w io.Writer, format string, results []ClusterResult[KindsDocument]) error {
	if format == outputJSON || format == outputYAML {
		return printDocument(w, format, MultiClusterKinds{APIVersion: SchemaVersion, Kind: "MultiClusterKinds", Clusters: results})
	}
	for i, r := range results {
		sectionHeader(w, i == 0, r.Context, r.Server)
		if r.Report == nil {
			fmt.Fprintln(w, "error:", r.Error)
			continue
		}
		if err := printKinds(w, format, *r.Report); err != nil {
			return err
		}
	}
	return nil
}

func printKinds(w io.Writer, format string, doc KindsDocument) error {
	if format == outputJSON || format == outputYAML {
		return printDocument(w, format, doc)
	}
	wide := format == outputWide
	headers := []string{"GVR", "KIND", "NAMESPACED", "STRATEGY"}
	if wide {
		headers = append(headers, "SELECTOR", "TEMPLATE LABELS", "READINESS", "SOURCE")
	}
	t := newTable(w, headers...)
	for _, k := range doc.Kinds {
		cells := []string{k.GVRString(), k.Kind, fmt.Sprint(k.Namespaced), string(k.Strategy)}
		if wide {
			cells = append(cells, string(k.SelectorPath), string(k.TemplateLabelsPath), readiness(k), k.Source)
		}
		t.row(cells...)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(doc.Skipped) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	t = newTable(w, "SKIPPED", "KIND", "REASON")
	for _, s := range doc.Skipped {
		t.row(s.GVR, s.Kind, s.Reason)
	}
	return t.flush()
}

// readiness names a kind's readiness rule on one line.
func readiness(k rules.Kind) string {
	if k.Readiness == "" {
		return "none: give it a rule"
	}
	return strings.Join(strings.Fields(k.Readiness), " ")
}

// discover reads the cluster's workload kinds, with those of the rules file,
// and prints partial-discovery warnings.
func discover(ctx context.Context, clients *Clients, stderr io.Writer, file *rules.File) (*discovery.Result, error) {
	d := discovery.Discoverer{Resources: clients.Discovery, Dynamic: clients.Dynamic}
	if file != nil {
		d.Extra = file.Kinds
	}
	found, err := d.Discover(ctx)
	if apierrors.IsUnauthorized(err) {
		return nil, fmt.Errorf("cluster %s: the credentials were refused (an expired token?): %w", clients.Host, err)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", clients.Host, err)
	}
	for _, w := range found.Warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	return found, nil
}

// connectAndSelect builds the clients, discovers the workload kinds (with the
// rules file's) and resolves the --gvr values.
func connectAndSelect(ctx context.Context, conn Connection, stderr io.Writer, file *rules.File, gvrs []string) (*Clients, []rules.Kind, error) {
	clients, err := conn.Connect()
	if err != nil {
		return nil, nil, err
	}
	found, err := discover(ctx, clients, stderr, file)
	if err != nil {
		return nil, nil, err
	}
	kinds, err := selectKinds(found, gvrs)
	if err != nil {
		return nil, nil, err
	}
	return clients, kinds, nil
}

// selectKinds resolves the --gvr values, or takes every discovered workload kind.
func selectKinds(found *discovery.Result, gvrs []string) ([]rules.Kind, error) {
	if len(gvrs) == 0 {
		return found.Workloads, nil
	}
	var kinds []rules.Kind
	seen := map[string]bool{}
	for _, arg := range gvrs {
		k, err := found.Resolve(arg)
		if err != nil {
			if errors.Is(err, discovery.ErrUnknownResource) || errors.Is(err, discovery.ErrNotWorkload) {
				return nil, UsageError{Err: err}
			}
			return nil, err
		}
		if !seen[k.GVRString()] {
			seen[k.GVRString()] = true
			kinds = append(kinds, k)
		}
	}
	return kinds, nil
}
