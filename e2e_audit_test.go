package main

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"relabel.dev/relabel/engine"
	"relabel.dev/relabel/internal/cli"
	"relabel.dev/relabel/internal/testcluster"
	"relabel.dev/relabel/rules"
	workload "relabel.dev/relabel/unstructured"
)

func TestKindsFindsWorkloads(t *testing.T) {
	c := testcluster.Get(t)
	installCRDs(t, c)
	for _, format := range []string{"json", "yaml"} {
		t.Run(format, func(t *testing.T) {
			r := relabel(t, c, nil, "kinds", "-o", format)
			if r.code != 0 {
				t.Fatalf("exit %d", r.code)
			}
			var doc cli.KindsDocument
			if err := yaml.Unmarshal([]byte(r.stdout), &doc); err != nil {
				t.Fatal(err)
			}
			found := map[string]string{}
			for _, k := range doc.Kinds {
				found[k.GVRString()] = k.Source
			}
			for gvr, source := range map[string]string{
				"apps/v1/deployments":                "builtin",
				"apps/v1/statefulsets":               "builtin",
				"apps/v1/daemonsets":                 "builtin",
				"demo.relabel.dev/v1alpha1/rollouts": "crd",
			} {
				if found[gvr] != source {
					t.Errorf("kind %s: source %q, want %q (found %v)", gvr, found[gvr], source, found)
				}
			}
			if _, ok := found["demo.relabel.dev/v1/widgets"]; ok {
				t.Errorf("widgets (no selector) taken as a workload")
			}
			skipped := map[string]string{}
			for _, s := range doc.Skipped {
				skipped[s.GVR] = s.Reason
			}
			for _, gvr := range []string{"apps/v1/replicasets", "batch/v1/jobs", "demo.relabel.dev/v1/widgets"} {
				if skipped[gvr] == "" {
					t.Errorf("%s not listed as skipped with a reason: %v", gvr, skipped)
				}
			}
		})
	}
	t.Run("table", func(t *testing.T) {
		r := relabel(t, c, nil, "kinds")
		if r.code != 0 || !strings.Contains(r.stdout, "apps/v1/deployments") || !strings.Contains(r.stdout, "SKIPPED") {
			t.Fatalf("exit %d, table:\n%s", r.code, r.stdout)
		}
	})
}

func TestKindsSurvivesFailingAggregatedAPI(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	// A Service without endpoints behind an APIService: its group fails discovery.
	c.ApplyYAML(t, ns, []byte(`
apiVersion: v1
kind: Service
metadata: {name: nowhere}
spec:
  ports: [{port: 443}]
`))
	apiServiceName := "v1." + ns + ".broken.relabel.dev"
	u := &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "apiregistration.k8s.io/v1",
		"kind":       "APIService",
		"metadata":   map[string]interface{}{"name": apiServiceName},
		"spec": map[string]interface{}{
			"group": ns + ".broken.relabel.dev", "version": "v1",
			"groupPriorityMinimum": int64(100), "versionPriority": int64(100),
			"insecureSkipTLSVerify": true,
			"service":               map[string]interface{}{"namespace": ns, "name": "nowhere"},
		},
	}}
	apiServices := c.Dynamic.Resource(schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"})
	if _, err := apiServices.Create(context.Background(), u, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Removed before the namespace: a failing group blocks namespace deletion.
	defer apiServices.Delete(context.Background(), apiServiceName, metav1.DeleteOptions{})
	testcluster.Eventually(t, 30*time.Second, "the APIService to be reported unavailable", func(ctx context.Context) (bool, error) {
		got, err := apiServices.Get(ctx, apiServiceName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return strings.Contains(fmt.Sprint(got.Object["status"]), "False"), nil
	})

	r := relabel(t, c, nil, "kinds", "-o", "json")
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	if !strings.Contains(r.stderr, "warning:") || !strings.Contains(r.stderr, "broken.relabel.dev") {
		t.Errorf("no warning naming the failed group: %q", r.stderr)
	}
	doc := decodeJSON[cli.KindsDocument](t, r.stdout)
	if len(doc.Kinds) < 3 {
		t.Errorf("partial discovery lost the workloads: %v", doc.Kinds)
	}
}

func TestGVRForms(t *testing.T) {
	c := testcluster.Get(t)
	installCRDs(t, c)
	ns := c.Namespace(t)
	for _, tc := range []struct {
		gvr  string
		code int
		want string
	}{
		{"apps/v1/deployments", 0, ""},
		{"deployments", 0, ""},
		{"deploy", 0, ""},
		{"deployments.apps", 0, ""},
		{"sts", 0, ""},
		{"ds", 0, ""},
		{"ro", 0, ""},
		{"rollouts.demo.relabel.dev", 0, ""},
		{"demo.relabel.dev/v1alpha1/rollouts", 0, ""},
		{"deploymnets", 2, "did you mean apps/v1/deployments"},
		{"pods", 2, "not a workload"},
		{"replicasets", 2, "owned by Deployments"},
		{"widgets", 2, "no label selector"},
		{"apps/v2/deployments", 2, "serves apps/v1/deployments"},
	} {
		t.Run(tc.gvr, func(t *testing.T) {
			r := relabel(t, c, nil, "audit", "--label", "stage", "-n", ns, "--gvr", tc.gvr, "-o", "json")
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", r.code, r.stderr, tc.code, tc.want)
			}
		})
	}
}

const auditObjects = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: bare, labels: {app: bare}}
spec:
  replicas: 0
  selector: {matchLabels: {app: bare}}
  template:
    metadata: {labels: {app: bare}}
    spec: {containers: [{name: c, image: example.com/c:1}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: meta-only, labels: {app: meta-only, stage: prod}}
spec:
  replicas: 0
  selector: {matchLabels: {app: meta-only}}
  template:
    metadata: {labels: {app: meta-only}}
    spec: {containers: [{name: c, image: example.com/c:1}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: done, labels: {app: done, stage: prod}}
spec:
  replicas: 0
  selector: {matchLabels: {app: done, stage: prod}}
  template:
    metadata: {labels: {app: done, stage: prod}}
    spec: {containers: [{name: c, image: example.com/c:1}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: other, labels: {app: other, stage: dev}}
spec:
  replicas: 0
  selector: {matchLabels: {app: other, stage: dev}}
  template:
    metadata: {labels: {app: other, stage: dev}}
    spec: {containers: [{name: c, image: example.com/c:1}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, labels: {app: db}}
spec:
  replicas: 0
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db, stage: prod}}
    spec: {containers: [{name: c, image: example.com/c:1}]}
---
apiVersion: demo.relabel.dev/v1alpha1
kind: Rollout
metadata: {name: checkout, labels: {stage: prod}}
spec:
  selector: {matchLabels: {app: checkout, stage: prod}}
  template:
    metadata: {labels: {app: checkout, stage: prod}}
`

func TestAudit(t *testing.T) {
	c := testcluster.Get(t)
	installCRDs(t, c)
	ns := c.Namespace(t)
	c.ApplyYAML(t, ns, []byte(auditObjects))

	want := map[string][3]string{ // selector, template, metadata
		"Deployment/bare":      {"missing", "missing", "missing"},
		"Deployment/meta-only": {"missing", "missing", "present"},
		"Deployment/done":      {"present", "present", "present"},
		"Deployment/other":     {"different", "different", "different"},
		"StatefulSet/db":       {"missing", "present", "missing"},
		"Rollout/checkout":     {"present", "present", "present"},
	}
	check := func(t *testing.T, report cli.AuditReport) {
		t.Helper()
		got := map[string][3]string{}
		for _, f := range report.Items {
			got[f.Kind+"/"+f.Name] = [3]string{f.Selector.String(), f.Template.String(), f.Metadata.String()}
			if f.Namespace != ns {
				t.Errorf("%s/%s from namespace %s, want %s", f.Kind, f.Name, f.Namespace, ns)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("findings\n got %v\nwant %v", got, want)
		}
		if report.Summary.Objects != 6 || report.Summary.Lacking != 4 || report.Summary.Complete != 2 {
			t.Errorf("summary %+v, want 6 objects, 4 lacking, 2 complete", report.Summary)
		}
		if report.APIVersion != cli.SchemaVersion || report.Kind != "AuditReport" || report.Label != "stage=prod" {
			t.Errorf("header %s %s %s", report.APIVersion, report.Kind, report.Label)
		}
	}

	t.Run("json", func(t *testing.T) {
		r := relabel(t, c, nil, "audit", "--label", "stage=prod", "-n", ns, "-o", "json")
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		check(t, decodeJSON[cli.AuditReport](t, r.stdout))
	})
	t.Run("yaml", func(t *testing.T) {
		r := relabel(t, c, nil, "audit", "--label", "stage=prod", "-n", ns, "-o", "yaml")
		var report cli.AuditReport
		if err := yaml.Unmarshal([]byte(r.stdout), &report); err != nil || r.code != 0 {
			t.Fatalf("exit %d, %v", r.code, err)
		}
		check(t, report)
	})
	t.Run("table", func(t *testing.T) {
		r := relabel(t, c, nil, "audit", "--label", "stage=prod", "-n", ns)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if r.code != 0 || len(lines) != 9 {
			t.Fatalf("exit %d, %d lines, want a header, 6 rows, a blank line and a summary:\n%s", r.code, len(lines), r.stdout)
		}
		if f := strings.Fields(lines[0]); strings.Join(f, " ") != "KIND NAME SELECTOR TEMPLATE METADATA OWNER" {
			t.Errorf("header %q", lines[0])
		}
		if !strings.Contains(r.stdout, "6 objects, 4 lack stage=prod") {
			t.Errorf("no summary line:\n%s", r.stdout)
		}
	})
	t.Run("key only", func(t *testing.T) {
		r := relabel(t, c, nil, "audit", "--label", "stage", "-n", ns, "-o", "json")
		report := decodeJSON[cli.AuditReport](t, r.stdout)
		if report.Summary.Lacking != 3 { // bare, meta-only, db; "other" has the key
			t.Errorf("lacking %d, want 3", report.Summary.Lacking)
		}
	})
	t.Run("exit code", func(t *testing.T) {
		if r := relabel(t, c, nil, "audit", "--label", "stage=prod", "-n", ns, "--exit-code"); r.code != 3 {
			t.Errorf("exit %d with objects lacking the label, want 3", r.code)
		}
		if r := relabel(t, c, nil, "audit", "--label", "stage=prod", "-n", ns, "-l", "stage=prod", "--gvr", "rollouts", "--exit-code"); r.code != 0 {
			t.Errorf("exit %d with every object labelled, want 0", r.code)
		}
	})
	t.Run("selector", func(t *testing.T) {
		r := relabel(t, c, nil, "audit", "--label", "stage=prod", "-n", ns, "-l", "app in (bare,db)", "-o", "json")
		if report := decodeJSON[cli.AuditReport](t, r.stdout); report.Summary.Objects != 2 {
			t.Errorf("%d objects for -l 'app in (bare,db)', want 2", report.Summary.Objects)
		}
	})
}

// TestAuditNamespaceAtATime audits Deployments in every namespace of the
// real API server twice, in one list and a namespace at a time (the
// thresholds lowered so that a few objects suffice), and checks that both
// find the same objects and that the second did list each namespace, from
// the API server's audit log.
func TestAuditNamespaceAtATime(t *testing.T) {
	c := testcluster.Get(t)
	installCRDs(t, c) // auditObjects hold a Rollout
	var namespaces []string
	for range 3 {
		ns := c.Namespace(t)
		namespaces = append(namespaces, ns)
		c.ApplyYAML(t, ns, []byte(auditObjects))
	}
	kind, ok := rules.Builtin(schema.GroupKind{Group: "apps", Kind: "Deployment"})
	if !ok {
		t.Fatal("no built-in Deployment")
	}
	raw, err := engine.NewRawClient(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	ours := func(found []engine.Finding) []engine.Finding {
		var out []engine.Finding
		for _, f := range found {
			if slices.Contains(namespaces, f.Namespace) {
				out = append(out, f)
			}
		}
		return out
	}
	label := workload.Label{Key: "stage", Value: "prod"}
	scope := engine.Scope{Kinds: []rules.Kind{kind}}
	whole, err := engine.Auditor{Dynamic: c.Dynamic, REST: raw, PageSize: 2}.Audit(context.Background(), scope, label)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	split, err := engine.Auditor{Dynamic: c.Dynamic, REST: raw, PageSize: 2, SplitMinimum: 2, ObjectsPerNamespace: -1}.Audit(context.Background(), scope, label)
	if err != nil {
		t.Fatal(err)
	}
	if want, got := ours(whole), ours(split); len(want) != 3*strings.Count(auditObjects, "kind: Deployment") || !reflect.DeepEqual(got, want) {
		t.Fatalf("a namespace at a time found\n%+v\nin one list\n%+v", got, want)
	}
	if c.AuditLog == "" {
		return
	}
	listed := map[string]bool{}
	for _, e := range auditEventsSince(t, c, t0) {
		if e.Verb == "list" && e.ObjectRef.Resource == "deployments" {
			listed[e.ObjectRef.Namespace] = true
		}
	}
	for _, ns := range namespaces {
		if !listed[ns] {
			t.Errorf("Deployments in %s were not listed in that namespace (listed in %v)", ns, listed)
		}
	}
}

// protobufObjects have every field an audit reads set in some way:
// expressions, owners, the managed-by annotations.
const protobufObjects = `
apiVersion: v1
kind: ConfigMap
metadata: {name: owner}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: expressions
  labels: {app: expressions, "app.kubernetes.io/part-of": shop}
  annotations: {meta.helm.sh/release-name: shop, kubectl.kubernetes.io/last-applied-configuration: "{}"}
spec:
  replicas: 0
  selector:
    matchLabels: {app: expressions}
    matchExpressions:
    - {key: tier, operator: In, values: [web, api]}
    - {key: canary, operator: DoesNotExist}
  template:
    metadata: {labels: {app: expressions, tier: web}, annotations: {a: b}}
    spec: {containers: [{name: c, image: example.com/c:1}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
  labels: {stage: prod}
  annotations: {argocd.argoproj.io/tracking-id: "shop:apps/DaemonSet:ns/agent"}
spec:
  selector: {matchLabels: {app: agent, stage: prod}}
  template:
    metadata: {labels: {app: agent, stage: prod}}
    spec: {containers: [{name: c, image: example.com/c:1}]}
`

// TestAuditProtobufAgreesWithJSON audits the built-in kinds of the real API
// server through the raw client, which reads them as protobuf, and
// through the dynamic client, which reads JSON, and wants the same
// findings; the responses' content types show protobuf was read.
func TestAuditProtobufAgreesWithJSON(t *testing.T) {
	c := testcluster.Get(t)
	installCRDs(t, c) // auditObjects hold a Rollout
	ns := c.Namespace(t)
	c.ApplyYAML(t, ns, []byte(auditObjects))
	c.ApplyYAML(t, ns, []byte(protobufObjects))
	// An owner reference, which kubectl apply would not keep.
	owner, err := c.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}).Namespace(ns).Get(context.Background(), "owner", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deployments := c.Dynamic.Resource(schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}).Namespace(ns)
	patch := fmt.Sprintf(`{"metadata":{"ownerReferences":[{"apiVersion":"v1","kind":"ConfigMap","name":"owner","uid":%q,"controller":true,"blockOwnerDeletion":false}]}}`, owner.GetUID())
	if _, err := deployments.Patch(context.Background(), "bare", "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}

	config := rest.CopyConfig(c.Config)
	var mu sync.Mutex
	contentTypes := map[string]bool{}
	config.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
			resp, err := rt.RoundTrip(req)
			if err == nil && strings.HasSuffix(req.URL.Path, "/deployments") {
				mu.Lock()
				contentTypes[resp.Header.Get("Content-Type")] = true
				mu.Unlock()
			}
			return resp, err
		})
	})
	raw, err := engine.NewRawClient(config)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []rules.Kind
	for _, kind := range []string{"Deployment", "StatefulSet", "DaemonSet"} {
		k, _ := rules.Builtin(schema.GroupKind{Group: "apps", Kind: kind})
		kinds = append(kinds, k)
	}
	scope := engine.Scope{Kinds: kinds, Namespace: ns}
	for _, label := range []workload.Label{{Key: "stage", Value: "prod"}, {Key: "stage"}} {
		viaJSON, err := engine.Auditor{Dynamic: c.Dynamic, PageSize: 2}.Audit(context.Background(), scope, label)
		if err != nil {
			t.Fatal(err)
		}
		viaProtobuf, err := engine.Auditor{Dynamic: c.Dynamic, REST: raw, PageSize: 2}.Audit(context.Background(), scope, label)
		if err != nil {
			t.Fatal(err)
		}
		if len(viaJSON) != 7 || !reflect.DeepEqual(viaProtobuf, viaJSON) {
			t.Fatalf("label %s: protobuf found\n%+v\nJSON\n%+v", label, viaProtobuf, viaJSON)
		}
	}
	if !contentTypes["application/vnd.kubernetes.protobuf"] || len(contentTypes) != 1 {
		t.Fatalf("Deployments were listed as %v, want protobuf only", contentTypes)
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
