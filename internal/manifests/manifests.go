// Package manifests adds relabel's label to workloads as they are written in
// Git: YAML files, kustomize bases and Helm charts. It edits the original
// bytes (comments, key order, quoting and indentation stay as they are) and
// only ever adds lines or text; what it cannot prove safe it reports.
// Everything here is bytes in, bytes out; files.go reads and writes files.
package manifests

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"relabel.dev/relabel/rules"
)

// Options say which label goes where, as for a migration.
type Options struct {
	// Label is given to workloads no rule matches; an empty Key gives none.
	Label rules.Label
	// Rules add or override kinds and pick a label per set of objects.
	Rules *rules.File
}

// kind finds the facts for apiVersion and kind: the rules file's first, as a
// migration does.
func (o Options) kind(apiVersion, kind string) (rules.Kind, bool) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return rules.Kind{}, false
	}
	gk := schema.GroupKind{Group: gv.Group, Kind: kind}
	if o.Rules != nil {
		for _, k := range o.Rules.Kinds {
			if k.GroupKind() == gk {
				return k, true
			}
		}
	}
	return rules.Builtin(gk)
}

// labelFor is the label obj gets: its rule's, else the default; false when
// neither gives one.
func (o Options) labelFor(kind rules.Kind, obj *unstructured.Unstructured) (rules.Label, bool, error) {
	if o.Rules != nil {
		if rule, ok := o.Rules.Match(kind, obj); ok {
			l, err := rule.LabelFor(obj)
			return l, err == nil, err
		}
	}
	return o.Label, o.Label.Key != "", nil
}

// Workload is one workload found in the manifests.
type Workload struct {
	File      string      `json:"file"`
	Line      int         `json:"line"`
	Kind      string      `json:"kind"`
	Namespace string      `json:"namespace,omitempty"`
	Name      string      `json:"name"`
	Label     rules.Label `json:"label"`
	// Lacking: some place (selector, template, labels) lacks the label.
	Lacking bool `json:"lacking"`
}

// Ref is NAMESPACE/NAME, with "-" for a manifest that names no namespace.
func (w Workload) Ref() string {
	ns := w.Namespace
	if ns == "" {
		ns = "-"
	}
	return ns + "/" + w.Name
}

// Note is something the user must know or do by hand.
type Note struct {
	File string `json:"file"`
	Line int    `json:"line,omitempty"`
	Msg  string `json:"message"`
}

func (n Note) String() string {
	if n.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", n.File, n.Line, n.Msg)
	}
	return fmt.Sprintf("%s: %s", n.File, n.Msg)
}

// Result is what happens to one file.
type Result struct {
	Path      string
	Old, New  []byte
	Workloads []Workload
	Notes     []Note
	diff      []diffLine
}

// Changed says whether the file gets new content.
func (r *Result) Changed() bool { return string(r.Old) != string(r.New) }

// Diff is the unified diff of the change, empty when there is none.
func (r *Result) Diff() string {
	if !r.Changed() {
		return ""
	}
	return unifiedDiff(r.Path, r.diff)
}

// Added counts the lines the change adds.
func (r *Result) Added() int {
	n := 0
	for _, d := range r.diff {
		if d.op == '+' {
			n++
		}
	}
	for _, d := range r.diff {
		if d.op == '-' {
			n--
		}
	}
	return n
}

func (r *Result) apply(edits []edit) {
	r.New, r.diff = apply(splitLines(r.Old), edits)
}

// ErrParse marks input that is not what it claims to be: YAML that does not
// parse, a template whose structure cannot be read.
var ErrParse = errors.New("cannot parse")

// ErrConflict marks a key already present with another value.
var ErrConflict = errors.New("has the key with another value")

// ErrUnsafe marks a workload whose labels come from where relabel cannot
// prove an edit safe; the error says what to change by hand.
var ErrUnsafe = errors.New("cannot rewrite safely")

// posError names the file and line of a problem.
type posError struct {
	file string
	line int
	err  error
}

func (e *posError) Error() string { return fmt.Sprintf("%s:%d: %v", e.file, e.line, e.err) }
func (e *posError) Unwrap() error { return e.err }

func errAt(file string, line int, kind error, format string, args ...any) error {
	return &posError{file: file, line: max(line, 1), err: fmt.Errorf("%w: %s", kind, fmt.Sprintf(format, args...))}
}

// renderEntry writes "key: value" as YAML, quoting what needs it; quote is
// the style of the map's other values, kept for the new one.
func renderEntry(key, value string, quote byte) string {
	return renderScalar(key, 0) + ": " + renderScalar(value, quote)
}

func renderScalar(s string, quote byte) string {
	switch quote {
	case '"':
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
	case '\'':
		return "'" + strings.ReplaceAll(s, "'", "''") + "'"
	}
	if plainSafe(s) {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
