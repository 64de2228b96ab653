package engine

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"
)

// typicalDeployment is a Deployment as the API server serves it, about 7 KB
// of JSON: managedFields, the last-applied annotation, a pod spec with
// environment, probes and resources, and a status.
func typicalDeployment(ns string, i int) *unstructured.Unstructured {
	name := fmt.Sprintf("app-%d", i)
	env := []any{}
	for j := range 13 {
		env = append(env, map[string]any{"name": fmt.Sprintf("VARIABLE_%d", j), "value": fmt.Sprintf("postgres://%s@db.team.svc.cluster.local:5432/%d", name, j)})
	}
	probe := map[string]any{"httpGet": map[string]any{"path": "/readyz", "port": "http"}, "initialDelaySeconds": int64(5), "periodSeconds": int64(10)}
	container := map[string]any{
		"name": "app", "image": "registry.example.com/team/" + name + ":1.2.3", "args": []any{"--config=/etc/app/config.yaml"},
		"ports": []any{map[string]any{"name": "http", "containerPort": int64(8080)}, map[string]any{"name": "metrics", "containerPort": int64(9090)}},
		"env":   env, "readinessProbe": probe, "livenessProbe": probe,
		"resources":    map[string]any{"requests": map[string]any{"cpu": "100m", "memory": "128Mi"}, "limits": map[string]any{"cpu": "500m", "memory": "512Mi"}},
		"volumeMounts": []any{map[string]any{"name": "config", "mountPath": "/etc/app"}},
	}
	fields := map[string]any{}
	for _, f := range []string{"f:metadata", "f:spec", "f:template", "f:containers", "f:env", "f:ports", "f:resources", "f:probes"} {
		fields[f] = map[string]any{"f:a": map[string]any{}, "f:b": map[string]any{}, "f:c": map[string]any{}, ".": map[string]any{}}
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{
			"name": name, "namespace": ns, "uid": fmt.Sprintf("uid-%s-%d", ns, i), "resourceVersion": fmt.Sprint(1000 + i), "generation": int64(1),
			"labels":      map[string]any{"app": name, "team": "payments", "app.kubernetes.io/part-of": "bench"},
			"annotations": map[string]any{"kubectl.kubernetes.io/last-applied-configuration": fmt.Sprintf("%02000d", i), "owner": "payments@example.com", "runbook": "https://runbooks.example.com/" + name},
			"managedFields": []any{
				map[string]any{"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "apps/v1", "fieldsType": "FieldsV1", "fieldsV1": fields},
				map[string]any{"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "apps/v1", "fieldsType": "FieldsV1", "fieldsV1": fields, "subresource": "status"},
			},
		},
		"spec": map[string]any{
			"replicas": int64(2), "selector": map[string]any{"matchLabels": map[string]any{"app": name}},
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"app": name, "team": "payments"}},
				"spec":     map[string]any{"containers": []any{container}, "volumes": []any{map[string]any{"name": "config", "configMap": map[string]any{"name": name}}}},
			},
		},
	}}
	markReady(obj)
	return obj
}

// BenchmarkWatchedMemory measures what a cluster-wide informer keeps per
// 1,000 Deployments: the planned objects slim, the others as stubs. A
// migration of 17 objects in 17 namespaces (one more than
// maxScopedNamespaces) watches the whole kind.
func BenchmarkWatchedMemory(b *testing.B) {
	const namespaces, perNamespace = 20, 250
	var objs []k8sruntime.Object
	for n := range namespaces {
		for i := range perNamespace {
			objs = append(objs, typicalDeployment(fmt.Sprintf("ns-%d", n), i))
		}
	}
	for _, planned := range []int{17, namespaces * perNamespace} {
		b.Run(fmt.Sprintf("planned=%d", planned), func(b *testing.B) {
			var perThousand float64
			for b.Loop() {
				client := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(k8sruntime.NewScheme(),
					map[schema.GroupVersionResource]string{deploymentKind.GVR(): "DeploymentList"}, objs...)
				var items []Item
				for k := range planned {
					items = append(items, Item{Kind: deploymentKind, Namespace: fmt.Sprintf("ns-%d", k%namespaces), Name: fmt.Sprintf("app-%d", k/namespaces)})
				}
				before := heap()
				w, err := newWatchers(client, items, "-temp")
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				if err := w.start(ctx, ctx); err != nil {
					b.Fatal(err)
				}
				perThousand = float64(heap()-before) / (1 << 20) / (float64(len(objs)) / 1000)
				cancel()
				w.stop()
				runtime.KeepAlive(client)
			}
			b.ReportMetric(perThousand, "MiB/1000objects")
		})
	}
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
