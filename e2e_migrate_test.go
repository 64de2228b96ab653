package main

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"relabel.dev/relabel/engine"
	"relabel.dev/relabel/internal/cli"
	"relabel.dev/relabel/internal/testcluster"
)

type workloadRef struct {
	gvr  schema.GroupVersionResource
	name string
}

var demoWorkloads = []workloadRef{
	{deployments, "web"}, {deployments, "api"}, {statefulsets, "db"}, {daemonsets, "agent"}, {rollouts, "checkout"},
}

// applyDemo creates the sample workloads, custom resource included, in ns.
func applyDemo(t *testing.T, c *testcluster.Cluster, ns string) {
	t.Helper()
	installCRDs(t, c)
	c.Apply(t, ns, "testdata/demo/workloads.yaml")
}

// loadDemo creates the sample workloads in a new namespace and waits for them.
func loadDemo(t *testing.T, c *testcluster.Cluster) (string, map[workloadRef]*unstructured.Unstructured) {
	t.Helper()
	installCRDs(t, c)
	ns := c.Namespace(t)
	applyDemo(t, c, ns)
	waitRolledOut(t, c, ns)
	before := map[workloadRef]*unstructured.Unstructured{}
	for _, w := range demoWorkloads {
		before[w] = get(t, c, w.gvr, ns, w.name)
	}
	return ns, before
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// assertMigrated checks that a workload carries the label and is otherwise
// the object it was: same name, same spec apart from the label.
// Keys in ignore may have been added too.
func assertMigrated(t *testing.T, c *testcluster.Cluster, ns string, w workloadRef, before *unstructured.Unstructured, key, value string, ignore ...string) {
	t.Helper()
	after := get(t, c, w.gvr, ns, w.name)
	assertLabelled(t, after, key, value)
	strip := func(obj *unstructured.Unstructured) map[string]interface{} {
		spec, _, _ := unstructured.NestedMap(obj.Object, "spec")
		for _, k := range append(ignore, key) {
			unstructured.RemoveNestedField(spec, "selector", "matchLabels", k)
			unstructured.RemoveNestedField(spec, "template", "metadata", "labels", k)
		}
		return spec
	}
	if b, a := strip(before), strip(after); !reflect.DeepEqual(b, a) {
		t.Errorf("%s %s: spec changed beyond the label:\nbefore %v\nafter  %v", w.gvr.Resource, w.name, b, a)
	}
	if ann := after.GetAnnotations(); ann[engineOriginAnnotation] != "" {
		t.Errorf("%s %s keeps relabel's copy annotations: %v", w.gvr.Resource, w.name, ann)
	}
}

const engineOriginAnnotation = "relabel.dev/origin-name"

// assertNoLeftovers checks that no copy, and no ReplicaSet or
// ControllerRevision of a deleted owner, remains.
func assertNoLeftovers(t *testing.T, c *testcluster.Cluster, ns string) {
	t.Helper()
	assertNoCopies(t, c, ns)
	assertNoOrphans(t, c, ns)
}

// assertNoCopies checks that no temporary copy remains.
func assertNoCopies(t *testing.T, c *testcluster.Cluster, ns string) {
	t.Helper()
	installCRDs(t, c) // rollouts are among the kinds looked at
	for _, gvr := range []schema.GroupVersionResource{deployments, statefulsets, daemonsets, rollouts} {
		for _, obj := range list(t, c, gvr, ns) {
			if strings.HasSuffix(obj.GetName(), "-temp") {
				t.Errorf("copy %s %s remains", gvr.Resource, obj.GetName())
			}
		}
	}
}

// assertNoOrphans checks that no ReplicaSet or ControllerRevision of a
// deleted owner remains once the garbage collector has had its minute.
func assertNoOrphans(t *testing.T, c *testcluster.Cluster, ns string) {
	t.Helper()
	owners := map[string]bool{}
	for _, gvr := range []schema.GroupVersionResource{deployments, statefulsets, daemonsets} {
		for _, obj := range list(t, c, gvr, ns) {
			owners[string(obj.GetUID())] = true
		}
	}
	// The garbage collector removes what the old objects owned, shortly after.
	testcluster.Eventually(t, time.Minute, "no orphaned ReplicaSets or ControllerRevisions", func(ctx context.Context) (bool, error) {
		for _, gvr := range []schema.GroupVersionResource{replicasets, revisions} {
			l, err := c.Dynamic.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err
			}
			for _, obj := range l.Items {
				ref := metav1.GetControllerOf(&obj)
				if ref == nil || !owners[string(ref.UID)] {
					return false, fmt.Errorf("%s %s is orphaned (labels %v, controller %v)", gvr.Resource, obj.GetName(), obj.GetLabels(), ref)
				}
			}
		}
		return true, nil
	})
}

func TestMigrateEveryKind(t *testing.T) {
	c := testcluster.Get(t)
	ns, before := loadDemo(t, c)
	pods := map[string]*podTracker{"web": trackPods(t, c, ns, "web"), "api": trackPods(t, c, ns, "api")}

	r := relabel(t, c, nil, "--label", "stage=production", "-n", ns, "--yes", "--backup-dir", t.TempDir(), "-o", "json")
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	report := decodeJSON[cli.MigrationReport](t, r.stdout)
	if report.Summary["migrated"] != 5 {
		t.Errorf("summary %v, want 5 migrated", report.Summary)
	}
	for _, w := range demoWorkloads {
		assertMigrated(t, c, ns, w, before[w], "stage", "production")
	}
	assertNoLeftovers(t, c, ns)
	// Ready pods behind app=web and app=api never dropped to zero.
	for _, app := range []string{"web", "api"} {
		if got, _ := pods[app].lowest(); got < 1 {
			t.Errorf("ready pods of app=%s dropped to %d during the migration:\n%s", app, got, pods[app].lowestAt)
		}
	}

	// Events tell the story in kubectl describe.
	testcluster.Eventually(t, 30*time.Second, "a Relabelled event on deployment web", func(ctx context.Context) (bool, error) {
		events, err := c.Kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=web,reason=Relabelled"})
		return err == nil && len(events.Items) > 0 && events.Items[0].Source.Component == "relabel", err
	})

	t.Run("rerun is a no-op", func(t *testing.T) {
		uids := map[string]string{}
		for _, w := range demoWorkloads {
			uids[w.name] = string(get(t, c, w.gvr, ns, w.name).GetUID())
		}
		r := relabel(t, c, nil, "--label", "stage=production", "-n", ns, "--yes", "--backup-dir", t.TempDir())
		if r.code != 0 || !strings.Contains(r.stdout, "Nothing to migrate") {
			t.Fatalf("exit %d", r.code)
		}
		for _, w := range demoWorkloads {
			if got := string(get(t, c, w.gvr, ns, w.name).GetUID()); got != uids[w.name] {
				t.Errorf("%s was recreated by a rerun", w.name)
			}
		}
	})
}

// TestCrashSafety kills relabel right after each step and reruns it.
func TestCrashSafety(t *testing.T) {
	c := testcluster.Get(t)
	installCRDs(t, c)
	steps := []engine.Step{engine.StepBackedUp, engine.StepCopyCreated, engine.StepCopyReady,
		engine.StepOriginalDeleted, engine.StepRecreated, engine.StepReady, engine.StepCopyDeleted}
	for _, step := range steps {
		t.Run(string(step), func(t *testing.T) {
			ns := c.Namespace(t)
			applyDemo(t, c, ns)
			waitRolledOut(t, c, ns)
			before := get(t, c, deployments, ns, "web")
			backups := t.TempDir()
			args := []string{"--label", "stage=production", "-n", ns, "--gvr", "deployments", "-l", "app=web", "--yes", "--backup-dir", backups}

			r := relabel(t, c, []string{cli.EnvCrashAfter + "=" + string(step)}, args...)
			if !r.killed {
				t.Fatalf("relabel was not killed after %s (exit %d)", step, r.code)
			}
			r = relabel(t, c, nil, args...)
			if r.code != 0 {
				t.Fatalf("rerun after a crash at %s: exit %d", step, r.code)
			}
			assertMigrated(t, c, ns, workloadRef{deployments, "web"}, before, "stage", "production")
			assertNoLeftovers(t, c, ns)
		})
	}
}

// stuckDeployment can never become ready: no node matches its selector.
const stuckDeployment = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: stuck, labels: {app: stuck}}
spec:
  replicas: 1
  selector: {matchLabels: {app: stuck}}
  template:
    metadata: {labels: {app: stuck}}
    spec:
      nodeSelector: {no-such-node: "true"}
      containers: [{name: c, image: example.com/c:1}]
`

func TestReadinessTimeoutRollsBack(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	c.ApplyYAML(t, ns, []byte(stuckDeployment))
	before := get(t, c, deployments, ns, "stuck")
	r := relabel(t, c, nil, "--label", "stage=production", "-n", ns, "--yes", "--timeout", "3s", "--backup-dir", t.TempDir(), "-o", "json")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	report := decodeJSON[cli.MigrationReport](t, r.stdout)
	if report.Summary["failed"] != 1 || !strings.Contains(report.Items[0].Message, "rolled back") {
		t.Errorf("report %+v, want one failure that was rolled back", report)
	}
	after := get(t, c, deployments, ns, "stuck")
	if after.GetUID() != before.GetUID() || after.GetLabels()["stage"] != "" {
		t.Errorf("the original was touched: uid %s -> %s, labels %v", before.GetUID(), after.GetUID(), after.GetLabels())
	}
	testcluster.Eventually(t, 30*time.Second, "the copy to be gone", func(ctx context.Context) (bool, error) {
		_, err := c.Dynamic.Resource(deployments).Namespace(ns).Get(ctx, "stuck-temp", metav1.GetOptions{})
		return isNotFound(err), nil
	})
}

// assertUntouched checks that nothing in ns changed: same objects, same
// resourceVersions, no copies.
func assertUntouched(t *testing.T, c *testcluster.Cluster, ns string, before map[workloadRef]*unstructured.Unstructured) {
	t.Helper()
	for w, b := range before {
		after := get(t, c, w.gvr, ns, w.name)
		if after.GetUID() != b.GetUID() || after.GetResourceVersion() != b.GetResourceVersion() {
			// Status updates by controllers change the resourceVersion; the spec must not change.
			if after.GetUID() != b.GetUID() || after.GetGeneration() != b.GetGeneration() {
				t.Errorf("%s %s was changed", w.gvr.Resource, w.name)
			}
		}
		if _, err := c.Dynamic.Resource(w.gvr).Namespace(ns).Get(context.Background(), w.name+"-temp", metav1.GetOptions{}); !isNotFound(err) {
			t.Errorf("a copy of %s exists (err %v)", w.name, err)
		}
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	c := testcluster.Get(t)
	ns, before := loadDemo(t, c)
	for _, mode := range []string{"client", "server"} {
		t.Run(mode, func(t *testing.T) {
			r := relabel(t, c, nil, "--label", "stage=production", "-n", ns, "--dry-run", mode, "--backup-dir", t.TempDir(), "-o", "json")
			if r.code != 0 {
				t.Fatalf("exit %d", r.code)
			}
			report := decodeJSON[cli.MigrationReport](t, r.stdout)
			if len(report.Items) != 5 {
				t.Errorf("%d items in the dry-run report, want 5", len(report.Items))
			}
			assertUntouched(t, c, ns, before)
		})
	}
	t.Run("diff", func(t *testing.T) {
		r := relabel(t, c, nil, "--label", "stage=production", "-n", ns, "--gvr", "deploy", "-l", "app=web", "--dry-run", "client")
		for _, want := range []string{"+++ web (recreated)", "+      stage: production", "+++ web-temp (copy)", "+  name: web-temp"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("the dry run's diff lacks %q", want)
			}
		}
		assertUntouched(t, c, ns, before)
	})
	t.Run("secrets", func(t *testing.T) {
		const secret = "s3cr3t-literal"
		c.ApplyYAML(t, ns, []byte(`
apiVersion: apps/v1
kind: Deployment
metadata:
  name: creds
  labels: {app: creds}
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{"env":[{"name":"PASSWORD","value":"`+secret+`"}]}'
spec:
  selector: {matchLabels: {app: creds}}
  template:
    metadata: {labels: {app: creds}}
    spec:
      containers:
      - name: app
        image: app:1
        env:
        - {name: PASSWORD, value: `+secret+`}
        - name: TOKEN
          valueFrom: {secretKeyRef: {name: creds, key: token, optional: true}}
`))
		r := relabel(t, c, nil, "--label", "stage=production", "-n", ns, "--gvr", "deploy", "-l", "app=creds", "--dry-run", "client")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("the dry run printed a literal env value:\n%s", r.stdout)
		}
		if !strings.Contains(r.stdout, "<redacted>") {
			t.Errorf("the diff shows no redacted context; the test no longer covers it:\n%s", r.stdout)
		}
	})
}

func TestRefusesWithoutConfirmation(t *testing.T) {
	c := testcluster.Get(t)
	ns, before := loadDemo(t, c)
	r := relabel(t, c, nil, "--label", "stage=production", "-n", ns, "--backup-dir", t.TempDir())
	if r.code != 2 || !strings.Contains(r.stderr, "--yes") {
		t.Errorf("exit %d, stderr %q; want 2 asking for --yes", r.code, r.stderr)
	}
	assertUntouched(t, c, ns, before)
}

func TestUnwritableBackupDirWritesNothing(t *testing.T) {
	c := testcluster.Get(t)
	ns, before := loadDemo(t, c)
	dir := t.TempDir()
	file := dir + "/not-a-dir"
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r := relabel(t, c, nil, "--label", "stage=production", "-n", ns, "--yes", "--backup-dir", file+"/backups")
	if r.code != 1 || !strings.Contains(r.stderr, "backup directory") {
		t.Errorf("exit %d, stderr %q; want 1 naming the backup directory", r.code, r.stderr)
	}
	assertUntouched(t, c, ns, before)
}

func TestMissingNamespaceIsUsageError(t *testing.T) {
	c := testcluster.Get(t)
	r := relabel(t, c, nil, "--label", "stage=production", "-n", "no-such-namespace", "--yes", "--backup-dir", t.TempDir())
	if r.code != 2 || !strings.Contains(r.stderr, "no-such-namespace") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestRestoreRecreatesMissingObjects(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	applyDemo(t, c, ns)
	waitRolledOut(t, c, ns)
	before := get(t, c, deployments, ns, "web")
	backups := t.TempDir()
	// A migration stopped once its copy is ready leaves a manifest and the
	// copy, which records the original's UID, behind; then the original goes.
	r := relabel(t, c, []string{cli.EnvCrashAfter + "=" + string(engine.StepCopyReady)},
		"--label", "stage=production", "-n", ns, "--gvr", "deploy", "-l", "app=web", "--yes", "--backup-dir", backups)
	if !r.killed {
		t.Fatalf("not killed after the copy was ready (exit %d)", r.code)
	}
	if err := c.Dynamic.Resource(deployments).Namespace(ns).Delete(context.Background(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, 30*time.Second, "web to be gone", func(ctx context.Context) (bool, error) {
		_, err := c.Dynamic.Resource(deployments).Namespace(ns).Get(ctx, "web", metav1.GetOptions{})
		return isNotFound(err), nil
	})

	r = relabel(t, c, nil, "restore", "-n", ns, "--backup-dir", backups, "--dry-run", "web")
	if r.code != 0 || !strings.Contains(r.stdout, "would restore apps/v1/deployments "+ns+"/web") {
		t.Fatalf("dry run: exit %d", r.code)
	}
	if _, err := c.Dynamic.Resource(deployments).Namespace(ns).Get(context.Background(), "web", metav1.GetOptions{}); !isNotFound(err) {
		t.Fatalf("restore --dry-run created web (err %v)", err)
	}
	r = relabel(t, c, nil, "restore", "-n", ns, "--backup-dir", backups, "--yes", "web")
	if r.code != 0 || !strings.Contains(r.stdout, "restored 1") {
		t.Fatalf("exit %d", r.code)
	}
	after := get(t, c, deployments, ns, "web")
	if b, a := stringsAt(t, before, "spec", "selector", "matchLabels"), stringsAt(t, after, "spec", "selector", "matchLabels"); !reflect.DeepEqual(b, a) {
		t.Errorf("restored selector %v, want %v", a, b)
	}
	r = relabel(t, c, nil, "restore", "-n", ns, "--backup-dir", backups)
	if r.code != 0 || !strings.Contains(r.stdout, "restored 0, already present 1") {
		t.Errorf("second restore: exit %d", r.code)
	}
}
