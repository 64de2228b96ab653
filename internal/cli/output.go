package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"sigs.k8s.io/yaml"
)

// SchemaVersion is the apiVersion of every machine-readable document relabel prints.
const SchemaVersion = "relabel.dev/v1"

// Output formats.
const (
	outputTable = "table"
	// outputWide is the table with more columns, as in kubectl get -o wide.
	outputWide = "wide"
	outputJSON = "json"
	outputYAML = "yaml"
	outputHTML = "html"
)

// parseOutput checks s against the formats a command accepts; empty is table.
func parseOutput(s string, accepted ...string) (string, error) {
	if s == "" {
		s = outputTable
	}
	if slices.Contains(accepted, s) {
		return s, nil
	}
	want := accepted[len(accepted)-1]
	if len(accepted) > 1 {
		want = strings.Join(accepted[:len(accepted)-1], ", ") + " or " + want
	}
	return "", usageErrorf("--output %q: want %s", s, want)
}

// printDocument writes v as indented JSON or as YAML.
func printDocument(w io.Writer, format string, v any) error {
	if format == outputYAML {
		out, err := yaml.Marshal(v)
		if err != nil {
			return fmt.Errorf("encoding YAML: %w", err)
		}
		_, err = w.Write(out)
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table prints aligned columns the way kubectl get does.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, headers ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)}
	t.row(headers...)
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			cells[i] = "<none>"
		}
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }
