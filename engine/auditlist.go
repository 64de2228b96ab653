package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"relabel.dev/relabel/rules"
)

// NewRawClient builds the client audit lists with: the dynamic client's
// configuration (JSON, the same errors), but the body is handed over as
// bytes, not decoded into maps by client-go.
func NewRawClient(config *rest.Config) (rest.Interface, error) {
	c := dynamic.ConfigFor(config)
	c.GroupVersion = nil
	c.APIPath = ""
	c.AcceptContentTypes = "application/json"
	client, err := rest.UnversionedRESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("building the list client for %s: %w", config.Host, err)
	}
	return client, nil
}

// keep is the part of an object a finding reads: a key mapped to nil is kept
// whole, to a keep its object is kept only in those fields.
type keep map[string]keep

// auditKeep is what the audit reads of an object of kind: its name, labels,
// owners, the annotations managedBy looks for, its selector and its
// template's labels.
func auditKeep(kind rules.Kind) keep {
	k := keep{"metadata": keep{
		"name": nil, "namespace": nil, "labels": nil, "ownerReferences": nil,
		"annotations": keep{helmReleaseAnnotation: nil, argoTrackingAnnotation: nil},
	}}
	k.add(kind.SelectorPath.Fields())
	k.add(kind.TemplateLabelsPath.Fields())
	return k
}

// add keeps the value at path whole.
func (k keep) add(path []string) {
	for i, f := range path {
		child, ok := k[f]
		if ok && child == nil {
			return // an ancestor is kept whole already
		}
		if i == len(path)-1 {
			k[f] = nil
			return
		}
		if !ok {
			child = keep{}
			k[f] = child
		}
		k = child
	}
}

// listRaw pages through one kind as raw JSON, calling visit with each item
// decoded only as far as k says. Nothing of a page is kept once decoded.
func (a Auditor) listRaw(ctx context.Context, kind rules.Kind, scope Scope, k keep, visit func(*unstructured.Unstructured) error) error {
	pageSize := a.PageSize
	if pageSize == 0 {
		pageSize = 500
	}
	path := listPath(kind, scope.Namespace)
	cont, pages := "", 0
	for {
		req := a.REST.Get().AbsPath(path).Param("limit", strconv.FormatInt(pageSize, 10))
		if scope.Selector != "" {
			req = req.Param("labelSelector", scope.Selector)
		}
		if cont != "" {
			req = req.Param("continue", cont)
		}
		body, err := req.Stream(ctx)
		if err != nil {
			return fmt.Errorf("listing %s%s: %w", kind.GVRString(), inNamespace(scope.Namespace), err)
		}
		cont, err = decodeList(body, k, visit)
		body.Close()
		if v, ok := errors.AsType[errVisit](err); ok {
			return v.err // the object's own error, as the dynamic path returns it
		}
		if err != nil {
			return fmt.Errorf("listing %s%s: %w", kind.GVRString(), inNamespace(scope.Namespace), err)
		}
		pages++
		if cont == "" {
			break
		}
	}
	klog.V(4).InfoS("listed", "gvr", kind.GVRString(), "pages", pages)
	return nil
}

// listPath is the URL path of kind's list, as the dynamic client builds it.
func listPath(kind rules.Kind, namespace string) string {
	p := "/apis/" + kind.Group + "/" + kind.Version
	if kind.Group == "" {
		p = "/api/" + kind.Version
	}
	if kind.Namespaced && namespace != "" {
		p += "/namespaces/" + namespace
	}
	return p + "/" + kind.Resource
}

// errVisit carries an error of visit out of decodeList, to tell it from a
// broken response.
type errVisit struct{ err error }

func (e errVisit) Error() string { return e.err.Error() }
func (e errVisit) Unwrap() error { return e.err }

// decodeList streams one list response: each of its items is pruned to k and
// handed to visit; it returns the list's continue token.
func decodeList(r io.Reader, k keep, visit func(*unstructured.Unstructured) error) (string, error) {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	if err := expectDelim(dec, '{'); err != nil {
		return "", err
	}
	var meta struct {
		Continue string `json:"continue"`
	}
	for dec.More() {
		key, err := objectKey(dec)
		if err != nil {
			return "", err
		}
		switch key {
		case "metadata":
			if err := dec.Decode(&meta); err != nil {
				return "", fmt.Errorf("decoding the list's metadata: %w", err)
			}
		case "items":
			if err := decodeItems(dec, k, visit); err != nil {
				return "", err
			}
		default:
			if err := dec.Decode(&skipValue{}); err != nil {
				return "", fmt.Errorf("decoding the list: %w", err)
			}
		}
	}
	return meta.Continue, expectDelim(dec, '}')
}

func decodeItems(dec *json.Decoder, k keep, visit func(*unstructured.Unstructured) error) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("decoding the list's items: %w", err)
	}
	if tok == nil {
		return nil
	}
	if tok != json.Delim('[') {
		return fmt.Errorf("decoding the list's items: %v, not an array", tok)
	}
	for i := 0; dec.More(); i++ {
		v, err := prune(dec, k)
		if err != nil {
			return fmt.Errorf("decoding item %d of the list: %w", i, err)
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("decoding item %d of the list: %T, not an object", i, v)
		}
		if err := visit(&unstructured.Unstructured{Object: obj}); err != nil {
			return errVisit{err}
		}
	}
	return expectDelim(dec, ']')
}

// prune reads one JSON value, keeping of an object only the fields k names
// (all of it when k is nil). Values are as apimachinery decodes them
// (integers int64, other numbers float64), so the helpers that read the
// pruned object see what they would see in the whole one.
func prune(dec *json.Decoder, k keep) (any, error) {
	if k == nil {
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		return numbers(v), nil
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return tokenValue(dec, tok)
	}
	out := map[string]any{}
	for dec.More() {
		key, err := objectKey(dec)
		if err != nil {
			return nil, err
		}
		child, ok := k[key]
		if !ok {
			if err := dec.Decode(&skipValue{}); err != nil {
				return nil, err
			}
			continue
		}
		if out[key], err = prune(dec, child); err != nil {
			return nil, err
		}
	}
	return out, expectDelim(dec, '}')
}

// tokenValue finishes a value whose first token was read: a scalar, or an
// array kept whole. (Objects are pruned by the caller.)
func tokenValue(dec *json.Decoder, tok json.Token) (any, error) {
	switch t := tok.(type) {
	case json.Delim:
		if t != '[' {
			return nil, fmt.Errorf("unexpected %v", t)
		}
		list := []any{}
		for dec.More() {
			v, err := prune(dec, nil)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		return list, expectDelim(dec, ']')
	case json.Number:
		return number(t), nil
	}
	return tok, nil
}

// numbers converts json.Number as apimachinery's JSON decoding does.
func numbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		return number(t)
	case map[string]any:
		for k, e := range t {
			if n, ok := e.(json.Number); ok {
				t[k] = number(n)
			} else if _, ok := e.(string); !ok {
				t[k] = numbers(e)
			}
		}
	case []any:
		for i, e := range t {
			t[i] = numbers(e)
		}
	}
	return v
}

func number(n json.Number) any {
	if i, err := n.Int64(); err == nil {
		return i
	}
	if f, err := n.Float64(); err == nil {
		return f
	}
	return string(n)
}

func objectKey(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	key, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("%v, not an object key", tok)
	}
	return key, nil
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != d {
		return fmt.Errorf("%v, not %v", tok, d)
	}
	return nil
}

// skipValue reads a JSON value and throws it away, without building it.
type skipValue struct{}

func (*skipValue) UnmarshalJSON([]byte) error { return nil }
