package unstructured

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"relabel.dev/relabel/rules"
)

// Presence says whether the label is at one place of an object. It is a
// byte, not a string: an audit of a large cluster keeps three per object.
type Presence uint8

const (
	Present Presence = iota + 1
	Missing
	// Different: the key is there with another value.
	Different
)

var presenceNames = [...]string{"", "present", "missing", "different"}

func (p Presence) String() string {
	if int(p) < len(presenceNames) {
		return presenceNames[p]
	}
	return fmt.Sprintf("Presence(%d)", p)
}

// MarshalText writes the name, so reports read "present", not 1.
func (p Presence) MarshalText() ([]byte, error) {
	if int(p) >= len(presenceNames) {
		return nil, fmt.Errorf("unknown presence %d", p)
	}
	return []byte(presenceNames[p]), nil
}

func (p *Presence) UnmarshalText(text []byte) error {
	for i, name := range presenceNames {
		if string(text) == name {
			*p = Presence(i)
			return nil
		}
	}
	return fmt.Errorf("unknown presence %q: want present, missing or different", text)
}

// Report is where an object carries the label.
type Report struct {
	Selector Presence `json:"selector"`
	Template Presence `json:"template"`
	Metadata Presence `json:"metadata"`
}

// Complete is true when all three places carry the label.
func (r Report) Complete() bool {
	return r.Selector == Present && r.Template == Present && r.Metadata == Present
}

// ErrSelectorConflict marks an object whose selector already uses the key
// with another value: adding the label would change what it selects.
var ErrSelectorConflict = errors.New("selector already has the key with another value")

// Check reports where obj carries the label.
func Check(obj *unstructured.Unstructured, kind rules.Kind, l Label) (Report, error) {
	selector, err := stringMapNoCopy(obj.Object, kind.SelectorPath, "matchLabels")
	if err != nil {
		return Report{}, fmt.Errorf("reading %s.matchLabels of %s/%s: %w", kind.SelectorPath, obj.GetNamespace(), obj.GetName(), err)
	}
	template, err := stringMapNoCopy(obj.Object, kind.TemplateLabelsPath)
	if err != nil {
		return Report{}, fmt.Errorf("reading %s of %s/%s: %w", kind.TemplateLabelsPath, obj.GetNamespace(), obj.GetName(), err)
	}
	return Report{
		Selector: presence(selector, l),
		Template: presence(template, l),
		Metadata: presence(MetadataNoCopy(obj, "labels"), l),
	}, nil
}

// Conflicts lists the places, other than the selector, where obj already has
// the key with another value: the pod template's labels and the kind's extra
// label paths. Overwriting them would silently move pods out of whatever
// selects the old value (a Service, a NetworkPolicy).
func Conflicts(obj *unstructured.Unstructured, kind rules.Kind, l Label) ([]string, error) {
	if l.AnyValue {
		return nil, nil
	}
	var out []string
	for _, path := range append([]rules.Path{kind.TemplateLabelsPath}, kind.ExtraLabelPaths...) {
		m, err := stringMap(obj, path)
		if err != nil {
			return nil, err
		}
		if v, ok := m[l.Key]; ok && v != l.Value {
			out = append(out, fmt.Sprintf("%s has %s=%s", path, l.Key, v))
		}
	}
	return out, nil
}

func presence(m map[string]any, l Label) Presence {
	v, ok := m[l.Key]
	switch {
	case !ok:
		return Missing
	case l.AnyValue || v == l.Value:
		return Present
	default:
		return Different
	}
}

// AddLabel puts the label into obj's selector, pod template and own labels,
// and into the kind's extra label paths (created when absent; a value there
// is replaced).
func AddLabel(obj *unstructured.Unstructured, kind rules.Kind, l Label) error {
	extras := make([]map[string]string, len(kind.ExtraLabelPaths))
	for i, path := range kind.ExtraLabelPaths {
		m, err := stringMap(obj, path)
		if err != nil {
			return err
		}
		if m == nil {
			m = map[string]string{}
		}
		extras[i] = m
	}
	if err := addLabels(obj, kind, map[string]string{l.Key: l.Value}, true); err != nil {
		return err
	}
	for i, path := range kind.ExtraLabelPaths {
		extras[i][l.Key] = l.Value
		if err := unstructured.SetNestedStringMap(obj.Object, extras[i], path.Fields()...); err != nil {
			return fmt.Errorf("setting %s of %s/%s: %w", path, obj.GetNamespace(), obj.GetName(), err)
		}
	}
	return nil
}

func addLabels(obj *unstructured.Unstructured, kind rules.Kind, add map[string]string, toMetadata bool) error {
	selectorPath := append(kind.SelectorPath.Fields(), "matchLabels")
	selector, err := matchLabels(obj, kind)
	if err != nil {
		return err
	}
	if _, found, err := unstructured.NestedFieldNoCopy(obj.Object, kind.SelectorPath.Fields()...); err != nil || !found {
		return fmt.Errorf("%s %s/%s has no selector at %s", kind.Kind, obj.GetNamespace(), obj.GetName(), kind.SelectorPath)
	}
	template, err := stringMap(obj, kind.TemplateLabelsPath)
	if err != nil {
		return err
	}
	if template == nil {
		template = map[string]string{}
	}
	if selector == nil {
		selector = map[string]string{}
	}
	expressions, err := matchExpressions(obj, kind)
	if err != nil {
		return err
	}
	for k, v := range add {
		if old, ok := selector[k]; ok && old != v {
			return fmt.Errorf("%s %s/%s: %w: %s=%s, not %s", kind.Kind, obj.GetNamespace(), obj.GetName(), ErrSelectorConflict, k, old, v)
		}
		for _, e := range expressions {
			if e.Key != k {
				continue
			}
			s, err := metav1.LabelSelectorAsSelector(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{e}})
			if err != nil {
				return fmt.Errorf("parsing %s.matchExpressions of %s/%s: %w", kind.SelectorPath, obj.GetNamespace(), obj.GetName(), err)
			}
			if !s.Matches(labels.Set{k: v}) {
				return fmt.Errorf("%s %s/%s: %w: %s excludes %s=%s", kind.Kind, obj.GetNamespace(), obj.GetName(), ErrSelectorConflict, s, k, v)
			}
		}
		selector[k] = v
		template[k] = v
	}
	if err := unstructured.SetNestedStringMap(obj.Object, selector, selectorPath...); err != nil {
		return fmt.Errorf("setting %s.matchLabels of %s/%s: %w", kind.SelectorPath, obj.GetNamespace(), obj.GetName(), err)
	}
	if err := unstructured.SetNestedStringMap(obj.Object, template, kind.TemplateLabelsPath.Fields()...); err != nil {
		return fmt.Errorf("setting %s of %s/%s: %w", kind.TemplateLabelsPath, obj.GetNamespace(), obj.GetName(), err)
	}
	if toMetadata {
		own := obj.GetLabels()
		if own == nil {
			own = map[string]string{}
		}
		for k, v := range add {
			own[k] = v
		}
		obj.SetLabels(own)
	}
	return nil
}

// SelectorMatchesTemplate checks the invariant the API server enforces for
// apps/v1 and relabel keeps for every kind: the selector selects the template.
func SelectorMatchesTemplate(obj *unstructured.Unstructured, kind rules.Kind) (bool, error) {
	selector, err := Selector(obj, kind)
	if err != nil {
		return false, err
	}
	template, err := stringMap(obj, kind.TemplateLabelsPath)
	if err != nil {
		return false, err
	}
	return !selector.Empty() && selector.Matches(labels.Set(template)), nil
}

func matchLabels(obj *unstructured.Unstructured, kind rules.Kind) (map[string]string, error) {
	return stringMap(obj, kind.SelectorPath+".matchLabels")
}

// matchExpressions reads the selector's expressions. A key they constrain can
// only be added with a value they accept: matchLabels and matchExpressions are
// ANDed, so another value would leave the selector matching no pod at all.
func matchExpressions(obj *unstructured.Unstructured, kind rules.Kind) ([]metav1.LabelSelectorRequirement, error) {
	raw, found, err := unstructured.NestedFieldNoCopy(obj.Object, append(kind.SelectorPath.Fields(), "matchExpressions")...)
	if err != nil {
		return nil, fmt.Errorf("reading %s.matchExpressions of %s/%s: %w", kind.SelectorPath, obj.GetNamespace(), obj.GetName(), err)
	}
	if !found || raw == nil {
		return nil, nil
	}
	var ls metav1.LabelSelector
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(map[string]interface{}{"matchExpressions": raw}, &ls); err != nil {
		return nil, fmt.Errorf("reading %s.matchExpressions of %s/%s: %w", kind.SelectorPath, obj.GetNamespace(), obj.GetName(), err)
	}
	return ls.MatchExpressions, nil
}

func stringMap(obj *unstructured.Unstructured, path rules.Path) (map[string]string, error) {
	m, _, err := unstructured.NestedStringMap(obj.Object, path.Fields()...)
	if err != nil {
		return nil, fmt.Errorf("reading %s of %s/%s: %w", path, obj.GetNamespace(), obj.GetName(), err)
	}
	return m, nil
}

// serverSetMetadata are the fields the API server owns; a create must not carry them.
var serverSetMetadata = []string{"uid", "resourceVersion", "generation", "creationTimestamp",
	"managedFields", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"}

// ForCreate returns a copy of obj that can be sent as a create: the server's
// fields and the status are gone, everything the user wrote is kept.
func ForCreate(obj *unstructured.Unstructured) *unstructured.Unstructured {
	out := obj.DeepCopy()
	for _, f := range serverSetMetadata {
		unstructured.RemoveNestedField(out.Object, "metadata", f)
	}
	unstructured.RemoveNestedField(out.Object, "status")
	return out
}

// Annotations and labels relabel writes on temporary copies, so that the state
// of a migration can be read back from the cluster alone.
const (
	TempLabelKey         = rules.TempLabelKey
	OriginNameAnnotation = "relabel.dev/origin-name"
	OriginUIDAnnotation  = "relabel.dev/origin-uid"
	TargetAnnotation     = "relabel.dev/label"
)

// TempCopy builds the copy T of the original: renamed, without owners, with
// the temporary label in selector, template and metadata so that its pods
// never count as the original's, and with annotations naming its origin.
func TempCopy(original *unstructured.Unstructured, kind rules.Kind, name string, target Label) (*unstructured.Unstructured, error) {
	temp := ForCreate(original)
	temp.SetName(name)
	temp.SetOwnerReferences(nil)
	temp.SetFinalizers(nil)
	uid := string(original.GetUID())
	if err := addLabels(temp, kind, map[string]string{TempLabelKey: uid}, true); err != nil {
		return nil, err
	}
	ann := temp.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[OriginNameAnnotation] = original.GetName()
	ann[OriginUIDAnnotation] = uid
	ann[TargetAnnotation] = target.String()
	temp.SetAnnotations(ann)
	if err := untrack(temp); err != nil {
		return nil, err
	}
	return temp, nil
}

// IsTemp tells a temporary copy from a user's object.
func IsTemp(obj *unstructured.Unstructured) bool {
	_, ok := MetadataNoCopy(obj, "labels")[TempLabelKey]
	return ok
}

// Recreated builds the original again from its backup, with the label added.
func Recreated(backup *unstructured.Unstructured, kind rules.Kind, l Label) (*unstructured.Unstructured, error) {
	out := ForCreate(backup)
	if err := AddLabel(out, kind, l); err != nil {
		return nil, err
	}
	return out, nil
}

// TempName derives the copy's name. A name that would exceed max is cut and
// given a hash of the full name, so it stays unique and the same on every run.
func TempName(name, suffix string, max int) string {
	full := name + suffix
	if len(full) <= max {
		return full
	}
	sum := sha256.Sum256([]byte(full))
	hash := hex.EncodeToString(sum[:])[:8]
	keep := max - len(suffix) - len(hash) - 1
	if keep < 1 {
		keep = 1
	}
	base := strings.TrimRight(name[:min(keep, len(name))], "-.")
	return base + "-" + hash + suffix
}

// OriginalFromCopy rebuilds the original's manifest from its temporary copy,
// for when no backup is at hand: the name, selector and labels are restored,
// the spec is the copy's (the original's as of the copy's creation).
func OriginalFromCopy(temp *unstructured.Unstructured, kind rules.Kind) (*unstructured.Unstructured, error) {
	ann := temp.GetAnnotations()
	name := ann[OriginNameAnnotation]
	if name == "" || !IsTemp(temp) {
		return nil, fmt.Errorf("%s/%s is not a temporary copy", temp.GetNamespace(), temp.GetName())
	}
	out := ForCreate(temp)
	out.SetName(name)
	for _, path := range []rules.Path{kind.SelectorPath + ".matchLabels", kind.TemplateLabelsPath} {
		m, err := stringMap(out, path)
		if err != nil {
			return nil, err
		}
		delete(m, TempLabelKey)
		if err := unstructured.SetNestedStringMap(out.Object, m, path.Fields()...); err != nil {
			return nil, fmt.Errorf("setting %s of %s/%s: %w", path, out.GetNamespace(), name, err)
		}
	}
	l := out.GetLabels()
	delete(l, TempLabelKey)
	out.SetLabels(l)
	for _, a := range []string{OriginNameAnnotation, OriginUIDAnnotation, TargetAnnotation} {
		delete(ann, a)
	}
	out.SetAnnotations(ann)
	if err := retrack(out); err != nil {
		return nil, err
	}
	return out, nil
}
