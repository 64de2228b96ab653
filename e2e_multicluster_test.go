package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"relabel.dev/relabel/internal/cli"
	"relabel.dev/relabel/internal/testcluster"
)

// unreachableServer is a port nothing listens on.
const unreachableServer = "https://127.0.0.1:1"

// contextsConfig is a kubeconfig with one context per cluster, named as
// given; a nil cluster stands for one that cannot be reached.
func contextsConfig(t *testing.T, clusters map[string]*testcluster.Cluster) *clientcmdapi.Config {
	t.Helper()
	merged := clientcmdapi.NewConfig()
	for name, c := range clusters {
		if c == nil {
			merged.Clusters[name] = &clientcmdapi.Cluster{Server: unreachableServer}
			merged.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: "x"}
			merged.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
			continue
		}
		cfg, err := clientcmd.LoadFromFile(c.Kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		// kwokctl names everything kwok-CLUSTER; the copies take the context's name.
		kc := cfg.Contexts[cfg.CurrentContext]
		merged.Clusters[name] = cfg.Clusters[kc.Cluster]
		merged.AuthInfos[name] = cfg.AuthInfos[kc.AuthInfo]
		merged.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	}
	return merged
}

func writeKubeconfig(t *testing.T, cfg *clientcmdapi.Config) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// twoClusters returns the shared cluster, the second one, and a namespace of
// the same name in both.
func twoClusters(t *testing.T) (a, b *testcluster.Cluster, ns string) {
	t.Helper()
	a, b = testcluster.Get(t), testcluster.Second(t)
	ns = a.Namespace(t)
	b.NamespaceNamed(t, ns)
	return a, b, ns
}

// bareDeployment lacks the label; labelledDeployment has it everywhere.
const (
	bareDeployment = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: example.com/c:1}]}
`
	labelledDeployment = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: done, labels: {app: done, stage: prod}}
spec:
  replicas: 0
  selector: {matchLabels: {app: done, stage: prod}}
  template:
    metadata: {labels: {app: done, stage: prod}}
    spec: {containers: [{name: c, image: example.com/c:1}]}
`
	otherValueDeployment = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: dev, labels: {app: dev, stage: dev}}
spec:
  replicas: 0
  selector: {matchLabels: {app: dev, stage: dev}}
  template:
    metadata: {labels: {app: dev, stage: dev}}
    spec: {containers: [{name: c, image: example.com/c:1}]}
`
)

func TestMultiClusterAudit(t *testing.T) {
	a, b, ns := twoClusters(t)
	a.ApplyYAML(t, ns, []byte(bareDeployment+"---"+labelledDeployment))
	b.ApplyYAML(t, ns, []byte(labelledDeployment))
	audit := []string{"audit", "--label", "stage=prod", "-n", ns, "--gvr", "deployments", "--all-contexts"}

	t.Run("findings in one cluster", func(t *testing.T) {
		both := &testcluster.Cluster{Kubeconfig: writeKubeconfig(t, contextsConfig(t, map[string]*testcluster.Cluster{"a": a, "b": b}))}
		r := relabel(t, both, nil, append(audit, "-o", "json", "--exit-code")...)
		if r.code != 3 {
			t.Errorf("exit %d, want 3: cluster a lacks the label", r.code)
		}
		doc := decodeJSON[cli.MultiClusterAuditReport](t, r.stdout)
		lacking := map[string]int{}
		var order []string
		for _, c := range doc.Clusters {
			order = append(order, c.Context)
			if c.Report == nil || c.Error != "" {
				t.Fatalf("context %s: no report (error %q)", c.Context, c.Error)
			}
			lacking[c.Context] = c.Report.Summary.Lacking
			if c.Server == "" || c.Report.Kind != "AuditReport" {
				t.Errorf("context %s: server %q, report kind %q", c.Context, c.Server, c.Report.Kind)
			}
		}
		if !slices.Equal(order, []string{"a", "b"}) || lacking["a"] != 1 || lacking["b"] != 0 {
			t.Errorf("contexts %v lacking %v, want a: 1, b: 0", order, lacking)
		}
		if doc.Kind != "MultiClusterAuditReport" || doc.Summary.Contexts != 2 || doc.Summary.Lacking != 1 || doc.Summary.Failed != 0 {
			t.Errorf("document %s, summary %+v", doc.Kind, doc.Summary)
		}
	})

	t.Run("one cluster unreachable", func(t *testing.T) {
		three := &testcluster.Cluster{Kubeconfig: writeKubeconfig(t, contextsConfig(t, map[string]*testcluster.Cluster{"a": a, "b": b, "c": nil}))}
		r := relabel(t, three, nil, append(audit, "-o", "json", "--exit-code", "--request-timeout", "5s")...)
		if r.code != 1 {
			t.Errorf("exit %d, want 1: an unreachable cluster outranks findings", r.code)
		}
		doc := decodeJSON[cli.MultiClusterAuditReport](t, r.stdout)
		if len(doc.Clusters) != 3 {
			t.Fatalf("%d clusters in the document, want 3", len(doc.Clusters))
		}
		for _, c := range doc.Clusters[:2] {
			if c.Report == nil {
				t.Errorf("context %s did not report: %q", c.Context, c.Error)
			}
		}
		if c := doc.Clusters[2]; c.Context != "c" || c.Report != nil || !strings.Contains(c.Error, "127.0.0.1:1") || c.Server != unreachableServer {
			t.Errorf("unreachable context: %+v", c)
		}
		if !strings.Contains(r.stderr, "1 of 3 contexts failed: c:") {
			t.Errorf("stderr does not name the failed context: %q", r.stderr)
		}

		r = relabel(t, three, nil, append(audit, "-o", "wide")...)
		sections := []string{"== context a (" + a.Config.Host + ") ==", "== context b (" + b.Config.Host + ") ==", "== context c (" + unreachableServer + ") =="}
		at := -1
		for _, s := range sections {
			i := strings.Index(r.stdout, s)
			if i <= at {
				t.Errorf("section %q missing or out of order in:\n%s", s, r.stdout)
			}
			at = i
		}
		if !strings.Contains(r.stdout[at:], "error:") || !strings.Contains(r.stdout, "LABEL SELECTOR") || r.code != 1 {
			t.Errorf("exit %d; want the error in c's section and wide columns:\n%s", r.code, r.stdout)
		}
	})
}

// TestContextOrderAndMergedKubeconfig gives the contexts in two files through
// $KUBECONFIG, as kubectl merges them, and expects them in the order given.
func TestContextOrderAndMergedKubeconfig(t *testing.T) {
	a, b, ns := twoClusters(t)
	var files []string
	for name, c := range map[string]*testcluster.Cluster{"a": a, "b": b} {
		files = append(files, writeKubeconfig(t, contextsConfig(t, map[string]*testcluster.Cluster{name: c})))
	}
	env := []string{"KUBECONFIG=" + strings.Join(files, string(os.PathListSeparator))}
	fromEnv := &testcluster.Cluster{} // no --kubeconfig: $KUBECONFIG
	for _, order := range [][]string{{"b", "a"}, {"a", "b"}} {
		args := []string{"audit", "--label", "stage", "-n", ns, "--gvr", "deploy", "-o", "json"}
		for _, name := range order {
			args = append(args, "--context", name)
		}
		r := relabel(t, fromEnv, env, args...)
		var got []string
		for _, c := range decodeJSON[cli.MultiClusterAuditReport](t, r.stdout).Clusters {
			got = append(got, c.Context)
		}
		if r.code != 0 || !slices.Equal(got, order) {
			t.Errorf("exit %d, contexts %v, want 0 and %v", r.code, got, order)
		}
	}
	r := relabel(t, fromEnv, env, "kinds", "--all-contexts")
	if r.code != 0 || strings.Count(r.stdout, "apps/v1/deployments") != 2 || strings.Index(r.stdout, "== context a") > strings.Index(r.stdout, "== context b") {
		t.Errorf("kinds over both contexts: exit %d\n%s", r.code, r.stdout)
	}
	if r := relabel(t, fromEnv, env, "audit", "--label", "stage", "--context", "a", "--all-contexts"); r.code != 2 {
		t.Errorf("--context with --all-contexts: exit %d, want 2", r.code)
	}
	if r := relabel(t, fromEnv, env, "audit", "--label", "stage", "--context", "a", "--context", "nosuch"); r.code != 2 || !strings.Contains(r.stderr, `"nosuch"`) {
		t.Errorf("unknown context: exit %d, want 2 naming it", r.code)
	}
}

// nsWrites counts relabel's writes in ns since t0, from a cluster's audit log.
func nsWrites(t *testing.T, c *testcluster.Cluster, ns string, t0 time.Time) int {
	t.Helper()
	writes, _ := writesSince(t, c, t0, ns)
	n := 0
	for _, w := range writes {
		if w.ObjectRef.Namespace == ns {
			n++
		}
	}
	return n
}

func TestMultiClusterMigrate(t *testing.T) {
	a, b, ns := twoClusters(t)
	a.ApplyYAML(t, ns, []byte(bareDeployment))
	b.ApplyYAML(t, ns, []byte(bareDeployment+"---"+labelledDeployment))
	waitRolledOut(t, a, ns)
	waitRolledOut(t, b, ns)
	beforeA, beforeB := get(t, a, deployments, ns, "web"), get(t, b, deployments, ns, "web")
	both := &testcluster.Cluster{Kubeconfig: writeKubeconfig(t, contextsConfig(t, map[string]*testcluster.Cluster{"a": a, "b": b}))}
	backups := t.TempDir()
	migrate := []string{"--label", "stage=prod", "-n", ns, "--gvr", "deployments", "--backup-dir", backups, "--all-contexts"}
	countable := a.AuditLog != "" && b.AuditLog != ""
	if !countable {
		t.Log("the audit logs are only known for the clusters the tests start: writes are not counted")
	}

	t.Run("refused without --multi-cluster", func(t *testing.T) {
		t0 := time.Now().Add(-time.Second)
		r := relabel(t, both, nil, append(migrate, "--yes")...)
		if r.code != 2 || !strings.Contains(r.stderr, "--multi-cluster") {
			t.Errorf("exit %d, stderr %q; want 2 asking for --multi-cluster", r.code, r.stderr)
		}
		if countable {
			if n := nsWrites(t, a, ns, t0) + nsWrites(t, b, ns, t0); n != 0 {
				t.Errorf("%d writes although refused", n)
			}
		}
	})

	t.Run("a plan that fails in one cluster stops every cluster", func(t *testing.T) {
		b.ApplyYAML(t, ns, []byte(otherValueDeployment)) // cannot take stage=prod
		t0 := time.Now().Add(-time.Second)
		r := relabel(t, both, nil, append(migrate, "--yes", "--multi-cluster")...)
		if r.code != 2 || !strings.Contains(r.stderr, "cannot take the label") {
			t.Errorf("exit %d, want 2 for b's conflicting selector", r.code)
		}
		if countable {
			if n := nsWrites(t, a, ns, t0); n != 0 {
				t.Errorf("%d writes to cluster a although b's plan failed", n)
			}
		}
		if got := get(t, a, deployments, ns, "web"); got.GetUID() != beforeA.GetUID() {
			t.Errorf("cluster a's web was replaced although b's plan failed")
		}
	})

	t.Run("both clusters migrated", func(t *testing.T) {
		t0 := time.Now().Add(-time.Second)
		r := relabel(t, both, nil, append(migrate, "-l", "app in (web,done)", "--yes", "--multi-cluster", "-o", "json")...)
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		if countable && (nsWrites(t, a, ns, t0) == 0 || nsWrites(t, b, ns, t0) == 0) {
			t.Errorf("no writes counted in one of the clusters: the zero-write checks above would prove nothing")
		}
		doc := decodeJSON[cli.MultiClusterMigrationReport](t, r.stdout)
		if len(doc.Clusters) != 2 || doc.Clusters[0].Context != "a" || doc.Clusters[1].Context != "b" {
			t.Fatalf("clusters %+v, want a then b", doc.Clusters)
		}
		for _, c := range doc.Clusters {
			if c.Report == nil || c.Report.Summary["migrated"] != 1 || c.Error != "" {
				t.Errorf("context %s: %+v, want one object migrated", c.Context, c)
			}
		}
		for name, c := range map[string]*testcluster.Cluster{"a": a, "b": b} {
			assertLabelled(t, get(t, c, deployments, ns, "web"), "stage", "prod")
			// Same namespace and name in both clusters: backups must not collide.
			if _, err := os.Stat(filepath.Join(backups, clusterUID(t, c), ns, "deployments.v1.apps", "web.yaml")); err != nil {
				t.Errorf("context %s: no backup of web: %v", name, err)
			}
		}
		if get(t, a, deployments, ns, "web").GetUID() == beforeA.GetUID() || get(t, b, deployments, ns, "web").GetUID() == beforeB.GetUID() {
			t.Errorf("web was not recreated in both clusters")
		}
	})
}

func TestMultiClusterMigrateStopsAtFirstFailure(t *testing.T) {
	a, b, ns := twoClusters(t)
	a.ApplyYAML(t, ns, []byte(stuckDeployment))
	b.ApplyYAML(t, ns, []byte(bareDeployment))
	waitRolledOut(t, b, ns)
	both := &testcluster.Cluster{Kubeconfig: writeKubeconfig(t, contextsConfig(t, map[string]*testcluster.Cluster{"a": a, "b": b}))}
	migrate := []string{"--label", "stage=prod", "-n", ns, "--gvr", "deployments", "--backup-dir", t.TempDir(),
		"--context", "a", "--context", "b", "--yes", "--multi-cluster", "--timeout", "3s", "-o", "json"}

	r := relabel(t, both, nil, migrate...)
	doc := decodeJSON[cli.MultiClusterMigrationReport](t, r.stdout)
	if r.code != 1 || len(doc.Clusters) != 2 || doc.Clusters[0].Report.Summary["failed"] != 1 || !strings.Contains(doc.Clusters[1].Error, "not started") {
		t.Errorf("exit %d, clusters %+v; want 1, a failed, b not started", r.code, doc.Clusters)
	}
	if web := get(t, b, deployments, ns, "web"); web.GetLabels()["stage"] != "" {
		t.Errorf("cluster b was migrated after a failed")
	}

	r = relabel(t, both, nil, append(migrate, "--keep-going")...)
	doc = decodeJSON[cli.MultiClusterMigrationReport](t, r.stdout)
	if r.code != 1 || doc.Clusters[1].Report == nil || doc.Clusters[1].Report.Summary["migrated"] != 1 {
		t.Errorf("exit %d, clusters %+v; want 1 with b migrated", r.code, doc.Clusters)
	}
	assertLabelled(t, get(t, b, deployments, ns, "web"), "stage", "prod")
}
