package cli

import (
	"encoding/json"
	"fmt"
	"io"
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
)

func parseOutput(s string) (string, error) {
	switch s {
	case "", outputTable:
		return outputTable, nil
	case outputWide, outputJSON, outputYAML:
		return s, nil
	}
	return "", usageErrorf("--output %q: want table, wide, json or yaml", s)
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
