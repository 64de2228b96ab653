package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	sigsjson "sigs.k8s.io/json"
	sigsyaml "sigs.k8s.io/yaml"
)

// The rules file: apiVersion relabel.dev/v1, kind Rules. The output of
// `relabel kinds -o yaml` (kind Kinds) loads as one too.
const (
	FileAPIVersion = "relabel.dev/v1"
	FileKind       = "Rules"
	// FileKindKinds is the kind `relabel kinds -o json|yaml` prints.
	FileKindKinds = "Kinds"
	// DefaultMaxNameLength applies to a rules-file kind without maxNameLength.
	DefaultMaxNameLength = 63
	maxMaxNameLength     = 253
)

// File is a loaded and validated rules file.
type File struct {
	// Name is the file's name, as given to ParseFile or LoadFile.
	Name string `json:"-"`
	// Kinds are workload kinds discovery cannot recognise on its own, or
	// overrides of the built-in facts; their Source is "rules".
	Kinds []Kind `json:"kinds,omitempty"`
	// Rules say which label goes where; the first that matches wins.
	Rules []Rule `json:"rules,omitempty"`
}

// Rule picks a set of objects and says which label they get, and how.
type Rule struct {
	Name string `json:"name,omitempty"`
	// GVRs are group/version/resource, or version/resource for the core
	// group; empty matches every kind.
	GVRs []string `json:"gvrs,omitempty"`
	// Namespaces: empty matches every namespace.
	Namespaces []string `json:"namespaces,omitempty"`
	// Selector is a label selector on the object's own labels.
	Selector string    `json:"selector,omitempty"`
	Label    RuleLabel `json:"label"`
	// Strategy is auto, temp-copy or adopt; empty leaves the choice to the caller.
	Strategy Strategy `json:"strategy,omitempty"`

	// Parsed forms of GVRs and Selector, set by ParseFile.
	gvrs     []schema.GroupVersionResource
	selector labels.Selector
}

// RuleLabel is the label a rule adds: a fixed value, or the value of
// another label of the object (ValueFrom names its key).
type RuleLabel struct {
	Key       string  `json:"key"`
	Value     *string `json:"value,omitempty"`
	ValueFrom string  `json:"valueFrom,omitempty"`
}

// FieldError is one problem in a rules file, at a line and a field path
// such as kinds[0].selectorPath.
type FieldError struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Field, e.Msg)
}

// LoadFile reads and validates the rules file at path.
func LoadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading rules file: %w", err)
	}
	return ParseFile(path, data)
}

// document is the file as written; skipped and warnings, from `relabel
// kinds`, are accepted and ignored. Kinds and rules are decoded one by one,
// so that an error's field path has the index of its item.
type document struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Kinds      []json.RawMessage `json:"kinds"`
	Rules      []json.RawMessage `json:"rules"`
	Skipped    json.RawMessage   `json:"skipped"`
	Warnings   json.RawMessage   `json:"warnings"`
}

// ParseFile decodes a rules file (YAML or JSON) strictly and validates it.
// name is used in errors: each names the file, the line and the field, as
// "rules.yaml:7: kinds[0].selectorPath: must not be empty". Several problems
// are joined with newlines, in the order of their lines.
func ParseFile(name string, data []byte) (*File, error) {
	p := &parser{name: name}
	f, err := p.parse(data)
	if err != nil {
		return nil, err
	}
	if len(p.errs) > 0 {
		slices.SortStableFunc(p.errs, func(a, b *FieldError) int { return a.Line - b.Line })
		if len(p.errs) == 1 {
			return nil, p.errs[0]
		}
		errs := make([]error, len(p.errs))
		for i, e := range p.errs {
			errs[i] = e
		}
		return nil, errors.Join(errs...)
	}
	return f, nil
}

type parser struct {
	name string
	root *yaml.Node // the document's top node, for line numbers
	errs []*FieldError
}

// add records a problem at the line of path, or of its nearest ancestor
// present in the document.
func (p *parser) add(path, format string, args ...any) {
	msg := strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", " ")
	p.errs = append(p.errs, &FieldError{File: p.name, Line: lineOf(p.root, path), Field: path, Msg: msg})
}

var yamlLine = regexp.MustCompile(`line (\d+): `)

// yamlError turns a YAML parser's error into a FieldError at its line.
func (p *parser) yamlError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	line := 1
	if m := yamlLine.FindStringSubmatchIndex(msg); m != nil {
		line, _ = strconv.Atoi(msg[m[2]:m[3]])
		msg = msg[:m[0]] + msg[m[1]:]
	}
	return &FieldError{File: p.name, Line: line, Msg: strings.Join(strings.Fields(msg), " ")}
}

func (p *parser) parse(data []byte) (*File, error) {
	// YAMLToJSONStrict rejects duplicate keys, and its syntax errors have
	// better line numbers than yaml.v3's; sigs.k8s.io/json then decodes
	// case-sensitively and names unknown fields by their path. yaml.v3's
	// nodes give the lines of the fields.
	js, err := sigsyaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, p.yamlError(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &FieldError{File: p.name, Line: 1, Msg: fmt.Sprintf("empty document; want apiVersion: %s and kind: %s", FileAPIVersion, FileKind)}
		}
		return nil, p.yamlError(err)
	}
	for { // only empty documents may follow (a trailing ---)
		var next yaml.Node
		err := dec.Decode(&next)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, p.yamlError(err)
		}
		if len(next.Content) > 0 && next.Content[0].Tag != "!!null" {
			return nil, &FieldError{File: p.name, Line: next.Line, Msg: "more than one YAML document; want one"}
		}
	}
	p.root = &doc
	if len(doc.Content) == 1 {
		p.root = doc.Content[0]
	}
	if p.root.Kind != yaml.MappingNode {
		return nil, &FieldError{File: p.name, Line: max(p.root.Line, 1), Msg: fmt.Sprintf("want a mapping with apiVersion: %s and kind: %s", FileAPIVersion, FileKind)}
	}
	// A problem at the top leaves the rest decoded: carry on to report more.
	var d document
	p.decode(js, &d, "")
	if d.APIVersion != FileAPIVersion {
		p.add("apiVersion", "must be %s, not %q", FileAPIVersion, d.APIVersion)
	}
	if d.Kind != FileKind && d.Kind != FileKindKinds {
		p.add("kind", "must be %s (or %s, as `relabel kinds -o yaml` prints), not %q", FileKind, FileKindKinds, d.Kind)
	}
	f := &File{Name: p.name}
	seenGVR, seenGK := map[schema.GroupVersionResource]int{}, map[schema.GroupKind]int{}
	for i, raw := range d.Kinds {
		path := fmt.Sprintf("kinds[%d]", i)
		var k Kind
		if !p.decode(raw, &k, path) {
			continue
		}
		var fields map[string]json.RawMessage
		_ = json.Unmarshal(raw, &fields)
		if v, set := fields["maxNameLength"]; !set || string(v) == "null" {
			k.MaxNameLength = DefaultMaxNameLength
		}
		if !p.checkKind(path, &k) {
			continue
		}
		if j, dup := seenGVR[k.GVR()]; dup {
			p.add(path, "%s is already described by kinds[%d]", k.GVRString(), j)
			continue
		}
		if j, dup := seenGK[k.GroupKind()]; dup {
			p.add(path, "%s is already described by kinds[%d]", k.GroupKind(), j)
			continue
		}
		seenGVR[k.GVR()], seenGK[k.GroupKind()] = i, i
		f.Kinds = append(f.Kinds, k)
	}
	names := map[string]int{}
	for i, raw := range d.Rules {
		path := fmt.Sprintf("rules[%d]", i)
		var r Rule
		if !p.decode(raw, &r, path) || !p.checkRule(path, &r) {
			continue
		}
		if r.Name != "" {
			if j, dup := names[r.Name]; dup {
				p.add(path+".name", "%q is already the name of rules[%d]", r.Name, j)
				continue
			}
			names[r.Name] = i
		}
		f.Rules = append(f.Rules, r)
	}
	return f, nil
}

// decode unmarshals js into v strictly and reports its problems under path.
func (p *parser) decode(js []byte, v any, path string) bool {
	strict, err := sigsjson.UnmarshalStrict(js, v)
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typeErr):
		p.add(join(path, typeErr.Field), "must be %s, not %s", describe(typeErr.Type), typeErr.Value)
	case err != nil:
		p.add(path, "%v", err)
	}
	for _, e := range strict {
		var fe sigsjson.FieldError
		if errors.As(e, &fe) {
			msg, _, _ := strings.Cut(fe.Error(), " \"")
			p.add(join(path, fe.FieldPath()), "%s", msg)
		} else {
			p.add(path, "%v", e)
		}
	}
	return err == nil && len(strict) == 0
}

func join(path, field string) string {
	switch {
	case path == "":
		return field
	case field == "":
		return path
	}
	return path + "." + field
}

// describe names a Go type the way a YAML author thinks of it.
func describe(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	default:
		return "a mapping"
	}
}

// A path is dotted field names: spec.workload.selector.
var pathPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$`)

func (p *parser) checkPath(path string, v Path) {
	switch {
	case v == "":
		p.add(path, "must not be empty")
	case !pathPattern.MatchString(string(v)):
		p.add(path, "%q is not a dotted field path such as spec.selector", v)
	}
}

// checkKind validates a kind and fills in its defaults.
func (p *parser) checkKind(path string, k *Kind) bool {
	before := len(p.errs)
	if k.Group != "" {
		for _, msg := range validation.IsDNS1123Subdomain(k.Group) {
			p.add(path+".group", "%q: %s", k.Group, msg)
		}
	}
	p.checkName(path+".version", k.Version, validation.IsDNS1035Label)
	p.checkName(path+".kind", strings.ToLower(k.Kind), validation.IsDNS1035Label)
	p.checkName(path+".resource", k.Resource, validation.IsDNS1123Label)
	p.checkPath(path+".selectorPath", k.SelectorPath)
	p.checkPath(path+".templateLabelsPath", k.TemplateLabelsPath)
	for i, extra := range k.ExtraLabelPaths {
		p.checkPath(fmt.Sprintf("%s.extraLabelPaths[%d]", path, i), extra)
	}
	switch k.Strategy {
	case "":
		k.Strategy = TempCopy
	case TempCopy:
	case Adopt:
		if !k.CanAdopt() {
			p.add(path+".strategy", "adopt needs owned: what the kind's controller owns")
		}
	default:
		p.add(path+".strategy", "must be %s or %s, not %q", TempCopy, Adopt, k.Strategy)
	}
	if k.MaxNameLength < 1 || k.MaxNameLength > maxMaxNameLength {
		p.add(path+".maxNameLength", "must be between 1 and %d, not %d", maxMaxNameLength, k.MaxNameLength)
	}
	if k.Readiness == "" {
		k.Readiness = ReadinessKstatus
	}
	if k.usesCEL() {
		if err := CompileReadiness(k.Readiness); err != nil {
			p.add(path+".readiness", "%v (built-in rules: %s)", err, strings.Join(ReadinessNames(), ", "))
		}
	}
	for i, g := range k.Guards {
		if err := g.validate(); err != nil {
			p.add(fmt.Sprintf("%s.guards[%d]", path, i), "%v", err)
		}
	}
	for i, o := range k.Owned {
		op := fmt.Sprintf("%s.owned[%d]", path, i)
		if o.Group != "" {
			for _, msg := range validation.IsDNS1123Subdomain(o.Group) {
				p.add(op+".group", "%q: %s", o.Group, msg)
			}
		}
		p.checkName(op+".version", o.Version, validation.IsDNS1035Label)
		p.checkName(op+".resource", o.Resource, validation.IsDNS1123Label)
		if o.Action != Relabel && o.Action != DeleteOrphans {
			p.add(op+".action", "must be %s or %s, not %q", Relabel, DeleteOrphans, o.Action)
		}
	}
	k.Source = SourceRules
	// The protobuf numbers are the API's, not the file's to give.
	if b, ok := builtin[schema.GroupKind{Group: k.Group, Kind: k.Kind}]; ok {
		k.Proto = b.Proto
	}
	return len(p.errs) == before
}

// checkName checks a required name with one of apimachinery's validators.
func (p *parser) checkName(path, v string, valid func(string) []string) {
	if v == "" {
		p.add(path, "must not be empty")
		return
	}
	for _, msg := range valid(v) {
		p.add(path, "%q: %s", v, msg)
	}
}

// checkRule validates a rule and keeps its parsed GVRs and selector.
func (p *parser) checkRule(path string, r *Rule) bool {
	before := len(p.errs)
	for i, s := range r.GVRs {
		gvr, err := parseGVR(s)
		if err != nil {
			p.add(fmt.Sprintf("%s.gvrs[%d]", path, i), "%v", err)
			continue
		}
		r.gvrs = append(r.gvrs, gvr)
	}
	for i, ns := range r.Namespaces {
		for _, msg := range validation.IsDNS1123Label(ns) {
			p.add(fmt.Sprintf("%s.namespaces[%d]", path, i), "%q: %s", ns, msg)
		}
	}
	if r.Selector != "" {
		sel, err := labels.Parse(r.Selector)
		if err != nil {
			p.add(path+".selector", "%v", err)
		}
		r.selector = sel
	}
	lp := path + ".label"
	switch {
	case r.Label.Key == "":
		p.add(lp+".key", "must not be empty")
	default:
		if err := checkLabelKey(r.Label.Key); err != nil {
			p.add(lp+".key", "%v", err)
		}
	}
	switch {
	case r.Label.Value != nil && r.Label.ValueFrom != "":
		p.add(lp, "has both value and valueFrom; want one")
	case r.Label.Value == nil && r.Label.ValueFrom == "":
		p.add(lp, "has neither value nor valueFrom; want one")
	case r.Label.Value != nil:
		if err := checkLabelValue(r.Label.Key, *r.Label.Value); err != nil {
			p.add(lp+".value", "%v", err)
		}
	default:
		for _, msg := range validation.IsQualifiedName(r.Label.ValueFrom) {
			p.add(lp+".valueFrom", "%q is not a label key: %s", r.Label.ValueFrom, msg)
		}
	}
	switch r.Strategy {
	case "", StrategyAuto, TempCopy, Adopt:
	default:
		p.add(path+".strategy", "must be %s, %s or %s, not %q", StrategyAuto, TempCopy, Adopt, r.Strategy)
	}
	return len(p.errs) == before
}

// parseGVR reads group/version/resource, or version/resource for the core group.
func parseGVR(s string) (schema.GroupVersionResource, error) {
	var gvr schema.GroupVersionResource
	parts := strings.Split(s, "/")
	switch len(parts) {
	case 2:
		gvr = schema.GroupVersionResource{Version: parts[0], Resource: parts[1]}
	case 3:
		gvr = schema.GroupVersionResource{Group: parts[0], Version: parts[1], Resource: parts[2]}
	}
	if len(parts) < 2 || len(parts) > 3 || (len(parts) == 3 && len(validation.IsDNS1123Subdomain(gvr.Group)) > 0) ||
		len(validation.IsDNS1035Label(gvr.Version)) > 0 || len(validation.IsDNS1123Label(gvr.Resource)) > 0 {
		return schema.GroupVersionResource{}, fmt.Errorf("%q is not group/version/resource (apps/v1/deployments) or version/resource (v1/pods)", s)
	}
	return gvr, nil
}

// Match returns the first rule that matches obj, an object of kind, by its
// GVR, namespace and labels.
func (f *File) Match(kind Kind, obj *unstructured.Unstructured) (*Rule, bool) {
	gvr := kind.GVR()
	for i := range f.Rules {
		if f.Rules[i].matches(gvr, obj) {
			return &f.Rules[i], true
		}
	}
	return nil, false
}

func (r *Rule) matches(gvr schema.GroupVersionResource, obj *unstructured.Unstructured) bool {
	if len(r.GVRs) > 0 {
		gvrs := r.gvrs
		if len(gvrs) != len(r.GVRs) { // not from ParseFile
			gvrs = nil
			for _, s := range r.GVRs {
				if g, err := parseGVR(s); err == nil {
					gvrs = append(gvrs, g)
				}
			}
		}
		if !slices.Contains(gvrs, gvr) {
			return false
		}
	}
	if len(r.Namespaces) > 0 && !slices.Contains(r.Namespaces, obj.GetNamespace()) {
		return false
	}
	if r.Selector == "" {
		return true
	}
	sel := r.selector
	if sel == nil {
		var err error
		if sel, err = labels.Parse(r.Selector); err != nil {
			return false
		}
	}
	return sel.Matches(labels.Set(obj.GetLabels()))
}

// ErrNoLabelValue marks an object the rule cannot label: it lacks the label
// the value is copied from, or that label's value cannot be used.
var ErrNoLabelValue = errors.New("no value for the label")

// LabelFor is the label the rule gives obj: its fixed value, or the value of
// obj's own label named by ValueFrom.
func (r Rule) LabelFor(obj *unstructured.Unstructured) (Label, error) {
	if r.Label.ValueFrom == "" {
		value := ""
		if r.Label.Value != nil {
			value = *r.Label.Value
		}
		return newLabel(r.Label.Key, value)
	}
	value, ok := obj.GetLabels()[r.Label.ValueFrom]
	if !ok {
		return Label{}, fmt.Errorf("%s %s/%s: %w %s: it has no label %s to copy the value from", obj.GetKind(), obj.GetNamespace(), obj.GetName(), ErrNoLabelValue, r.Label.Key, r.Label.ValueFrom)
	}
	l, err := newLabel(r.Label.Key, value)
	if err != nil {
		return Label{}, fmt.Errorf("%s %s/%s: %w %s from label %s: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), ErrNoLabelValue, r.Label.Key, r.Label.ValueFrom, err)
	}
	return l, nil
}

// lineOf finds the line of path (kinds[0].selectorPath) in the document, or
// of its nearest ancestor that is there: a missing field's error points at
// the item that lacks it.
func lineOf(root *yaml.Node, path string) int {
	if root == nil {
		return 1
	}
	n, line := root, root.Line
	for _, seg := range splitPath(path) {
		for n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		var next *yaml.Node
		nextLine := 0
		switch {
		case seg.index >= 0 && n.Kind == yaml.SequenceNode && seg.index < len(n.Content):
			next = n.Content[seg.index]
			nextLine = next.Line
		case seg.index < 0 && n.Kind == yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == seg.key {
					next, nextLine = n.Content[i+1], n.Content[i].Line
				}
			}
		}
		if next == nil {
			break
		}
		n, line = next, nextLine
	}
	return max(line, 1)
}

type segment struct {
	key   string
	index int // -1 for a key
}

// splitPath reads kinds[0].owned[1].action into its keys and indexes.
func splitPath(path string) []segment {
	var out []segment
	for part := range strings.SplitSeq(path, ".") {
		key, rest, _ := strings.Cut(part, "[")
		if key != "" {
			out = append(out, segment{key: key, index: -1})
		}
		for rest != "" {
			num, after, ok := strings.Cut(rest, "]")
			i, err := strconv.Atoi(num)
			if !ok || err != nil {
				break
			}
			out = append(out, segment{index: i})
			_, rest, _ = strings.Cut(after, "[")
		}
	}
	return out
}

// Labels. They live here, not in package unstructured (which imports rules),
// so that rules can build them; unstructured keeps aliases.

// Label is the key and value relabel adds.
type Label struct {
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
	// AnyValue is set when only the key was given (audit's KEY form).
	AnyValue bool `json:"-"`
}

func (l Label) String() string {
	if l.AnyValue {
		return l.Key
	}
	return l.Key + "=" + l.Value
}

// ErrInvalidLabel marks a label the user gave that cannot be used.
var ErrInvalidLabel = errors.New("invalid label")

// TempLabelKey marks relabel's temporary copies; no user label may use it.
const TempLabelKey = "relabel.dev/temp"

// Domains that Kubernetes reserves for its own components; the recommended
// app.kubernetes.io labels are meant for users and stay allowed.
var reservedDomains = []string{"kubernetes.io", "k8s.io"}

func reservedPrefix(key string) (string, bool) {
	prefix, _, hasPrefix := strings.Cut(key, "/")
	if !hasPrefix || prefix == "app.kubernetes.io" {
		return "", false
	}
	for _, d := range reservedDomains {
		if prefix == d || strings.HasSuffix(prefix, "."+d) {
			return prefix, true
		}
	}
	return "", false
}

// ParseLabel reads KEY=VALUE, or KEY alone when valueOptional is set.
func ParseLabel(s string, valueOptional bool) (Label, error) {
	key, value, hasValue := strings.Cut(s, "=")
	if !hasValue && !valueOptional {
		return Label{}, fmt.Errorf("%w %q: want KEY=VALUE", ErrInvalidLabel, s)
	}
	if err := checkLabelKey(key); err != nil {
		return Label{}, err
	}
	if !hasValue {
		return Label{Key: key, AnyValue: true}, nil
	}
	if err := checkLabelValue(key, value); err != nil {
		return Label{}, err
	}
	return Label{Key: key, Value: value}, nil
}

func newLabel(key, value string) (Label, error) {
	if err := checkLabelKey(key); err != nil {
		return Label{}, err
	}
	if err := checkLabelValue(key, value); err != nil {
		return Label{}, err
	}
	return Label{Key: key, Value: value}, nil
}

func checkLabelKey(key string) error {
	if errs := validation.IsQualifiedName(key); len(errs) > 0 {
		return fmt.Errorf("%w key %q: %s", ErrInvalidLabel, key, strings.Join(errs, "; "))
	}
	if prefix, reserved := reservedPrefix(key); reserved {
		return fmt.Errorf("%w key %q: the prefix %s/ is reserved for Kubernetes components", ErrInvalidLabel, key, prefix)
	}
	if key == TempLabelKey {
		return fmt.Errorf("%w key %q: relabel uses it to mark its temporary copies", ErrInvalidLabel, key)
	}
	return nil
}

func checkLabelValue(key, value string) error {
	if errs := validation.IsValidLabelValue(value); len(errs) > 0 {
		return fmt.Errorf("%w value %q for key %q: %s", ErrInvalidLabel, value, key, strings.Join(errs, "; "))
	}
	return nil
}
