package manifests

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"

	"relabel.dev/relabel/rules"
	workload "relabel.dev/relabel/unstructured"
)

// YAML adds the label to every workload in one file of YAML documents. The
// YAML parser only locates the mappings; the new entries are inserted into
// the original bytes.
func YAML(path string, data []byte, opts Options) (*Result, error) {
	r := &Result{Path: path, Old: data}
	lines := splitLines(data)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var edits []edit
	var errs []error
	done := map[target]bool{} // maps edited already (anchors)
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, parseError(path, err)
		}
		if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
			continue
		}
		if k, items := lookup(doc.Content[0], "items"); k != nil && items.Kind == yaml.SequenceNode {
			r.Notes = append(r.Notes, Note{File: path, Line: k.Line, Msg: "the items of a List are not rewritten: add the label to them by hand"})
			continue
		}
		w, e, err := documentEdits(path, lines, doc.Content[0], opts, done)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if w != nil {
			r.Workloads = append(r.Workloads, *w)
			edits = append(edits, e...)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	r.apply(edits)
	return r, nil
}

var yamlLine = regexp.MustCompile(`line (\d+): `)

func parseError(path string, err error) error {
	line := 1
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = strings.Replace(msg, m[0], "", 1)
	}
	return errAt(path, line, ErrParse, "%s", msg)
}

// documentEdits finds the edits for one document; nil when it is no
// workload of a known kind or gets no label.
func documentEdits(path string, lines []string, root *yaml.Node, opts Options, done map[target]bool) (*Workload, []edit, error) {
	_, apiVersion := lookup(root, "apiVersion")
	_, kindNode := lookup(root, "kind")
	if apiVersion == nil || kindNode == nil || apiVersion.Kind != yaml.ScalarNode || kindNode.Kind != yaml.ScalarNode {
		return nil, nil, nil
	}
	kind, ok := opts.kind(apiVersion.Value, kindNode.Value)
	if !ok {
		return nil, nil, nil
	}
	obj, err := toUnstructured(root)
	if err != nil {
		return nil, nil, errAt(path, root.Line, ErrParse, "%s: %v", kindNode.Value, err)
	}
	w := &Workload{File: path, Line: kindNode.Line, Kind: kind.Kind, Namespace: obj.GetNamespace(), Name: obj.GetName()}
	label, ok, err := opts.labelFor(kind, obj)
	if err != nil {
		return nil, nil, errAt(path, w.Line, ErrUnsafe, "%v", err)
	}
	if !ok {
		return nil, nil, nil
	}
	w.Label = label
	var edits []edit
	var errs []error
	for _, p := range placesOf(kind) {
		e, err := addToMap(path, lines, root, p, label, done)
		if err != nil {
			errs = append(errs, err)
		}
		edits = append(edits, e...)
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	// What the cluster refuses (matchExpressions that exclude the value), refused here.
	if err := workload.AddLabel(obj.DeepCopy(), kind, label); err != nil {
		return nil, nil, &posError{file: path, line: w.Line, err: err}
	}
	w.Lacking = len(edits) > 0
	return w, edits, nil
}

// placesOf lists the label maps relabel changes on the cluster, as paths.
func placesOf(kind rules.Kind) [][]string {
	out := [][]string{
		append(kind.SelectorPath.Fields(), "matchLabels"),
		kind.TemplateLabelsPath.Fields(),
		{"metadata", "labels"},
	}
	for _, p := range kind.ExtraLabelPaths {
		out = append(out, p.Fields())
	}
	return out
}

// toUnstructured decodes the document the way the API server would see it
// (integers as int64), for the rules and the label checks.
func toUnstructured(root *yaml.Node) (*unstructured.Unstructured, error) {
	var v any
	if err := root.Decode(&v); err != nil {
		return nil, err
	}
	js, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := utiljson.Unmarshal(js, &m); err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: m}, nil
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// lookup finds key in mapping m.
func lookup(m *yaml.Node, key string) (k, v *yaml.Node) {
	m = resolve(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i], resolve(m.Content[i+1])
		}
	}
	return nil, nil
}

// addToMap makes the string map at fields hold key=value: nothing when it
// does, a conflict when it has another value, else the edits that add it
// (creating the map and its missing parents).
func addToMap(path string, lines []string, root *yaml.Node, fields []string, l rules.Label, done map[target]bool) ([]edit, error) {
	where := strings.Join(fields, ".")
	parent, parentKey := root, (*yaml.Node)(nil)
	for i, f := range fields {
		k, v := lookup(parent, f)
		if k == nil {
			return createIn(path, lines, parent, parentKey, fields[i:], l, done)
		}
		if hasMerge(parent) {
			return nil, errAt(path, parent.Line, ErrUnsafe, "%s: a merge key (<<) makes the result unclear; add %s by hand", where, l)
		}
		if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
			if v.Value != "" {
				return nil, errAt(path, k.Line, ErrUnsafe, "%s is %s; replace it with a map holding %s by hand", strings.Join(fields[:i+1], "."), v.Value, l)
			}
			// "labels:" with nothing after: the entries go on the next lines.
			return createUnderNull(path, lines, k, fields[i+1:], l)
		}
		if v.Kind != yaml.MappingNode {
			return nil, errAt(path, k.Line, ErrParse, "%s is not a map", strings.Join(fields[:i+1], "."))
		}
		parent, parentKey = v, k
	}
	// parent is the map itself.
	if hasMerge(parent) {
		return nil, errAt(path, parent.Line, ErrUnsafe, "%s: a merge key (<<) makes the result unclear; add %s by hand", where, l)
	}
	if k, v := lookup(parent, l.Key); k != nil {
		if v.Kind != yaml.ScalarNode {
			return nil, errAt(path, k.Line, ErrParse, "%s.%s is not a string", where, l.Key)
		}
		if v.Value != l.Value {
			return nil, errAt(path, k.Line, ErrConflict, "%s has %s=%s, not %s", where, l.Key, v.Value, l.Value)
		}
		return nil, nil
	}
	t := target{node: parent}
	if done[t] {
		return nil, nil // the same anchored map, edited already
	}
	done[t] = true
	return insertEntries(path, lines, parent, parentKey, nil, l)
}

// target is a map to edit: node itself, or the keys missing under it.
type target struct {
	node    *yaml.Node
	missing string
}

func hasMerge(m *yaml.Node) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Tag == "!!merge" {
			return true
		}
	}
	return false
}

// createIn adds the missing keys (the last one a map holding the label) to
// mapping m.
func createIn(path string, lines []string, m, mKey *yaml.Node, missing []string, l rules.Label, done map[target]bool) ([]edit, error) {
	t := target{m, strings.Join(missing, ".")}
	if done[t] {
		return nil, nil
	}
	done[t] = true
	return insertEntries(path, lines, m, mKey, missing, l)
}

// insertEntries adds to mapping m the entry l, nested under the keys in
// missing, block or flow as m is written.
func insertEntries(path string, lines []string, m, mKey *yaml.Node, missing []string, l rules.Label) ([]edit, error) {
	quote := quoteOf(m)
	if len(missing) > 0 {
		quote = 0
	}
	if m.Style&yaml.FlowStyle != 0 {
		text := renderEntry(l.Key, l.Value, quote)
		for i := len(missing) - 1; i >= 0; i-- {
			text = renderScalar(missing[i], 0) + ": {" + text + "}"
		}
		return flowInsert(path, lines, m, text)
	}
	if len(m.Content) == 0 {
		return nil, errAt(path, m.Line, ErrParse, "empty block map")
	}
	col := m.Content[0].Column - 1
	step := 2
	if mKey != nil && col > mKey.Column-1 {
		step = col - (mKey.Column - 1)
	}
	text := blockLines(col, step, missing, l, quote)
	// After the last entry that ends on its own line, else before the first.
	for i := len(m.Content) - 2; i >= 0; i -= 2 {
		k, v := m.Content[i], m.Content[i+1]
		if oneLine(lines, k, v) {
			return []edit{{line: k.Line, col: -1, text: text}}, nil
		}
	}
	first := m.Content[0]
	if strings.TrimSpace(lines[first.Line-1][:first.Column-1]) != "" {
		return nil, errAt(path, first.Line, ErrUnsafe, "cannot place %s next to %q; add it by hand", l, strings.TrimSpace(lines[first.Line-1]))
	}
	return []edit{{line: first.Line - 1, col: -1, text: text}}, nil
}

// blockLines renders the nested entries as lines at column col.
func blockLines(col, step int, missing []string, l rules.Label, quote byte) string {
	var b strings.Builder
	for i, key := range missing {
		b.WriteString(strings.Repeat(" ", col+i*step) + renderScalar(key, 0) + ":\n")
	}
	b.WriteString(strings.Repeat(" ", col+len(missing)*step) + renderEntry(l.Key, l.Value, quote) + "\n")
	return b.String()
}

// oneLine says whether the entry k: v is a scalar written on k's line alone.
func oneLine(lines []string, k, v *yaml.Node) bool {
	if v.Kind != yaml.ScalarNode || v.Line != k.Line || v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return false
	}
	if k.Line >= len(lines) {
		return true
	}
	// A plain or quoted scalar may go on over the next lines, indented deeper.
	next := lines[k.Line]
	trimmed := strings.TrimSpace(next)
	indent := len(next) - len(strings.TrimLeft(next, " "))
	return trimmed == "" || strings.HasPrefix(trimmed, "#") || indent <= k.Column-1
}

// createUnderNull fills "key:" (an empty value) with the missing maps.
func createUnderNull(path string, lines []string, k *yaml.Node, missing []string, l rules.Label) ([]edit, error) {
	line := lines[k.Line-1]
	if strings.Contains(line[k.Column-1:], "&") || strings.Contains(line[k.Column-1:], "!") {
		return nil, errAt(path, k.Line, ErrUnsafe, "%s has an anchor or tag and no value; add %s by hand", k.Value, l)
	}
	return []edit{{line: k.Line, col: -1, text: blockLines(k.Column-1+2, 2, missing, l, 0)}}, nil
}

func quoteOf(m *yaml.Node) byte {
	var q byte
	for i := 1; i < len(m.Content); i += 2 {
		var s byte
		switch m.Content[i].Style {
		case yaml.DoubleQuotedStyle:
			s = '"'
		case yaml.SingleQuotedStyle:
			s = '\''
		default:
			return 0
		}
		if q != 0 && q != s {
			return 0
		}
		q = s
	}
	return q
}

// flowInsert adds text as the last entry of the flow mapping m, which must
// close on the line it opens.
func flowInsert(path string, lines []string, m *yaml.Node, text string) ([]edit, error) {
	line := lines[m.Line-1]
	open := m.Column - 1
	if open >= len(line) || line[open] != '{' {
		return nil, errAt(path, m.Line, ErrParse, "flow map does not start with {")
	}
	end, ok := closingBrace(line, open)
	if !ok {
		return nil, errAt(path, m.Line, ErrUnsafe, "a flow map over several lines; add %s by hand", text)
	}
	if len(m.Content) > 0 {
		text = ", " + text
		// Keep the spacing the map uses inside its braces ("{ a: b }").
		for end > open+1 && line[end-1] == ' ' {
			end--
		}
	}
	return []edit{{line: m.Line - 1, col: end, text: text}}, nil
}

// closingBrace finds the } that closes the { at open, skipping quoted text.
func closingBrace(line string, open int) (int, bool) {
	depth := 0
	for i := open; i < len(line); i++ {
		switch line[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return i, true
			}
		case '"':
			for i++; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' {
					i++
				}
			}
		case '\'':
			for i++; i < len(line) && line[i] != '\''; i++ {
			}
		case '#':
			if i > 0 && line[i-1] == ' ' {
				return 0, false
			}
		}
	}
	return 0, false
}

// plainSafe says whether s reads back as the same string unquoted.
func plainSafe(s string) bool {
	out, err := yaml.Marshal(&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s})
	return err == nil && string(out) == s+"\n"
}
