package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unsafe"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"relabel.dev/relabel/rules"
	workload "relabel.dev/relabel/unstructured"
)

// fakeLists serves lists of objects by URL path, paged by limit and continue
// (an offset), as JSON the way the API server writes it.
type fakeLists map[string][]map[string]any

func (f fakeLists) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	items, ok := f[r.URL.Path]
	if ns, resource, namespaced := namespacedPath(r.URL.Path); !ok && namespaced {
		// A namespace's list is the cluster-wide one's items there.
		all, found := f[strings.Replace(r.URL.Path, "/namespaces/"+ns+"/"+resource, "/"+resource, 1)]
		for _, item := range all {
			if item["metadata"].(map[string]any)["namespace"] == ns {
				items = append(items, item)
			}
		}
		ok = found
	}
	protobuf := strings.Contains(r.Header.Get("Accept"), "protobuf")
	if !ok && protobuf {
		w.Header().Set("Content-Type", runtime.ContentTypeProtobuf)
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write(protobufStatus(&metav1.Status{Status: metav1.StatusFailure, Message: "the server could not find the requested resource",
			Reason: metav1.StatusReasonNotFound, Code: http.StatusNotFound}))
		return
	}
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","message":"the server could not find the requested resource","reason":"NotFound","code":404}`))
		return
	}
	offset, _ := strconv.Atoi(r.URL.Query().Get("continue"))
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	end, cont := len(items), ""
	if limit > 0 && offset+limit < len(items) {
		end, cont = offset+limit, strconv.Itoa(offset+limit)
	}
	page := items[offset:end]
	if page == nil {
		page = []map[string]any{}
	}
	// Metadata after the items: the decoder must not depend on the order.
	meta := map[string]any{"resourceVersion": "7", "continue": cont}
	if cont != "" {
		meta["remainingItemCount"] = len(items) - end
	}
	body, _ := json.Marshal(map[string]any{"kind": "List", "apiVersion": "v1", "items": page, "metadata": meta})
	if protobuf {
		if pb, ok := protobufList(r.URL.Path, body); ok {
			w.Header().Set("Content-Type", runtime.ContentTypeProtobuf)
			_, _ = w.Write(pb)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// namespacedPath splits a namespaced list path, .../namespaces/NS/RESOURCE.
func namespacedPath(path string) (namespace, resource string, ok bool) {
	parts := strings.Split(path, "/")
	if n := len(parts); n >= 4 && parts[n-3] == "namespaces" {
		return parts[n-2], parts[n-1], true
	}
	return "", "", false
}

func fixture(t *testing.T, name string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", "objects", name))
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := yaml.Unmarshal(data, &obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

// withMeta returns a copy of obj renamed, with metadata fields set.
func withMeta(obj map[string]any, name string, set map[string]any) map[string]any {
	out := (&unstructured.Unstructured{Object: obj}).DeepCopy().Object
	meta := out["metadata"].(map[string]any)
	meta["name"] = name
	for k, v := range set {
		meta[k] = v
	}
	return out
}

func builtin(t *testing.T, group, kind string) rules.Kind {
	t.Helper()
	k, ok := rules.Builtin(schema.GroupKind{Group: group, Kind: kind})
	if !ok {
		t.Fatalf("no builtin %s.%s", kind, group)
	}
	k.Namespaced = true
	return k
}

// auditBoth audits the same server through the dynamic client and through
// the raw lists, and fails unless both give the same findings, byte for byte.
func auditBoth(t *testing.T, lists fakeLists, scope Scope, label workload.Label) ([]Finding, error) {
	t.Helper()
	srv := httptest.NewServer(lists)
	t.Cleanup(srv.Close)
	config := &rest.Config{Host: srv.URL}
	dyn, err := dynamic.NewForConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := NewRawClient(config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	want, wantErr := Auditor{Dynamic: dyn, PageSize: 2}.Audit(ctx, scope, label)
	got, gotErr := Auditor{Dynamic: dyn, REST: raw, PageSize: 2}.Audit(ctx, scope, label)
	if (wantErr == nil) != (gotErr == nil) || (wantErr != nil && wantErr.Error() != gotErr.Error()) {
		t.Fatalf("raw lists: error %v, dynamic client: %v", gotErr, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("raw lists found\n%+v\ndynamic client\n%+v", got, want)
	}
	gotJSON, _ := json.Marshal(got)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Fatalf("raw lists:\n%s\ndynamic client:\n%s", gotJSON, wantJSON)
	}
	return got, gotErr
}

func TestAuditRawListsAgreeWithDynamicClient(t *testing.T) {
	deployment := fixture(t, "deployment.yaml")
	deployments := builtin(t, "apps", "Deployment")
	// A kind of a rules file, its selector and template deeper than usual.
	custom := rules.Kind{Group: "example.com", Version: "v1", Kind: "Pipeline", Resource: "pipelines", Namespaced: true,
		SelectorPath: "spec.workload.selector", TemplateLabelsPath: "spec.workload.template.metadata.labels"}
	pipeline := map[string]any{"apiVersion": "example.com/v1", "kind": "Pipeline",
		"metadata": map[string]any{"name": "p", "namespace": "shop", "labels": map[string]any{"stage": "prod"}},
		"spec": map[string]any{"replicas": int64(3), "ratio": 0.5, "workload": map[string]any{
			"selector": map[string]any{"matchLabels": map[string]any{"app": "p", "stage": "prod"}},
			"template": map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": "p"}},
				"spec": map[string]any{"containers": []any{map[string]any{"name": "c"}}}}}}}
	lists := fakeLists{
		"/apis/apps/v1/deployments": {
			deployment,
			fixture(t, "deployment-labelled.yaml"),
			fixture(t, "deployment-match-expressions.yaml"),
			fixture(t, "deployment-other-value.yaml"),
			withMeta(deployment, "helm", map[string]any{"annotations": map[string]any{"meta.helm.sh/release-name": "shop",
				"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", 10000)}}),
			withMeta(deployment, "argo", map[string]any{"annotations": map[string]any{"argocd.argoproj.io/tracking-id": "a:b"}}),
			withMeta(deployment, "flux", map[string]any{"labels": map[string]any{"app": "web", "kustomize.toolkit.fluxcd.io/name": "k"}}),
			withMeta(deployment, "owned", map[string]any{"ownerReferences": []any{
				map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "name": "not-controller", "uid": "1"},
				map[string]any{"apiVersion": "example.com/v1", "kind": "App", "name": "shop", "uid": "2", "controller": true}}}),
			withMeta(deployment, "web-temp", map[string]any{"labels": map[string]any{workload.TempLabelKey: "web"}}),
			withMeta(deployment, "managed-fields", map[string]any{"managedFields": []any{map[string]any{"manager": "kubectl", "fieldsV1": map[string]any{"f:spec": map[string]any{}}}}}),
		},
		"/apis/apps/v1/statefulsets":     {fixture(t, "statefulset.yaml")},
		"/apis/apps/v1/daemonsets":       {},
		"/apis/example.com/v1/pipelines": {pipeline, withMeta(pipeline, "q", nil)},
	}
	kinds := []rules.Kind{deployments, builtin(t, "apps", "StatefulSet"), builtin(t, "apps", "DaemonSet"), custom}
	for _, label := range []string{"stage=prod", "stage", "app=web"} {
		t.Run(label, func(t *testing.T) {
			l, err := workload.ParseLabel(label, true)
			if err != nil {
				t.Fatal(err)
			}
			findings, err := auditBoth(t, lists, Scope{Kinds: kinds}, l)
			if err != nil {
				t.Fatal(err)
			}
			if len(findings) != 12 { // all but the copy
				t.Errorf("%d findings, want 12", len(findings))
			}
		})
	}
	t.Run("namespace", func(t *testing.T) {
		lists := fakeLists{"/apis/apps/v1/namespaces/shop/deployments": lists["/apis/apps/v1/deployments"]}
		if _, err := auditBoth(t, lists, Scope{Kinds: kinds[:1], Namespace: "shop"}, workload.Label{Key: "stage", Value: "prod"}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAuditRawListsFailAsDynamicClient(t *testing.T) {
	deployment := fixture(t, "deployment.yaml")
	deployments := builtin(t, "apps", "Deployment")
	numberLabel := withMeta(deployment, "odd", nil)
	numberLabel["spec"].(map[string]any)["template"].(map[string]any)["metadata"].(map[string]any)["labels"] = map[string]any{"app": 7}
	stringSelector := withMeta(deployment, "odd", nil)
	stringSelector["spec"].(map[string]any)["selector"] = "app=web"
	arrayTemplate := withMeta(deployment, "odd", nil)
	arrayTemplate["spec"].(map[string]any)["template"] = []any{1.5, "x"}
	for name, obj := range map[string]map[string]any{"number label": numberLabel, "string selector": stringSelector, "array template": arrayTemplate} {
		t.Run(name, func(t *testing.T) {
			lists := fakeLists{"/apis/apps/v1/deployments": {deployment, obj}}
			if _, err := auditBoth(t, lists, Scope{Kinds: []rules.Kind{deployments}}, workload.Label{Key: "stage", Value: "prod"}); err == nil {
				t.Fatal("no error")
			}
		})
	}
	t.Run("missing kind", func(t *testing.T) {
		_, err := auditBoth(t, fakeLists{}, Scope{Kinds: []rules.Kind{deployments}}, workload.Label{Key: "stage", Value: "prod"})
		if err == nil || !strings.Contains(err.Error(), "apps/v1/deployments") {
			t.Fatalf("error %v, want one naming the kind", err)
		}
	})
}

func TestDecodeList(t *testing.T) {
	k := keep{"metadata": keep{"name": nil}, "spec": keep{"n": nil, "deep": keep{"x": nil}}}
	for _, tc := range []struct {
		name, body string
		want       []map[string]any
		cont       string
		remaining  *int64
		err        bool
	}{
		{name: "null items", body: `{"items":null,"metadata":{"continue":"c"}}`, cont: "c"},
		{name: "remaining", body: `{"metadata":{"continue":"c","remainingItemCount":41},"items":[]}`, cont: "c", remaining: ptr.To[int64](41)},
		{name: "no items", body: `{"kind":"List","metadata":{}}`},
		{name: "pruned", body: `{"items":[{"metadata":{"name":"a","uid":"u","Name":"b"},"spec":{"n":[1,2.5,{"m":3}],"big":{"a":[1,2,3]},"deep":{"x":1,"y":2}},"status":{}}]}`,
			want: []map[string]any{{"metadata": map[string]any{"name": "a"}, "spec": map[string]any{
				"n": []any{int64(1), 2.5, map[string]any{"m": int64(3)}}, "deep": map[string]any{"x": int64(1)}}}}},
		{name: "not an object on the path", body: `{"items":[{"spec":{"deep":[7,"s",null]}},{"spec":"x"}]}`,
			want: []map[string]any{{"spec": map[string]any{"deep": []any{int64(7), "s", nil}}}, {"spec": "x"}}},
		{name: "truncated", body: `{"items":[{"metadata":{"name":"a"}`, err: true},
		{name: "items not an array", body: `{"items":{}}`, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []map[string]any
			meta, err := decodeList(strings.NewReader(tc.body), k, func(obj *unstructured.Unstructured) error {
				got = append(got, obj.Object)
				return nil
			})
			if (err != nil) != tc.err {
				t.Fatalf("error %v, want error %v", err, tc.err)
			}
			if tc.err {
				return
			}
			if meta.Continue != tc.cont || !reflect.DeepEqual(got, tc.want) || !reflect.DeepEqual(meta.RemainingItemCount, tc.remaining) {
				t.Errorf("got %#v, metadata %+v; want %#v, continue %q, remaining %v", got, meta, tc.want, tc.cont, tc.remaining)
			}
		})
	}
}

func TestAuditKeep(t *testing.T) {
	k := keep{}
	k.add(rules.Path("spec.template").Fields())
	k.add(rules.Path("spec.template.metadata.labels").Fields())
	k.add(rules.Path("spec.selector").Fields())
	want := keep{"spec": keep{"template": nil, "selector": nil}}
	if !reflect.DeepEqual(k, want) {
		t.Errorf("got %v, want %v", k, want)
	}
}

// countingLists serves lists and counts the requests for each path; paths in
// forbidden are refused.
type countingLists struct {
	lists     fakeLists
	forbidden map[string]bool
	mu        sync.Mutex
	requests  map[string]int
}

func (c *countingLists) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.requests[r.URL.Path]++
	c.mu.Unlock()
	if c.forbidden[r.URL.Path] {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403}`))
		return
	}
	c.lists.ServeHTTP(w, r)
}

func TestAuditSplitsLargeKindsByNamespace(t *testing.T) {
	deployment := fixture(t, "deployment.yaml")
	deployments := builtin(t, "apps", "Deployment")
	var items []map[string]any
	// "a-b" sorts before "a" in the API server's keys, after it as a string.
	for _, ns := range []string{"a", "a-b", "c"} {
		for i := range minObjectsPerNamespace + 7 { // enough for a fourth, empty namespace
			items = append(items, withMeta(deployment, fmt.Sprintf("web-%02d", i), map[string]any{"namespace": ns}))
		}
	}
	namespaces := func(names ...string) []map[string]any {
		var out []map[string]any
		for _, n := range names {
			out = append(out, map[string]any{"metadata": map[string]any{"name": n}})
		}
		return out
	}
	label := workload.Label{Key: "stage", Value: "prod"}
	audit := func(t *testing.T, c *countingLists, splitMinimum int64, raw bool) []Finding {
		t.Helper()
		c.requests = map[string]int{}
		srv := httptest.NewServer(c)
		t.Cleanup(srv.Close)
		config := &rest.Config{Host: srv.URL}
		a := Auditor{PageSize: 7, SplitMinimum: splitMinimum}
		var err error
		if a.Dynamic, err = dynamic.NewForConfig(config); err != nil {
			t.Fatal(err)
		}
		if raw {
			if a.REST, err = NewRawClient(config); err != nil {
				t.Fatal(err)
			}
		}
		found, err := a.Audit(context.Background(), Scope{Kinds: []rules.Kind{deployments}}, label)
		if err != nil {
			t.Fatal(err)
		}
		return found
	}
	perNamespace := func(c *countingLists) []string {
		var out []string
		for path := range c.requests {
			if ns, _, ok := namespacedPath(path); ok {
				out = append(out, ns)
			}
		}
		sort.Strings(out)
		return out
	}
	for _, tc := range []struct {
		name       string
		namespaces []string
		forbidden  bool
		split      []string
	}{
		{name: "split", namespaces: []string{"a", "a-b", "c", "empty"}, split: []string{"a", "a-b", "c", "empty"}},
		{name: "namespaces forbidden", namespaces: []string{"a", "a-b", "c"}, forbidden: true},
		{name: "too few objects per namespace", namespaces: []string{"a", "a-b", "c", "d", "e"}},
	} {
		for _, raw := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s, raw %v", tc.name, raw), func(t *testing.T) {
				c := &countingLists{lists: fakeLists{"/apis/apps/v1/deployments": items, "/api/v1/namespaces": namespaces(tc.namespaces...)},
					forbidden: map[string]bool{"/api/v1/namespaces": tc.forbidden}}
				whole := audit(t, c, int64(len(items))+1, raw)
				if len(whole) != len(items) || c.requests["/api/v1/namespaces"] != 0 || perNamespace(c) != nil {
					t.Fatalf("below the minimum: %d findings of %d objects, requests %v; want every object in one list", len(whole), len(items), c.requests)
				}
				found := audit(t, c, int64(len(items)), raw)
				if !reflect.DeepEqual(found, whole) {
					t.Errorf("findings differ from one list's:\n%+v\n%+v", found, whole)
				}
				if got := perNamespace(c); !reflect.DeepEqual(got, tc.split) {
					t.Errorf("listed namespaces %v, want %v (requests %v)", got, tc.split, c.requests)
				}
				if c.requests["/api/v1/namespaces"] != 1 {
					t.Errorf("namespaces listed %d times, want once", c.requests["/api/v1/namespaces"])
				}
			})
		}
	}
}

// An audit keeps a Finding per object; 55,000 of them are 6.3 MiB at this
// size, 8.8 MiB with Presence as strings.
func TestFindingStaysSmall(t *testing.T) {
	if size := unsafe.Sizeof(Finding{}); size > 120 {
		t.Errorf("a Finding is %d bytes, want at most 120", size)
	}
}

// Each kind's count adds to the room reserved, so that a second kind's
// findings do not grow the slice by copies either.
func TestAuditReservesEveryKindsCount(t *testing.T) {
	r := &auditRun{}
	r.reserve(50)
	r.keep(make([]Finding, 10))
	r.reserve(5)
	if got := cap(r.findings); got < 55 {
		t.Errorf("room for %d findings after counts of 50 and 5, want at least 55", got)
	}
	r.reserve(-3)
	r.keep(make([]Finding, 100)) // more than announced: appended all the same
	r.reserve(1)
	if len(r.findings) != 110 {
		t.Errorf("%d findings kept, want 110", len(r.findings))
	}
}
