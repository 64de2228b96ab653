package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"relabel.dev/relabel/rules"
	workload "relabel.dev/relabel/unstructured"
)

// encodeProtobuf encodes obj as the API server does when asked for
// protobuf.
func encodeProtobuf(obj runtime.Object) ([]byte, error) {
	info, ok := runtime.SerializerInfoForMediaType(scheme.Codecs.SupportedMediaTypes(), runtime.ContentTypeProtobuf)
	if !ok {
		return nil, errors.New("no protobuf serializer")
	}
	var buf bytes.Buffer
	err := info.Serializer.Encode(obj, &buf)
	return buf.Bytes(), err
}

func protobufEncode(t testing.TB, obj runtime.Object) []byte {
	t.Helper()
	b, err := encodeProtobuf(obj)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func protobufStatus(status *metav1.Status) []byte {
	status.APIVersion, status.Kind = "v1", "Status"
	b, _ := encodeProtobuf(status)
	return b
}

// protobufList is a fake's JSON list page as protobuf, when its path is
// one of a built-in kind and its items fit their type.
func protobufList(path string, body []byte) ([]byte, bool) {
	var list runtime.Object
	switch {
	case strings.HasPrefix(path, "/apis/apps/v1/") && strings.HasSuffix(path, "/deployments"):
		list = &appsv1.DeploymentList{}
	case strings.HasPrefix(path, "/apis/apps/v1/") && strings.HasSuffix(path, "/statefulsets"):
		list = &appsv1.StatefulSetList{}
	case strings.HasPrefix(path, "/apis/apps/v1/") && strings.HasSuffix(path, "/daemonsets"):
		list = &appsv1.DaemonSetList{}
	default:
		return nil, false
	}
	if err := json.Unmarshal(body, list); err != nil {
		return nil, false // not of the type: the API server would hold no such object
	}
	b, err := encodeProtobuf(list)
	return b, err == nil
}

// protoObjects are objects of the three built-in kinds with every field the
// audit reads, and some it skips, set or left empty.
func protoObjects() (*appsv1.DeploymentList, *appsv1.StatefulSetList, *appsv1.DaemonSetList) {
	template := func(labels map[string]string) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{"prometheus.io/scrape": "true"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1", Env: []corev1.EnvVar{{Name: "A", Value: "b"}},
				Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}}}}},
		}
	}
	meta := metav1.ObjectMeta{
		Name: "web", Namespace: "shop", UID: "0d5c3c2e", ResourceVersion: "48213", Generation: 3,
		CreationTimestamp: metav1.Unix(1700000000, 0),
		Labels:            map[string]string{"app": "web", "app.kubernetes.io/part-of": "shop"},
		Annotations: map[string]string{
			"kubectl.kubernetes.io/last-applied-configuration": `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"}}` + "\n",
			helmReleaseAnnotation:                              "shop",
			argoTrackingAnnotation:                             "shop:apps/Deployment:shop/web",
		},
		OwnerReferences: []metav1.OwnerReference{
			{APIVersion: "v1", Kind: "ConfigMap", Name: "not-controller", UID: "1"},
			{APIVersion: "example.com/v1", Kind: "App", Name: "shop", UID: "2", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(false)},
		},
		Finalizers: []string{"example.com/keep"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply, APIVersion: "apps/v1",
			FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(`{"f:spec":{"f:replicas":{}}}`)}},
	}
	selector := &metav1.LabelSelector{
		MatchLabels: map[string]string{"app": "web"},
		MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"a", "b"}},
			{Key: "canary", Operator: metav1.LabelSelectorOpDoesNotExist},
		},
	}
	bare := metav1.ObjectMeta{Name: "bare", Namespace: "shop"}
	odd := metav1.ObjectMeta{Name: "odd", Annotations: map[string]string{helmReleaseAnnotation: "bad \xff\xfe utf-8", "": "empty key"},
		Labels: map[string]string{"": ""}, OwnerReferences: []metav1.OwnerReference{{}}}

	deployments := &appsv1.DeploymentList{ListMeta: metav1.ListMeta{ResourceVersion: "52011", Continue: "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ", RemainingItemCount: ptr.To[int64](7)},
		Items: []appsv1.Deployment{
			{ObjectMeta: meta, Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](3), Selector: selector, Template: template(map[string]string{"app": "web", "tier": "a"}),
				Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}},
				Status: appsv1.DeploymentStatus{Replicas: 3, Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue}}}},
			{ObjectMeta: bare},
			{ObjectMeta: odd, Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{}}},
		}}
	statefulSets := &appsv1.StatefulSetList{Items: []appsv1.StatefulSet{
		{ObjectMeta: meta, Spec: appsv1.StatefulSetSpec{Selector: selector, Template: template(map[string]string{"app": "db"}), ServiceName: "db",
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data", Labels: map[string]string{"x": "y"}}}}}},
		{ObjectMeta: bare},
	}}
	daemonSets := &appsv1.DaemonSetList{ListMeta: metav1.ListMeta{ResourceVersion: "9"}, Items: []appsv1.DaemonSet{
		{ObjectMeta: meta, Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}}, Template: template(map[string]string{"app": "agent"})}},
	}}
	return deployments, statefulSets, daemonSets
}

// TestProtoListAgreesWithJSON decodes the same lists in protobuf and in
// JSON, each pruned to what the audit keeps of the kind, and wants the
// same objects, field for field, and the same list metadata.
func TestProtoListAgreesWithJSON(t *testing.T) {
	deployments, statefulSets, daemonSets := protoObjects()
	for _, tc := range []struct {
		kind string
		list runtime.Object
	}{{"Deployment", deployments}, {"StatefulSet", statefulSets}, {"DaemonSet", daemonSets}} {
		t.Run(tc.kind, func(t *testing.T) {
			kind := builtin(t, "apps", tc.kind)
			k := auditKeep(kind)
			s := objectProto(kind)
			if !s.covers(k) {
				t.Fatalf("the schema of %s does not cover what the audit keeps", tc.kind)
			}
			jsonBody, err := json.Marshal(tc.list)
			if err != nil {
				t.Fatal(err)
			}
			var want []map[string]any
			wantMeta, err := decodeList(bytes.NewReader(jsonBody), k, func(o *unstructured.Unstructured) error { want = append(want, o.Object); return nil })
			if err != nil {
				t.Fatal(err)
			}
			var got []map[string]any
			gotMeta, err := decodeProtoList(bufio.NewReader(bytes.NewReader(protobufEncode(t, tc.list))), s, k,
				func(o *unstructured.Unstructured) error { got = append(got, o.Object); return nil })
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				g, _ := json.MarshalIndent(got, "", " ")
				w, _ := json.MarshalIndent(want, "", " ")
				t.Fatalf("protobuf gave\n%s\nJSON\n%s", g, w)
			}
			if !reflect.DeepEqual(gotMeta, wantMeta) {
				t.Fatalf("list metadata %+v from protobuf, %+v from JSON", gotMeta, wantMeta)
			}
		})
	}
}

// TestProtoSchemaCovers: protobuf only where every kept field is known.
func TestProtoSchemaCovers(t *testing.T) {
	deployment := builtin(t, "apps", "Deployment")
	for _, tc := range []struct {
		name string
		kind func(rules.Kind) rules.Kind
		want bool
	}{
		{"built-in", func(k rules.Kind) rules.Kind { return k }, true},
		{"no protobuf", func(k rules.Kind) rules.Kind { k.Proto = rules.ProtoSpec{}; return k }, false},
		{"other selector path", func(k rules.Kind) rules.Kind { k.SelectorPath = "spec.workload.selector"; return k }, false},
		{"labels kept whole", func(k rules.Kind) rules.Kind { k.TemplateLabelsPath = "spec.template"; return k }, false},
		{"same numbers", func(k rules.Kind) rules.Kind {
			k.Proto = rules.ProtoSpec{Version: "v1", Selector: 2, Template: 2}
			return k
		}, false},
		{"another version", func(k rules.Kind) rules.Kind { k.Version = "v2"; return k }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := tc.kind(deployment)
			if got := objectProto(k).covers(auditKeep(k)); got != tc.want {
				t.Errorf("covers = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestProtoListBroken: a response cut short or corrupted anywhere is an
// error, never a panic nor a short list taken for whole.
func TestProtoListBroken(t *testing.T) {
	deployments, _, _ := protoObjects()
	body := protobufEncode(t, deployments)
	kind := builtin(t, "apps", "Deployment")
	k, s := auditKeep(kind), objectProto(kind)
	decode := func(b []byte) (int, error) {
		n := 0
		_, err := decodeProtoList(bufio.NewReader(bytes.NewReader(b)), s, k, func(*unstructured.Unstructured) error { n++; return nil })
		return n, err
	}
	if n, err := decode(body); err != nil || n != len(deployments.Items) {
		t.Fatalf("whole: %d objects, %v", n, err)
	}
	// The Unknown's last fields (contentEncoding, contentType) are empty,
	// two bytes each, so a cut there leaves the list whole.
	trailer := 4
	for cut := 0; cut < len(body)-trailer; cut++ {
		if n, err := decode(body[:cut]); err == nil {
			t.Fatalf("cut at %d of %d: %d objects, no error", cut, len(body), n)
		}
	}
	for i := range body {
		for _, bit := range []byte{0x01, 0x80} {
			b := bytes.Clone(body)
			b[i] ^= bit
			_, _ = decode(b) // must not panic
		}
	}
	if _, err := decode([]byte(`{"items":[]}`)); err == nil {
		t.Fatal("JSON decoded as protobuf")
	}
}

// TestAuditAsksProtobufForBuiltinKinds: the raw client asks protobuf for a
// built-in kind only, reads JSON when that is what comes, and reads the
// API server's errors in protobuf as the dynamic client does in JSON.
func TestAuditAsksProtobufForBuiltinKinds(t *testing.T) {
	deployments := builtin(t, "apps", "Deployment")
	custom := rules.Kind{Group: "example.com", Version: "v1", Kind: "Pipeline", Resource: "pipelines", Namespaced: true,
		SelectorPath: rules.StandardSelectorPath, TemplateLabelsPath: rules.StandardTemplateLabelsPath}
	lists := fakeLists{
		"/apis/apps/v1/deployments":      {fixture(t, "deployment.yaml")},
		"/apis/example.com/v1/pipelines": {fixture(t, "deployment.yaml")},
	}
	var mu sync.Mutex
	accepted := map[string]string{}
	answer := "protobuf"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		accepted[r.URL.Path] = r.Header.Get("Accept")
		a := answer
		mu.Unlock()
		switch a {
		case "json":
			r.Header.Set("Accept", "application/json")
		case "forbidden":
			w.Header().Set("Content-Type", runtime.ContentTypeProtobuf)
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write(protobufStatus(&metav1.Status{Status: metav1.StatusFailure, Reason: metav1.StatusReasonForbidden, Code: http.StatusForbidden,
				Message: `deployments.apps is forbidden: User "auditor" cannot list resource "deployments" in API group "apps" at the cluster scope`}))
			return
		}
		lists.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	raw, err := NewRawClient(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	audit := func() ([]Finding, error) {
		return Auditor{REST: raw}.Audit(context.Background(), Scope{Kinds: []rules.Kind{deployments, custom}}, workload.Label{Key: "stage", Value: "prod"})
	}
	for _, a := range []string{"protobuf", "json"} {
		answer = a
		found, err := audit()
		if err != nil || len(found) != 2 {
			t.Fatalf("answered in %s: %d findings, %v", a, len(found), err)
		}
	}
	if got := accepted["/apis/apps/v1/deployments"]; got != acceptProtobuf {
		t.Errorf("Deployments listed with Accept %q, want %q", got, acceptProtobuf)
	}
	if got := accepted["/apis/example.com/v1/pipelines"]; got != "application/json" {
		t.Errorf("a custom resource listed with Accept %q, want application/json", got)
	}
	answer = "forbidden"
	_, err = audit()
	var status apierrors.APIStatus
	if !apierrors.IsForbidden(err) || !errors.As(err, &status) || !strings.Contains(err.Error(), `User "auditor" cannot list resource "deployments"`) {
		t.Fatalf("error %v, want the API server's Forbidden with its message", err)
	}
}
