package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"relabel.dev/relabel/rules"
)

// NewRawClient builds the client audit lists with: the dynamic client's
// configuration (JSON, the same errors), but the body is handed over as
// bytes, not decoded into maps by client-go. Lists of built-in kinds ask
// for protobuf, and the API server's errors may come in it too.
func NewRawClient(config *rest.Config) (rest.Interface, error) {
	c := dynamic.ConfigFor(config)
	c.GroupVersion = nil
	c.APIPath = ""
	c.AcceptContentTypes = "application/json"
	c.NegotiatedSerializer = withProtobufStatus{c.NegotiatedSerializer}
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

// statusScheme knows the API server's Status, to read its errors in
// protobuf.
var statusScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
	return s
}()

// withProtobufStatus adds protobuf to what the dynamic client decodes.
type withProtobufStatus struct{ runtime.NegotiatedSerializer }

func (s withProtobufStatus) SupportedMediaTypes() []runtime.SerializerInfo {
	return append(s.NegotiatedSerializer.SupportedMediaTypes(), runtime.SerializerInfo{
		MediaType: runtime.ContentTypeProtobuf, MediaTypeType: "application", MediaTypeSubType: "vnd.kubernetes.protobuf",
		Serializer: protobuf.NewSerializer(statusScheme, statusScheme),
	})
}

// pageRaw reads one page of kind's list as raw protobuf or JSON, calling
// visit with each item decoded only as far as k says. Nothing of the page
// is kept once decoded.
func (a Auditor) pageRaw(ctx context.Context, kind rules.Kind, scope Scope, k keep, limit int64, cont string, visit func(*unstructured.Unstructured) error) (listMeta, error) {
	req := a.REST.Get().AbsPath(listPath(kind, scope.Namespace)).Param("limit", strconv.FormatInt(limit, 10))
	proto := objectProto(kind)
	if !proto.covers(k) {
		proto = nil
	}
	if proto != nil {
		req = req.SetHeader("Accept", acceptProtobuf)
	}
	if scope.Selector != "" {
		req = req.Param("labelSelector", scope.Selector)
	}
	if cont != "" {
		req = req.Param("continue", cont)
	}
	body, err := req.Stream(ctx)
	if err != nil {
		return listMeta{}, fmt.Errorf("listing %s%s: %w", kind.GVRString(), inNamespace(scope.Namespace), err)
	}
	defer body.Close()
	r := bufio.NewReaderSize(body, 64<<10)
	var meta listMeta
	if head, _ := r.Peek(len(protobufMagic)); string(head) == protobufMagic && proto != nil {
		meta, err = decodeProtoList(r, proto, k, visit)
	} else {
		meta, err = decodeList(r, k, visit)
	}
	if v, ok := errors.AsType[errVisit](err); ok {
		return listMeta{}, v.err // the object's own error, as the dynamic path returns it
	}
	if err != nil {
		return listMeta{}, fmt.Errorf("listing %s%s: %w", kind.GVRString(), inNamespace(scope.Namespace), err)
	}
	return meta, nil
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

// listMeta is what audit reads of a list's metadata.
type listMeta struct {
	Continue           string `json:"continue"`
	RemainingItemCount *int64 `json:"remainingItemCount"`
}

// decodeList streams one list response: each of its items is pruned to k and
// handed to visit; it returns the list's metadata. What follows the list in
// the stream is not read.
func decodeList(r io.Reader, k keep, visit func(*unstructured.Unstructured) error) (listMeta, error) {
	s := newJSONScanner(r)
	c, err := s.peek()
	if err != nil {
		return listMeta{}, err
	}
	if c != '{' {
		return listMeta{}, s.syntax(c, "looking for the list object")
	}
	s.i++
	var meta listMeta
	for first := true; ; first = false {
		more, err := s.member(first, true)
		if err != nil {
			return listMeta{}, fmt.Errorf("decoding the list: %w", err)
		}
		if !more {
			return meta, nil
		}
		switch string(s.key) {
		case "metadata":
			// Small: decoded by encoding/json, whose rules for matching
			// field names it is then sure to follow.
			raw, err := s.capture()
			if err == nil {
				err = json.Unmarshal(raw, &meta)
			}
			if err != nil {
				return listMeta{}, fmt.Errorf("decoding the list's metadata: %w", err)
			}
		case "items":
			if err := decodeItems(s, k, visit); err != nil {
				return listMeta{}, err
			}
		default:
			if err := s.skip(); err != nil {
				return listMeta{}, fmt.Errorf("decoding the list: %w", err)
			}
		}
	}
}

func decodeItems(s *jsonScanner, k keep, visit func(*unstructured.Unstructured) error) error {
	c, err := s.peek()
	if err != nil {
		return fmt.Errorf("decoding the list's items: %w", err)
	}
	if c == 'n' {
		return s.literal("null")
	}
	if c != '[' {
		return fmt.Errorf("decoding the list's items: %s", s.syntax(c, "where an array was expected"))
	}
	s.i++
	if err := s.enter(); err != nil {
		return fmt.Errorf("decoding the list's items: %w", err)
	}
	for i, first := 0, true; ; i, first = i+1, false {
		more, err := s.element(first)
		if err != nil {
			return fmt.Errorf("decoding the list's items: %w", err)
		}
		if !more {
			return nil
		}
		v, err := s.prune(k)
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
}

// prune reads one JSON value, keeping of an object only the fields k names
// (all of it when k is nil) and skipping the rest unbuilt. Values are as
// apimachinery decodes them (integers int64, other numbers float64), so the
// helpers that read the pruned object see what they would see in the whole
// one.
func (s *jsonScanner) prune(k keep) (any, error) {
	c, err := s.peek()
	if err != nil {
		return nil, err
	}
	if k == nil || c != '{' {
		return s.value()
	}
	s.i++
	if err := s.enter(); err != nil {
		return nil, err
	}
	out := map[string]any{}
	for first := true; ; first = false {
		more, err := s.member(first, true)
		if err != nil || !more {
			return out, err
		}
		child, ok := k[string(s.key)]
		if !ok {
			if err := s.skip(); err != nil {
				return nil, err
			}
			continue
		}
		key := s.internedKey()
		if out[key], err = s.prune(child); err != nil {
			return nil, err
		}
	}
}
