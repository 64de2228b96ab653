package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"relabel.dev/relabel/internal/testcluster"
)

// auditEvent is what the tests read of the API server's audit log.
type auditEvent struct {
	AuditID    string `json:"auditID"`
	Verb       string `json:"verb"`
	RequestURI string `json:"requestURI"`
	UserAgent  string `json:"userAgent"`
	User       struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef struct {
		Resource  string `json:"resource"`
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"objectRef"`
	RequestReceived time.Time `json:"requestReceivedTimestamp"`
	ResponseStatus  struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// auditEventsSince returns the API server's audit events of requests
// received since t0, from the log files written since then (the API server
// rotates its log).
func auditEventsSince(t *testing.T, c *testcluster.Cluster, t0 time.Time) []auditEvent {
	t.Helper()
	var out []auditEvent
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(c.AuditLog), "audit*.log"))
	for _, f := range files {
		if info, err := os.Stat(f); err != nil || info.ModTime().Before(t0) {
			continue
		}
		file, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		scanner := bufio.NewScanner(file)
		scanner.Buffer(make([]byte, 1<<20), 16<<20)
		for scanner.Scan() {
			var e auditEvent
			if json.Unmarshal(scanner.Bytes(), &e) == nil && !e.RequestReceived.Before(t0) {
				out = append(out, e)
			}
		}
		file.Close()
	}
	return out
}

// writesSince returns relabel's writing requests recorded in the audit log
// since t0. Other tests (and other test processes) share the cluster: given
// namespaces, only writes there or to cluster-scoped objects count.
func writesSince(t *testing.T, c *testcluster.Cluster, t0 time.Time, namespaces ...string) (writes []auditEvent, requests int) {
	t.Helper()
	for _, e := range auditEventsSince(t, c, t0) {
		if e.UserAgent != "relabel" {
			continue
		}
		if ns := e.ObjectRef.Namespace; len(namespaces) > 0 && ns != "" && !slices.Contains(namespaces, ns) {
			continue
		}
		requests++
		switch e.Verb {
		case "create", "update", "patch", "delete", "deletecollection":
			// A dry run asks; it writes nothing.
			if strings.Contains(e.RequestURI, "dryRun=") {
				continue
			}
			// Access reviews are questions, not writes.
			if e.ObjectRef.Resource != "selfsubjectaccessreviews" {
				writes = append(writes, e)
			}
		}
	}
	return writes, requests
}

// TestBadInputWritesNothing checks, from the API server's audit log, that
// every kind of bad input ends with a clear error, its exit code, and not
// one write.
func TestBadInputWritesNothing(t *testing.T) {
	c := testcluster.Get(t)
	if c.AuditLog == "" {
		t.Skip("the audit log is only known for the cluster the tests start")
	}
	installCRDs(t, c)
	ns := c.Namespace(t)
	applyDemo(t, c, ns)
	c.ApplyYAML(t, ns, []byte(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: dev, labels: {app: dev, stage: dev}}
spec:
  replicas: 0
  selector: {matchLabels: {app: dev, stage: dev}}
  template:
    metadata: {labels: {app: dev, stage: dev}}
    spec: {containers: [{name: c, image: example.com/c:1}]}
`))
	waitRolledOut(t, c, ns)
	backups := t.TempDir()
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	badKubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(badKubeconfig, []byte("apiVersion: v1\nclusters: [oops\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unreachable := filepath.Join(t.TempDir(), "unreachable")
	if err := os.WriteFile(unreachable, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	expired := writeTokenKubeconfig(t, c, "not-a-valid-token")
	ok := []string{"-n", ns, "--yes", "--backup-dir", backups}

	for _, tc := range []struct {
		name       string
		kubeconfig string
		args       []string
		code       int
		want       string
	}{
		{"label key too long", "", append([]string{"--label", strings.Repeat("k", 64) + "=v"}, ok...), 2, "invalid label key"},
		{"label value with bad characters", "", append([]string{"--label", "stage=a b"}, ok...), 2, "invalid label value"},
		{"reserved prefix", "", append([]string{"--label", "node.kubernetes.io/stage=x"}, ok...), 2, "reserved"},
		{"selector key with another value", "", append([]string{"--label", "stage=production"}, ok...), 2, "cannot take the label"},
		{"malformed selector", "", append([]string{"--label", "stage=production", "-l", "app in ("}, ok...), 2, "--selector"},
		{"unknown gvr", "", append([]string{"--label", "stage=production", "--gvr", "deploymnet"}, ok...), 2, "did you mean"},
		{"gvr without a selector", "", append([]string{"--label", "stage=production", "--gvr", "configmaps"}, ok...), 2, "not a workload"},
		{"missing namespace", "", []string{"--label", "stage=production", "-n", "no-such-ns", "--yes", "--backup-dir", backups}, 2, "does not exist"},
		{"conflicting flags", "", append([]string{"--label", "stage=production", "-A"}, ok...), 2, "exclude each other"},
		{"no confirmation", "", []string{"--label", "stage=production", "-n", ns, "-l", "app=web", "--backup-dir", backups}, 2, "--yes"},
		{"unwritable backup directory", "", []string{"--label", "stage=production", "-n", ns, "-l", "app=web", "--yes", "--backup-dir", notADir + "/b"}, 1, "backup directory"},
		{"malformed kubeconfig", badKubeconfig, append([]string{"--label", "stage=production"}, ok...), 1, "kubeconfig"},
		{"unreachable server", unreachable, append([]string{"--label", "stage=production", "--request-timeout", "5s"}, ok...), 1, "127.0.0.1:1"},
		{"invalid token", expired, append([]string{"--label", "stage=production"}, ok...), 1, "credentials were refused"},
		{"malformed rules file", "", append([]string{"--rules", "/dev/null/none"}, ok...), 2, "--rules"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t0 := time.Now().Add(-time.Second)
			target := c
			if tc.kubeconfig != "" {
				target = &testcluster.Cluster{Kubeconfig: tc.kubeconfig}
			}
			r := relabel(t, target, nil, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d mentioning %q", r.code, r.stderr, tc.code, tc.want)
			}
			if lines := strings.Count(strings.TrimSpace(r.stderr[strings.Index(r.stderr, "error:"):]), "\n"); tc.code == 2 && lines > 0 {
				t.Errorf("the error takes %d lines, want one", lines+1)
			}
			writes, requests := writesSince(t, c, t0, ns, "no-such-ns")
			if len(writes) > 0 {
				t.Errorf("%d writes reached the API server: %+v", len(writes), writes)
			}
			t.Logf("%d requests, 0 writes", requests)
		})
	}
}
