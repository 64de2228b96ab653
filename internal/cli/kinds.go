package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"relabel.dev/relabel/discovery"
	"relabel.dev/relabel/rules"
)

func kindsCommand() *cli.Command {
	return &cli.Command{
		Name:      "kinds",
		Usage:     "list the workload kinds whose selector relabel can migrate",
		UsageText: "relabel kinds [-o table|json|yaml]",
		Flags: append(connectionFlags(),
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: outputTable, Usage: "table, json or yaml (which loads as a rules file)"},
			rulesFlag(),
		),
		Action: func(c *cli.Context) error {
			if err := argsNone(c); err != nil {
				return err
			}
			format, err := parseOutput(c.String("output"), outputTable, outputJSON, outputYAML)
			if err != nil {
				return err
			}
			conn, err := connectionFrom(c)
			if err != nil {
				return err
			}
			file, err := loadRules(c)
			if err != nil {
				return err
			}
			clients, err := conn.Connect()
			if err != nil {
				return err
			}
			found, err := discover(c.Context, clients, c.App.ErrWriter, file)
			if err != nil {
				return err
			}
			return printKinds(c.App.Writer, format, found)
		},
	}
}

// KindsDocument is the machine-readable form of `relabel kinds`.
type KindsDocument struct {
	APIVersion string              `json:"apiVersion"`
	Kind       string              `json:"kind"`
	Kinds      []rules.Kind        `json:"kinds"`
	Skipped    []discovery.Skipped `json:"skipped"`
	Warnings   []string            `json:"warnings,omitempty"`
}

func printKinds(w io.Writer, format string, found *discovery.Result) error {
	if format != outputTable {
		return printDocument(w, format, KindsDocument{
			APIVersion: SchemaVersion, Kind: "Kinds",
			Kinds: found.Workloads, Skipped: found.Skipped, Warnings: found.Warnings,
		})
	}
	t := newTable(w, "GVR", "KIND", "NAMESPACED", "SELECTOR", "TEMPLATE LABELS", "STRATEGY", "SOURCE")
	for _, k := range found.Workloads {
		t.row(k.GVRString(), k.Kind, fmt.Sprint(k.Namespaced), string(k.SelectorPath), string(k.TemplateLabelsPath), string(k.Strategy), k.Source)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(found.Skipped) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	t = newTable(w, "SKIPPED", "KIND", "REASON")
	for _, s := range found.Skipped {
		t.row(s.GVR, s.Kind, s.Reason)
	}
	return t.flush()
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
