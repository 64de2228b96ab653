package manifests

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"

	"relabel.dev/relabel/rules"
)

// Helm templates are not YAML: they are read line by line, by indentation.
// A label map is rewritten only where it is literal "key: value" lines, or
// where it comes from an include of a named template whose body is such
// lines; everything else is reported with what to change by hand.

var (
	keyLine    = regexp.MustCompile(`^( *)([A-Za-z0-9_./"'-]+): *(.*)$`)
	defineOpen = regexp.MustCompile(`\{\{-?\s*define\s+"([^"]+)"\s*-?\}\}`)
	includeRe  = regexp.MustCompile(`\b(?:include|template)\s+"([^"]+)"`)
	valuesRe   = regexp.MustCompile(`\.Values((?:\.[A-Za-z0-9_]+)+)`)
	blockOpen  = regexp.MustCompile(`\{\{-?\s*(if|range|with|define|block)\b`)
	blockEnd   = regexp.MustCompile(`\{\{-?\s*end\b`)
)

// define is a named template: its body lines, [start, end) of its file.
type define struct {
	name, file string
	start, end int // body lines, 0-based; end is the {{ end }} line
	body       block
	literal    bool // the body is "key: value" lines only
}

// block is a label map in a template: its literal entries, and the
// template actions that add more.
type block struct {
	entries map[string]entry
	order   []string
	actions []action
	indent  int // the entries' indentation; -1 when none
	last    int // the line after which an entry is added; -1: before first
	start   int // the first line of the block's content
}

type entry struct {
	value     string
	templated bool
	line      int
}

type action struct {
	line int
	text string
}

func (a action) includes() []string {
	var out []string
	for _, m := range includeRe.FindAllStringSubmatch(a.text, -1) {
		out = append(out, m[1])
	}
	return out
}

// chart is a chart's files and named templates.
type chart struct {
	dir     string
	files   map[string][]string // templates/..., lines
	names   []string
	defines map[string]*define
}

// Chart adds the label to the workloads of the Helm chart in fsys (the
// chart's directory, named dir in messages).
func Chart(fsys fs.FS, dir string, opts Options) ([]*Result, []Note, error) {
	c := &chart{dir: dir, files: map[string][]string{}, defines: map[string]*define{}}
	err := fs.WalkDir(fsys, "templates", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		ext := path.Ext(p)
		if d.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".tpl") {
			return nil
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		c.files[p] = splitLines(data)
		c.names = append(c.names, p)
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("reading chart %s: %w", dir, err)
	}
	sort.Strings(c.names)
	for _, name := range c.names {
		if err := c.readDefines(name); err != nil {
			return nil, nil, err
		}
	}
	edits := map[string][]edit{}
	var workloads = map[string][]Workload{}
	var notes []Note
	var errs []error
	chosen := map[string]bool{}
	for _, name := range c.names {
		if strings.HasPrefix(path.Base(name), "_") || path.Ext(name) == ".tpl" {
			continue
		}
		for _, doc := range documents(c.files[name]) {
			w, e, n, err := c.workload(name, doc, opts, chosen)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if w != nil {
				workloads[name] = append(workloads[name], *w)
			}
			edits[name] = append(edits[name], e...)
			notes = append(notes, n...)
		}
	}
	if len(errs) > 0 {
		return nil, notes, errors.Join(errs...)
	}
	for _, name := range sortedKeys(chosen) {
		d := c.defines[name]
		e, n := c.rewriteDefine(d, opts)
		edits[d.file] = append(edits[d.file], e...)
		notes = append(notes, n)
	}
	var results []*Result
	for _, name := range c.names {
		if len(edits[name]) == 0 && len(workloads[name]) == 0 {
			continue
		}
		r := &Result{Path: path.Join(dir, name), Old: []byte(strings.Join(c.files[name], "")), Workloads: workloads[name]}
		r.apply(edits[name])
		results = append(results, r)
	}
	return results, notes, nil
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (c *chart) at(file string, line int) string {
	return fmt.Sprintf("%s:%d", path.Join(c.dir, file), line+1)
}

// readDefines finds the named templates of a file and their ends, counting
// the blocks opened inside them.
func (c *chart) readDefines(file string) error {
	lines := c.files[file]
	for i := 0; i < len(lines); i++ {
		m := defineOpen.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		depth, end := 0, -1
		for j := i; j < len(lines) && end < 0; j++ {
			depth += len(blockOpen.FindAllString(lines[j], -1))
			depth -= len(blockEnd.FindAllString(lines[j], -1))
			if depth == 0 {
				end = j
			}
		}
		if end < 0 {
			return errAt(path.Join(c.dir, file), i+1, ErrParse, "define %q has no end", m[1])
		}
		if end == i {
			continue // a one-line define: not rewritten
		}
		d := &define{name: m[1], file: file, start: i + 1, end: end}
		d.body = readBlock(lines, d.start, d.end, -1)
		d.literal = len(d.body.actions) == 0 && !strings.Contains(strings.TrimSpace(lines[end]), "}}{{")
		c.defines[d.name] = d
		i = end
	}
	return nil
}

// documents splits a template into its YAML documents, [start, end).
func documents(lines []string) [][2]int {
	var out [][2]int
	start := 0
	for i, l := range lines {
		if strings.HasPrefix(l, "---") {
			out = append(out, [2]int{start, i})
			start = i + 1
		}
	}
	return append(out, [2]int{start, len(lines)})
}

func isAction(l string) bool { return strings.HasPrefix(strings.TrimSpace(l), "{{") }

func isBlank(l string) bool {
	t := strings.TrimSpace(l)
	return t == "" || strings.HasPrefix(t, "#")
}

func indentOf(l string) int { return len(l) - len(strings.TrimLeft(l, " ")) }

// readBlock reads lines [start, end) as a label map deeper than parent.
func readBlock(lines []string, start, end, parent int) block {
	b := block{entries: map[string]entry{}, indent: -1, last: -1, start: start}
	for i := start; i < end; i++ {
		l := strings.TrimRight(lines[i], "\r\n")
		switch {
		case isBlank(l):
		case isAction(l):
			b.actions = append(b.actions, action{line: i, text: l})
		default:
			m := keyLine.FindStringSubmatch(l)
			if m == nil || len(m[1]) <= parent {
				b.actions = append(b.actions, action{line: i, text: l})
				continue
			}
			if b.indent < 0 {
				b.indent = len(m[1])
			}
			key := strings.Trim(m[2], `"'`)
			value := stripComment(m[3])
			b.entries[key] = entry{value: strings.Trim(value, `"'`), templated: strings.Contains(value, "{{"), line: i}
			b.order = append(b.order, key)
			b.last = i
		}
	}
	return b
}

func stripComment(v string) string {
	if i := strings.Index(v, " #"); i >= 0 && !strings.Contains(v, "{{") {
		v = v[:i]
	}
	return strings.TrimSpace(v)
}

// find locates the key at fields inside lines [start, end): the key's line
// and the end of its block, or how many fields were found.
func find(lines []string, start, end int, fields []string) (keyAt, blockEnd, found int) {
	parent := -1
	keyAt = -1
	for f, field := range fields {
		at := -1
		child := -1
		for i := start; i < end; i++ {
			l := lines[i]
			if isBlank(l) || isAction(l) {
				continue
			}
			n := indentOf(l)
			if n <= parent {
				break
			}
			if child < 0 {
				child = n
			}
			if n != child {
				continue
			}
			if m := keyLine.FindStringSubmatch(strings.TrimRight(l, "\r\n")); m != nil && strings.Trim(m[2], `"'`) == field {
				at = i
				break
			}
		}
		if at < 0 {
			return keyAt, end, f
		}
		keyAt, parent = at, indentOf(lines[at])
		// The key's block ends at the next line as shallow as the key.
		start, end = at+1, blockEndAt(lines, at+1, end, parent)
	}
	return keyAt, end, len(fields)
}

func blockEndAt(lines []string, start, end, indent int) int {
	for i := start; i < end; i++ {
		if !isBlank(lines[i]) && !isAction(lines[i]) && indentOf(lines[i]) <= indent {
			return i
		}
	}
	return end
}

// topValue reads a top-level key's literal value in the document.
func topValue(lines []string, doc [2]int, key string) (string, int) {
	for i := doc[0]; i < doc[1]; i++ {
		if m := keyLine.FindStringSubmatch(strings.TrimRight(lines[i], "\r\n")); m != nil && m[1] == "" && m[2] == key {
			return strings.Trim(stripComment(m[3]), `"'`), i
		}
	}
	return "", -1
}

// place is one label map of a workload in a template.
type place struct {
	fields []string
	key    int // the line of its key
	b      block
	inline string // a value on the key's line
}

// workload finds the edits for one document of a template, and the named
// templates to rewrite (into chosen).
func (c *chart) workload(file string, doc [2]int, opts Options, chosen map[string]bool) (*Workload, []edit, []Note, error) {
	lines := c.files[file]
	apiVersion, _ := topValue(lines, doc, "apiVersion")
	kindName, kindLine := topValue(lines, doc, "kind")
	kind, ok := opts.kind(apiVersion, kindName)
	if !ok || strings.Contains(apiVersion+kindName, "{{") {
		return nil, nil, nil, nil
	}
	label := opts.Label
	if opts.Rules != nil && len(opts.Rules.Rules) > 0 {
		// Rules match on namespaces and labels a template does not know.
		return nil, nil, nil, errAt(path.Join(c.dir, file), kindLine+1, ErrUnsafe, "rules cannot be matched against a Helm template; use --label")
	}
	if label.Key == "" {
		return nil, nil, nil, nil
	}
	w := &Workload{File: path.Join(c.dir, file), Line: kindLine + 1, Kind: kind.Kind, Label: label}
	if at, _, n := find(lines, doc[0], doc[1], []string{"metadata", "name"}); n == 2 {
		m := keyLine.FindStringSubmatch(strings.TrimRight(lines[at], "\r\n"))
		w.Name = stripComment(m[3])
	}
	if at, _, n := find(lines, doc[0], doc[1], []string{"metadata", "namespace"}); n == 2 {
		m := keyLine.FindStringSubmatch(strings.TrimRight(lines[at], "\r\n"))
		w.Namespace = stripComment(m[3])
	}
	var places []place
	for _, fields := range placesOf(kind) {
		at, end, n := find(lines, doc[0], doc[1], fields)
		if n < len(fields) {
			line := doc[0]
			if at >= 0 {
				line = at
			}
			return nil, nil, nil, errAt(path.Join(c.dir, file), line+1, ErrUnsafe, "%s %s has no literal %s; add %s there by hand", kind.Kind, w.Name, strings.Join(fields, "."), label)
		}
		m := keyLine.FindStringSubmatch(strings.TrimRight(lines[at], "\r\n"))
		p := place{fields: fields, key: at, inline: stripComment(m[3])}
		if p.inline == "" {
			p.b = readBlock(lines, at+1, end, indentOf(lines[at]))
		} else {
			p.b = block{entries: map[string]entry{}, indent: -1, last: -1}
			p.b.actions = []action{{line: at, text: p.inline}}
		}
		places = append(places, p)
	}
	var edits []edit
	var errs []error
	var lacking []place
	for _, p := range places {
		present, err := c.present(file, p, label)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !present {
			lacking = append(lacking, p)
		}
	}
	for _, p := range lacking {
		if c.coveredBy(p, chosen) {
			continue
		}
		if len(p.b.actions) == 0 && p.b.indent >= 0 {
			edits = append(edits, edit{line: p.b.last + 1, col: -1, text: strings.Repeat(" ", p.b.indent) + renderEntry(label.Key, label.Value, 0) + "\n"})
			continue
		}
		if d := c.literalDefine(p); d != nil {
			chosen[d.name] = true
			continue
		}
		errs = append(errs, c.unsafe(file, p, label))
	}
	if len(errs) > 0 {
		return nil, nil, nil, joinUnique(errs)
	}
	w.Lacking = len(lacking) > 0
	return w, edits, nil, nil
}

// present says whether the place has the label already, literally or
// through the named templates it includes.
func (c *chart) present(file string, p place, l rules.Label) (bool, error) {
	if e, ok := p.b.entries[l.Key]; ok {
		return c.check(file, e, strings.Join(p.fields, "."), l)
	}
	for _, name := range c.reachable(p.b.actions) {
		d := c.defines[name]
		if e, ok := d.body.entries[l.Key]; ok {
			return c.check(d.file, e, "define "+name, l)
		}
	}
	return false, nil
}

func (c *chart) check(file string, e entry, where string, l rules.Label) (bool, error) {
	switch {
	case e.templated:
		return false, errAt(path.Join(c.dir, file), e.line+1, ErrUnsafe, "%s sets %s from a template: make sure it renders %s", where, l.Key, l.Value)
	case e.value != l.Value:
		return false, errAt(path.Join(c.dir, file), e.line+1, ErrConflict, "%s has %s=%s, not %s", where, l.Key, e.value, l.Value)
	}
	return true, nil
}

// reachable lists the named templates the actions include, directly or
// through other named templates, in order.
func (c *chart) reachable(actions []action) []string {
	var out []string
	seen := map[string]bool{}
	var visit func([]action)
	visit = func(as []action) {
		for _, a := range as {
			for _, name := range a.includes() {
				d, ok := c.defines[name]
				if !ok || seen[name] {
					continue
				}
				seen[name] = true
				out = append(out, name)
				visit(d.body.actions)
			}
		}
	}
	visit(actions)
	return out
}

func (c *chart) coveredBy(p place, chosen map[string]bool) bool {
	for _, name := range c.reachable(p.b.actions) {
		if chosen[name] {
			return true
		}
	}
	return false
}

// literalDefine is the first plain named template the place includes.
func (c *chart) literalDefine(p place) *define {
	for _, name := range c.reachable(p.b.actions) {
		if d := c.defines[name]; d.literal && d.body.indent == 0 {
			return d
		}
	}
	return nil
}

// unsafe says what the user must change for a place relabel cannot edit.
func (c *chart) unsafe(file string, p place, l rules.Label) error {
	where := strings.Join(p.fields, ".")
	for _, a := range p.b.actions {
		if m := valuesRe.FindStringSubmatch(a.text); m != nil {
			key := strings.TrimPrefix(m[1], ".")
			return errAt(path.Join(c.dir, file), a.line+1, ErrUnsafe, "%s comes from the values: set %s.%s: %q in values.yaml (and every values file you install with)", where, key, l.Key, l.Value)
		}
	}
	for _, name := range c.reachable(p.b.actions) {
		d := c.defines[name]
		return errAt(path.Join(c.dir, d.file), d.start, ErrUnsafe, "%s of %s comes from define %q, which is not plain key: value lines; add %s: %s to it by hand", where, c.at(file, p.key), name, l.Key, l.Value)
	}
	line := p.key
	if len(p.b.actions) > 0 {
		line = p.b.actions[0].line
	}
	return errAt(path.Join(c.dir, file), line+1, ErrUnsafe, "%s is built by a template action relabel cannot follow; add %s to it by hand", where, l)
}

// rewriteDefine adds the label as the define's last line and says where
// that reaches.
func (c *chart) rewriteDefine(d *define, opts Options) ([]edit, Note) {
	line := d.body.last + 1
	if d.body.last < 0 {
		line = d.end
	}
	e := edit{line: line, col: -1, text: renderEntry(opts.Label.Key, opts.Label.Value, 0) + "\n"}
	var users []string
	for _, name := range c.names {
		for i, l := range c.files[name] {
			for _, m := range includeRe.FindAllStringSubmatch(l, -1) {
				if m[1] == d.name || c.includesDefine(m[1], d.name) {
					users = append(users, c.at(name, i))
				}
			}
		}
	}
	msg := fmt.Sprintf("adds %s to define %q: it reaches the selector and the pod template labels together, and every other place that includes it: %s", opts.Label, d.name, strings.Join(users, ", "))
	return []edit{e}, Note{File: path.Join(c.dir, d.file), Line: d.start, Msg: msg}
}

// includesDefine says whether named template from includes target.
func (c *chart) includesDefine(from, target string) bool {
	d, ok := c.defines[from]
	if !ok {
		return false
	}
	for _, name := range c.reachable(d.body.actions) {
		if name == target {
			return true
		}
	}
	return false
}

// joinUnique joins errors, once each: places sharing a named template share
// its problem.
func joinUnique(errs []error) error {
	var out []error
	seen := map[string]bool{}
	for _, err := range errs {
		if !seen[err.Error()] {
			seen[err.Error()] = true
			out = append(out, err)
		}
	}
	return errors.Join(out...)
}
