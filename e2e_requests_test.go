package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"relabel.dev/relabel/internal/testcluster"
)

// requestsIn counts relabel's requests in namespace ns since t0, from the
// API server's audit log, by "VERB RESOURCE"; a request logged at several
// stages counts once. Updates refused with a conflict are also counted
// under "conflict update RESOURCE".
func requestsIn(t *testing.T, c *testcluster.Cluster, t0 time.Time, ns string) map[string]int {
	t.Helper()
	seen := map[string]bool{}
	counts := map[string]int{}
	for _, e := range auditEventsSince(t, c, t0) {
		if e.UserAgent != "relabel" || e.ObjectRef.Namespace != ns || seen[e.AuditID] {
			continue
		}
		seen[e.AuditID] = true
		verb := e.Verb
		if strings.Contains(e.RequestURI, "dryRun=") {
			verb += " (dry run)"
		}
		counts[verb+" "+e.ObjectRef.Resource]++
		if e.Verb == "update" && e.ResponseStatus.Code == http.StatusConflict {
			counts["conflict update "+e.ObjectRef.Resource]++
		}
	}
	return counts
}

// TestOneReadAndOneEventPerObject: a migration of Deployments whose pods
// take seconds to become ready decides from its informers: one GET per
// object (its whole original, for the backup and the copy), and one Event
// per object, counted in the API server's audit log.
func TestOneReadAndOneEventPerObject(t *testing.T) {
	c := testcluster.Get(t)
	if c.AuditLog == "" {
		t.Skip("the audit log is only known for the cluster the tests start")
	}
	ns := c.Namespace(t)
	const n = 4
	var manifests strings.Builder
	for i := range n {
		fmt.Fprintf(&manifests, `---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app-%d, labels: {app: app-%d}}
spec:
  replicas: 2
  selector: {matchLabels: {app: app-%d}}
  template:
    metadata:
      labels: {app: app-%d}
      annotations: {pod-ready.stage.kwok.x-k8s.io/delay: 2s, pod-ready.stage.kwok.x-k8s.io/jitter-delay: 3s}
    spec: {containers: [{name: c, image: example.com/c:1}]}
`, i, i, i, i)
	}
	c.ApplyYAML(t, ns, []byte(manifests.String()))
	waitRolledOut(t, c, ns)

	t0 := time.Now()
	if r := relabel(t, c, nil, "--label", "stage=production", "-n", ns, "--yes", "--backup-dir", t.TempDir()); r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	for i := range n {
		assertLabelled(t, get(t, c, deployments, ns, fmt.Sprintf("app-%d", i)), "stage", "production")
	}
	counts := requestsIn(t, c, t0, ns)
	t.Logf("relabel's requests in %s: %v", ns, counts)
	// An update refused because a controller wrote the object meanwhile
	// is retried after one fresh read: that GET is the one allowed extra.
	if got, conflicts := counts["get deployments"], counts["conflict update deployments"]; got > n+conflicts {
		t.Errorf("%d GETs of Deployments for %d objects and %d conflicting updates, want at most one each", got, n, conflicts)
	}
	if got := counts["create events"]; got != n {
		t.Errorf("%d Events created for %d objects, want one each", got, n)
	}
	// Relabel waits for its events before it exits.
	events, err := c.Kube.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "source=relabel"})
	if err != nil {
		t.Fatal(err)
	}
	per := map[string]int{}
	for _, e := range events.Items {
		per[e.InvolvedObject.Name+" "+e.Reason]++
	}
	for i := range n {
		if key := fmt.Sprintf("app-%d Relabelled", i); per[key] != 1 {
			t.Errorf("events %v: want one %q", per, key)
		}
	}
}
