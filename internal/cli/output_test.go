package cli

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"relabel.dev/relabel/discovery"
	"relabel.dev/relabel/engine"
	"relabel.dev/relabel/rules"
	workload "relabel.dev/relabel/unstructured"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// golden compares got with testdata/NAME.golden, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func sampleAudit(namespace string) AuditReport {
	label := workload.Label{Key: "stage", Value: "prod"}
	findings := []engine.Finding{
		{GVR: "apps/v1/daemonsets", Kind: "DaemonSet", Namespace: "shop", Name: "agent",
			Report:        workload.Report{Selector: workload.Missing, Template: workload.Missing, Metadata: workload.Missing},
			LabelSelector: "app=agent"},
		{GVR: "apps/v1/deployments", Kind: "Deployment", Namespace: "shop", Name: "web",
			Report:    workload.Report{Selector: workload.Missing, Template: workload.Present, Metadata: workload.Present},
			ManagedBy: "Helm", LabelSelector: "app=web,tier in (front)"},
		{GVR: "apps/v1/deployments", Kind: "Deployment", Namespace: "shop", Name: "worker",
			Report: workload.Report{Selector: workload.Different, Template: workload.Different, Metadata: workload.Different},
			Owner:  "Rollout/worker", ManagedBy: "Argo CD", LabelSelector: "app=worker,stage=dev"},
		{GVR: "demo.relabel.dev/v1alpha1/rollouts", Kind: "Rollout", Namespace: "shop", Name: "checkout",
			Report: workload.Report{Selector: workload.Present, Template: workload.Present, Metadata: workload.Present}, Complete: true,
			LabelSelector: "app=checkout,stage=prod"},
	}
	r := newAuditReport(label, findings)
	r.scope.Namespace = namespace
	return r
}

func TestAuditTable(t *testing.T) {
	for _, tc := range []struct {
		name      string
		namespace string
		format    string
	}{
		{"audit-table", "shop", outputTable},
		{"audit-wide", "shop", outputWide},
		{"audit-wide-all-namespaces", "", outputWide},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if err := printAudit(&out, &errOut, tc.format, sampleAudit(tc.namespace)); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, out.Bytes())
		})
	}
}

func TestMultiClusterAudit(t *testing.T) {
	empty := newAuditReport(workload.Label{Key: "stage", Value: "prod"}, nil)
	empty.scope.Namespace = "shop"
	full := sampleAudit("shop")
	results := []ClusterResult[AuditReport]{
		newClusterResult(Target{Connection: Connection{Context: "prod"}, Server: "https://prod.example.com:6443"}, &full, nil),
		newClusterResult(Target{Connection: Connection{Context: "dev"}, Server: "https://dev.example.com:6443"}, &empty, nil),
		newClusterResult[AuditReport](Target{Connection: Connection{Context: "gone"}, Server: "https://127.0.0.1:1"}, nil,
			errors.New(`cluster https://127.0.0.1:1: Get "https://127.0.0.1:1/api": dial tcp 127.0.0.1:1: connect: connection refused`)),
	}
	for _, format := range []string{outputTable, outputWide, outputJSON, outputYAML} {
		t.Run(format, func(t *testing.T) {
			var out bytes.Buffer
			cfg := AuditConfig{Label: workload.Label{Key: "stage", Value: "prod"}, Output: format}
			if err := printMultiAudit(&out, cfg, results); err != nil {
				t.Fatal(err)
			}
			golden(t, "audit-multi-"+format, out.Bytes())
		})
	}
}

func sampleKinds() KindsDocument {
	deploy, _ := rules.Builtin(schema.GroupKind{Group: "apps", Kind: "Deployment"})
	deploy.Version, deploy.Resource, deploy.Namespaced = "v1", "deployments", true
	sts, _ := rules.Builtin(schema.GroupKind{Group: "apps", Kind: "StatefulSet"})
	sts.Version, sts.Resource, sts.Namespaced = "v1", "statefulsets", true
	workloads := rules.Kind{Group: "example.com", Version: "v1", Kind: "Workload", Resource: "workloads", Namespaced: true,
		SelectorPath: "spec.workload.selector", TemplateLabelsPath: "spec.workload.template.metadata.labels",
		Strategy: rules.TempCopy, MaxNameLength: 63, Source: "rules.yaml",
		Readiness: "self.status.observedGeneration >= self.metadata.generation &&\n  self.status.readyReplicas == self.spec.replicas"}
	return *newKindsDocument(&discovery.Result{
		Workloads: []rules.Kind{deploy, sts, workloads},
		Skipped:   []discovery.Skipped{{GVR: "batch/v1/jobs", Kind: "Job", Reason: "runs to completion; its pods are not replaced"}},
	})
}

func TestKindsTable(t *testing.T) {
	for _, format := range []string{outputTable, outputWide} {
		t.Run(format, func(t *testing.T) {
			var out bytes.Buffer
			if err := printKinds(&out, format, sampleKinds()); err != nil {
				t.Fatal(err)
			}
			golden(t, "kinds-"+format, out.Bytes())
		})
	}
}

func TestMigrationTable(t *testing.T) {
	deploy, _ := rules.Builtin(schema.GroupKind{Group: "apps", Kind: "Deployment"})
	deploy.Version, deploy.Resource = "v1", "deployments"
	sts, _ := rules.Builtin(schema.GroupKind{Group: "apps", Kind: "StatefulSet"})
	sts.Version, sts.Resource = "v1", "statefulsets"
	label := workload.Label{Key: "stage", Value: "prod"}
	results := []engine.Result{
		{Item: engine.Item{Kind: deploy, Namespace: "shop", Name: "web", Label: label, Strategy: rules.TempCopy}, Outcome: engine.Migrated, Duration: 3200 * time.Millisecond},
		{Item: engine.Item{Kind: sts, Namespace: "shop", Name: "db", Label: workload.Label{Key: "team", Value: "payments"}, Strategy: rules.Adopt}, Outcome: engine.Failed, Duration: 600 * time.Second, Message: "copy not ready in 10m0s; rolled back"},
		{Item: engine.Item{Kind: deploy, Namespace: "shop", Name: "done", Label: label}, Outcome: engine.Skipped, Message: "already labelled"},
	}
	for _, format := range []string{outputTable, outputWide} {
		t.Run(format, func(t *testing.T) {
			var out bytes.Buffer
			cfg := MigrateConfig{Label: label, Output: format}
			if err := printMigrationReport(&out, cfg, newMigrationReport(cfg, results)); err != nil {
				t.Fatal(err)
			}
			golden(t, "migrate-"+format, out.Bytes())
		})
	}
}

// The audit's JSON is written an item at a time; it must be the document
// printDocument writes, byte for byte, empty or not.
func TestAuditJSONStreamsTheSameDocument(t *testing.T) {
	for name, r := range map[string]AuditReport{
		"empty": newAuditReport(workload.Label{Key: "stage"}, nil),
		"one":   newAuditReport(workload.Label{Key: "stage"}, sampleAudit("shop").Items[:1]),
		"many":  sampleAudit(""),
	} {
		t.Run(name, func(t *testing.T) {
			var want, got bytes.Buffer
			if err := printDocument(&want, outputJSON, r); err != nil {
				t.Fatal(err)
			}
			if err := printAuditJSON(&got, r); err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() {
				t.Errorf("streamed:\n%s\nwant:\n%s", got.String(), want.String())
			}
		})
	}
}
