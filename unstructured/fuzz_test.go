package unstructured

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"
)

func FuzzParseLabel(f *testing.F) {
	for _, seed := range []string{
		"stage=production", "stage", "stage=", "=prod", "", "a=b=c",
		"example.com/stage=prod", "app.kubernetes.io/name=web", "kubernetes.io/x=y", "node.kubernetes.io/x",
		"x.k8s.io/y=z", "relabel.dev/temp=1", strings.Repeat("a", 64) + "=x", "stage=" + strings.Repeat("v", 64),
		"a/b/c=d", "Stage=Prod_1.2-3", " stage=prod", "stage=prod\n", "é=ü",
	} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, s string, optional bool) {
		l, err := ParseLabel(s, optional)
		if err != nil {
			if !errors.Is(err, ErrInvalidLabel) {
				t.Fatalf("ParseLabel(%q): error %v does not wrap ErrInvalidLabel", s, err)
			}
			return
		}
		if errs := validation.IsQualifiedName(l.Key); len(errs) > 0 {
			t.Fatalf("ParseLabel(%q) accepted the key %q: %v", s, l.Key, errs)
		}
		if prefix, reserved := reservedForTest(l.Key); reserved {
			t.Fatalf("ParseLabel(%q) accepted the reserved prefix %s", s, prefix)
		}
		if l.Key == TempLabelKey {
			t.Fatalf("ParseLabel(%q) accepted relabel's own key", s)
		}
		if l.AnyValue {
			if !optional || l.Value != "" {
				t.Fatalf("ParseLabel(%q, %v) = %+v: a key-only label without the optional form", s, optional, l)
			}
		} else if errs := validation.IsValidLabelValue(l.Value); len(errs) > 0 {
			t.Fatalf("ParseLabel(%q) accepted the value %q: %v", s, l.Value, errs)
		}
		if l.String() != s {
			t.Fatalf("ParseLabel(%q).String() = %q", s, l.String())
		}
		back, err := ParseLabel(l.String(), optional)
		if err != nil || back != l {
			t.Fatalf("round trip of %q: %+v, %v; want %+v", s, back, err, l)
		}
	})
}

// FuzzAddLabel builds a Deployment from fuzzed label maps and selector
// expressions and adds a fuzzed label to it.
//
// Label maps are written "k=v,k=v". Expressions are written "OPkey=v|v;...",
// OP being + (In), - (NotIn), ? (Exists) or ! (DoesNotExist); an entry
// without an OP is In.
func FuzzAddLabel(f *testing.F) {
	seeds := []struct{ selector, exprs, template, label string }{
		{"app=web", "", "app=web,tier=frontend", "stage=production"},
		{"app=web,stage=production", "", "app=web,stage=production", "stage=production"},
		{"app=web,stage=staging", "", "app=web,stage=staging", "stage=production"},
		{"app=web", "", "app=web,stage=staging", "stage=production"},
		{"", "+app=search;-track=canary", "app=search,track=stable", "stage=production"},
		{"", "+app=search;?track", "app=search,track=stable", "track=stable"},
		{"app=web", "!canary", "app=web", "stage=production"},
		{"app=web", "-stage=staging", "app=web", "stage=production"},
		{"", "", "", "stage=production"},
		{"app=web", "", "", "stage="},
		{"a=b,c", "+=x", "a=b", "example.com/k=v"},
		{"not a key=x", "+k=", "k=v", "bad key=v"},
	}
	for _, s := range seeds {
		f.Add(s.selector, s.exprs, s.template, s.label)
	}
	kind := rolloutKind
	kind.Group, kind.Version, kind.Kind, kind.Resource = "apps", "v1", "Deployment", "deployments"
	f.Fuzz(func(t *testing.T, selector, exprs, template, label string) {
		obj := fuzzObject(selector, exprs, template)
		l, err := ParseLabel(label, false)
		valid := err == nil
		if !valid {
			k, v, _ := strings.Cut(label, "=")
			l = Label{Key: k, Value: v}
		}
		matched, err := SelectorMatchesTemplate(obj, kind)
		matched = matched && err == nil

		before := obj.DeepCopy()
		if err := AddLabel(obj, kind, l); err != nil {
			if !reflect.DeepEqual(before.Object, obj.Object) {
				t.Fatalf("AddLabel failed (%v) and changed the object:\n%v\nwas\n%v", err, obj.Object, before.Object)
			}
			return
		}
		if !valid || !matched {
			return
		}
		after, err := SelectorMatchesTemplate(obj, kind)
		if err != nil || !after {
			t.Fatalf("AddLabel(%s): the selector matched the template and no longer does (%v, %v):\nselector %v\ntemplate %v",
				l, after, err, obj.Object["spec"].(map[string]interface{})["selector"], templateLabels(t, obj))
		}
		report, err := Check(obj, kind, l)
		if err != nil || !report.Complete() {
			t.Fatalf("Check after AddLabel(%s) = %+v, %v; want complete", l, report, err)
		}
	})
}

func fuzzObject(selector, exprs, template string) *unstructured.Unstructured {
	sel := map[string]interface{}{}
	if selector != "" {
		sel["matchLabels"] = fuzzLabels(selector)
	}
	if exprs != "" {
		sel["matchExpressions"] = fuzzExpressions(exprs)
	}
	return &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "apps/v1",
		"kind":       "Deployment",
		"metadata": map[string]interface{}{
			"name": "fuzz", "namespace": "default", "labels": fuzzLabels(template),
		},
		"spec": map[string]interface{}{
			"selector": sel,
			"template": map[string]interface{}{
				"metadata": map[string]interface{}{"labels": fuzzLabels(template)},
			},
		},
	}}
}

func fuzzLabels(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if s == "" {
		return m
	}
	for _, pair := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(pair, "=")
		m[k] = v
	}
	return m
}

func fuzzExpressions(s string) []interface{} {
	ops := map[byte]string{'+': "In", '-': "NotIn", '?': "Exists", '!': "DoesNotExist"}
	var out []interface{}
	for _, entry := range strings.Split(s, ";") {
		op := "In"
		if entry != "" {
			if o, ok := ops[entry[0]]; ok {
				op, entry = o, entry[1:]
			}
		}
		key, values, hasValues := strings.Cut(entry, "=")
		e := map[string]interface{}{"key": key, "operator": op}
		if hasValues {
			var vs []interface{}
			for _, v := range strings.Split(values, "|") {
				vs = append(vs, v)
			}
			e["values"] = vs
		}
		out = append(out, e)
	}
	return out
}

// reservedForTest is the rule ParseLabel enforces, written out independently:
// the kubernetes.io and k8s.io prefixes, and their subdomains, except
// app.kubernetes.io.
func reservedForTest(key string) (string, bool) {
	prefix, _, ok := strings.Cut(key, "/")
	if !ok || prefix == "app.kubernetes.io" {
		return "", false
	}
	for _, d := range []string{"kubernetes.io", "k8s.io"} {
		if prefix == d || strings.HasSuffix(prefix, "."+d) {
			return prefix, true
		}
	}
	return "", false
}

func FuzzSelectorString(f *testing.F) {
	for _, seed := range [][2]string{
		{"app", "web"}, {"app", ""}, {"a", "b"}, {"A_b.c-D", "x_Y.z-0"}, {"-app", "web"}, {"app", "web-"},
		{"example.com/app", "web"}, {"", "x"}, {"app", "wéb"}, {strings.Repeat("a", 64), "x"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, key, value string) {
		obj := fixture(t, "deployment", set(map[string]interface{}{key: value, "tier": "frontend"}, "spec", "selector", "matchLabels"))
		kind := kindFor(t, obj)
		want := ""
		if parsed, err := Selector(obj, kind); err == nil {
			want = parsed.String()
		}
		if got := SelectorString(obj, kind); got != want {
			t.Fatalf("matchLabels %q=%q: %q, the parsed selector's %q", key, value, got, want)
		}
	})
}
