package engine

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"unsafe"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"

	"relabel.dev/relabel/rules"
	workload "relabel.dev/relabel/unstructured"
)

// benchDeployment is a Deployment as the API server lists it, about 6 KB of
// JSON: managed fields, the last-applied annotation, a pod template with
// env, resources and probes, and a status with conditions.
func benchDeployment(i int) map[string]any {
	name := fmt.Sprintf("web-%d", i)
	labels := map[string]any{"app": name, "tier": "frontend", "app.kubernetes.io/part-of": "shop"}
	var env []any
	for j := 0; j < 12; j++ {
		env = append(env, map[string]any{"name": fmt.Sprintf("SETTING_%d", j), "value": fmt.Sprintf("value-%d-with some text", j)})
	}
	env = append(env, map[string]any{"name": "POD_IP", "valueFrom": map[string]any{"fieldRef": map[string]any{"apiVersion": "v1", "fieldPath": "status.podIP"}}})
	probe := func(path string) map[string]any {
		return map[string]any{"httpGet": map[string]any{"path": path, "port": 8080, "scheme": "HTTP"},
			"initialDelaySeconds": 5, "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3}
	}
	container := map[string]any{
		"name": "web", "image": "registry.example.com/shop/web:1.27.3", "imagePullPolicy": "IfNotPresent",
		"args":  []any{"--port=8080", "--log-level=info", "--cache-size=512"},
		"ports": []any{map[string]any{"name": "http", "containerPort": 8080, "protocol": "TCP"}},
		"env":   env,
		"resources": map[string]any{"limits": map[string]any{"cpu": "500m", "memory": "512Mi"},
			"requests": map[string]any{"cpu": "100m", "memory": "128Mi"}},
		"livenessProbe": probe("/healthz"), "readinessProbe": probe("/ready"),
		"volumeMounts":             []any{map[string]any{"name": "config", "mountPath": "/etc/web", "readOnly": true}},
		"terminationMessagePath":   "/dev/termination-log",
		"terminationMessagePolicy": "File",
	}
	spec := map[string]any{
		"replicas": 3, "progressDeadlineSeconds": 600, "revisionHistoryLimit": 10,
		"selector": map[string]any{"matchLabels": map[string]any{"app": name}},
		"strategy": map[string]any{"type": "RollingUpdate", "rollingUpdate": map[string]any{"maxSurge": "25%", "maxUnavailable": "25%"}},
		"template": map[string]any{
			"metadata": map[string]any{"labels": labels, "annotations": map[string]any{"prometheus.io/scrape": "true"}},
			"spec": map[string]any{
				"containers":    []any{container},
				"volumes":       []any{map[string]any{"name": "config", "configMap": map[string]any{"name": name + "-config", "defaultMode": 420}}},
				"restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
				"securityContext": map[string]any{}, "schedulerName": "default-scheduler",
			},
		},
	}
	applied, _ := json.Marshal(map[string]any{"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": name, "namespace": "shop", "labels": labels}, "spec": spec})
	fields := map[string]any{"f:metadata": map[string]any{"f:annotations": map[string]any{".": map[string]any{},
		"f:kubectl.kubernetes.io/last-applied-configuration": map[string]any{}}, "f:labels": map[string]any{".": map[string]any{}, "f:app": map[string]any{}, "f:tier": map[string]any{}}},
		"f:spec": map[string]any{"f:replicas": map[string]any{}, "f:selector": map[string]any{}, "f:template": map[string]any{
			"f:metadata": map[string]any{"f:labels": map[string]any{".": map[string]any{}, "f:app": map[string]any{}}},
			"f:spec": map[string]any{"f:containers": map[string]any{`k:{"name":"web"}`: map[string]any{".": map[string]any{},
				"f:env":   map[string]any{".": map[string]any{}, `k:{"name":"SETTING_0"}`: map[string]any{".": map[string]any{}, "f:name": map[string]any{}, "f:value": map[string]any{}}},
				"f:image": map[string]any{}, "f:name": map[string]any{}, "f:resources": map[string]any{"f:limits": map[string]any{"f:cpu": map[string]any{}}}}}}}}}
	status := map[string]any{"f:status": map[string]any{"f:availableReplicas": map[string]any{}, "f:conditions": map[string]any{".": map[string]any{},
		`k:{"type":"Available"}`: map[string]any{".": map[string]any{}, "f:lastTransitionTime": map[string]any{}, "f:status": map[string]any{}}}}}
	return map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{
			"name": name, "namespace": "shop", "uid": fmt.Sprintf("0d5c3c2e-8a6f-4d0e-9c55-%012d", i),
			"resourceVersion": fmt.Sprint(48213 + i), "generation": 3, "creationTimestamp": "2024-05-01T10:00:00Z",
			"labels": labels,
			"annotations": map[string]any{"deployment.kubernetes.io/revision": "3",
				"kubectl.kubernetes.io/last-applied-configuration": string(applied) + "\n"},
			"managedFields": []any{
				map[string]any{"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "apps/v1",
					"time": "2024-05-01T10:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": fields},
				map[string]any{"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "apps/v1",
					"time": "2024-05-01T10:01:00Z", "fieldsType": "FieldsV1", "fieldsV1": status, "subresource": "status"},
			},
		},
		"spec": spec,
		"status": map[string]any{"observedGeneration": 3, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3,
			"conditions": []any{
				map[string]any{"type": "Available", "status": "True", "lastUpdateTime": "2024-05-01T10:01:00Z", "lastTransitionTime": "2024-05-01T10:01:00Z",
					"reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."},
				map[string]any{"type": "Progressing", "status": "True", "lastUpdateTime": "2024-05-01T10:01:00Z", "lastTransitionTime": "2024-05-01T10:00:00Z",
					"reason": "NewReplicaSetAvailable", "message": fmt.Sprintf("ReplicaSet %q has successfully progressed.", name+"-7d9c8b6f5")},
			}},
	}
}

// benchPage is one list response of n Deployments.
func benchPage(tb testing.TB, n int) []byte {
	tb.Helper()
	items := make([]any, n)
	for i := range items {
		items[i] = benchDeployment(i)
	}
	page, err := json.Marshal(map[string]any{"kind": "DeploymentList", "apiVersion": "apps/v1",
		"metadata": map[string]any{"resourceVersion": "52011", "continue": "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ"}, "items": items})
	if err != nil {
		tb.Fatal(err)
	}
	return page
}

// benchCPU runs f b.N times and reports, beside the wall time, the
// process's CPU time per run: on a loaded machine the wall time says more
// about the other jobs than about f.
func benchCPU(b *testing.B, size int, f func()) {
	b.SetBytes(int64(size))
	b.ReportAllocs()
	start := processCPU()
	for b.Loop() {
		f()
	}
	if cpu := processCPU() - start; cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// onlyReader hides bytes.Reader's WriteTo, so copies read the page in
// chunks as they would a response body.
type onlyReader struct{ io.Reader }

func BenchmarkDecodeList(b *testing.B) {
	page := benchPage(b, 500)
	kind, _ := rules.Builtin(schema.GroupKind{Group: "apps", Kind: "Deployment"})
	k := auditKeep(kind)
	b.Run("decodeList", func(b *testing.B) {
		benchCPU(b, len(page), func() {
			n := 0
			_, err := decodeList(onlyReader{bytes.NewReader(page)}, k, func(*unstructured.Unstructured) error { n++; return nil })
			if err != nil || n != 500 {
				b.Fatal(n, err)
			}
		})
	})
	// The same page in protobuf, as lists of built-in kinds are read.
	var typed appsv1.DeploymentList
	if err := json.Unmarshal(page, &typed); err != nil {
		b.Fatal(err)
	}
	pb := protobufEncode(b, &typed)
	b.Run("decodeProtoList", func(b *testing.B) {
		s := objectProto(kind)
		benchCPU(b, len(pb), func() {
			n := 0
			_, err := decodeProtoList(bufio.NewReader(onlyReader{bytes.NewReader(pb)}), s, k, func(*unstructured.Unstructured) error { n++; return nil })
			if err != nil || n != 500 {
				b.Fatal(n, err)
			}
		})
	})
	// What the audit does with each decoded object: its finding.
	var objs []*unstructured.Unstructured
	if _, err := decodeList(bytes.NewReader(page), k, func(o *unstructured.Unstructured) error { objs = append(objs, o); return nil }); err != nil {
		b.Fatal(err)
	}
	label, err := workload.ParseLabel("stage=production", false)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("finding", func(b *testing.B) {
		benchCPU(b, len(page), func() {
			for _, o := range objs {
				finding(o, kind, "shop", label)
			}
		})
	})
	b.Run("skip", func(b *testing.B) {
		benchCPU(b, len(page), func() {
			if err := newJSONScanner(onlyReader{bytes.NewReader(page)}).skip(); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("floor=io.Copy", func(b *testing.B) {
		benchCPU(b, len(page), func() {
			if _, err := io.Copy(io.Discard, onlyReader{bytes.NewReader(page)}); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("floor=json.Valid", func(b *testing.B) {
		benchCPU(b, len(page), func() {
			if !json.Valid(page) {
				b.Fatal("invalid")
			}
		})
	})
}

// BenchmarkAuditHeap audits 10,000 Deployments in 20 namespaces, served
// gzipped over HTTP/2 as the API server serves them, and reports the heap
// the findings hold once the pages are gone: what a large audit keeps per
// object until it writes its report.
func BenchmarkAuditHeap(b *testing.B) {
	const namespaces, perNamespace = 20, 500
	items := make([]any, perNamespace)
	for i := range items {
		items[i] = benchDeployment(i)
	}
	gzipped := func(v any) []byte {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		if err := json.NewEncoder(w).Encode(v); err != nil {
			b.Fatal(err)
		}
		w.Close()
		return buf.Bytes()
	}
	page := gzipped(map[string]any{"kind": "DeploymentList", "apiVersion": "apps/v1", "metadata": map[string]any{"resourceVersion": "1"}, "items": items})
	probe := gzipped(map[string]any{"kind": "DeploymentList", "apiVersion": "apps/v1",
		"metadata": map[string]any{"resourceVersion": "1", "continue": "c", "remainingItemCount": namespaces*perNamespace - 1}, "items": items[:1]})
	var names []any
	for i := range namespaces {
		names = append(names, map[string]any{"metadata": map[string]any{"name": fmt.Sprintf("shop-%03d", i)}})
	}
	nsList := gzipped(map[string]any{"kind": "NamespaceList", "apiVersion": "v1", "metadata": map[string]any{}, "items": names})
	items = nil
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Encoding", "gzip")
		switch {
		case r.URL.Path == "/api/v1/namespaces":
			w.Write(nsList)
		case r.URL.Query().Get("limit") == "1":
			w.Write(probe)
		default:
			w.Write(page)
		}
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	raw, err := NewRawClient(&rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{Insecure: true}})
	if err != nil {
		b.Fatal(err)
	}
	kind, _ := rules.Builtin(schema.GroupKind{Group: "apps", Kind: "Deployment"})
	label, err := workload.ParseLabel("stage=production", false)
	if err != nil {
		b.Fatal(err)
	}
	var held float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.GC() // and what sync.Pools kept through the first
		runtime.ReadMemStats(&before)
		findings, err := Auditor{REST: raw}.Audit(context.Background(), Scope{Kinds: []rules.Kind{kind}}, label)
		if err != nil || len(findings) != namespaces*perNamespace {
			b.Fatal(len(findings), err)
		}
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&after)
		held = float64(after.HeapAlloc-before.HeapAlloc) / float64(len(findings))
		runtime.KeepAlive(findings)
	}
	b.ReportMetric(held, "heap-B/finding")
	b.ReportMetric(float64(unsafe.Sizeof(Finding{})), "struct-B")
}
