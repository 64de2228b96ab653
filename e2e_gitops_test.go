package main

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"

	"relabel.dev/relabel/engine"
	"relabel.dev/relabel/internal/testcluster"
	"relabel.dev/relabel/rules"
	workload "relabel.dev/relabel/unstructured"
)

var (
	kustomizations = rules.FluxKustomization.GVR()
	helmreleases   = rules.FluxHelmRelease.GVR()
	applications   = rules.ArgoCDApplication.GVR()
)

// installGitOpsCRDs installs the real CRDs of Flux's Kustomization and
// HelmRelease and Argo CD's Application; no controller runs.
func installGitOpsCRDs(t *testing.T, c *testcluster.Cluster) {
	t.Helper()
	for _, f := range []string{"kustomize.toolkit.fluxcd.io_kustomizations.yaml", "helm.toolkit.fluxcd.io_helmreleases.yaml", "application-crd.yaml"} {
		data, err := os.ReadFile("testdata/gitops/" + f)
		if err != nil {
			t.Fatal(err)
		}
		c.CreateCRD(t, data)
	}
}

func gitopsDeployment(name string, labels, annotations string) string {
	return fmt.Sprintf(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s, labels: {app: %[1]s, %[2]s}, annotations: {%[3]s}}
spec:
  replicas: 1
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec: {containers: [{name: c, image: example.com/c:1}]}
---`, name, labels, annotations)
}

func kustomizationYAML(name, extra string) string {
	return fmt.Sprintf(`
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: %s}
spec: {interval: 5m, prune: true, sourceRef: {kind: GitRepository, name: flux-system}%s}
---`, name, extra)
}

const applicationYAML = `
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: shop}
spec:
  project: default
  destination: {server: "https://kubernetes.default.svc", namespace: shop}
  source: {repoURL: "https://example.com/shop.git", path: deploy, targetRevision: main}
  syncPolicy:
    automated: {prune: true, selfHeal: true}
    syncOptions: [CreateNamespace=true]
`

// pausedState is what a GitOps object says of relabel's pause.
func pausedState(t *testing.T, c *testcluster.Cluster, gvr schema.GroupVersionResource, ns, name string) (paused, recorded bool) {
	obj := get(t, c, gvr, ns, name)
	_, recorded = obj.GetAnnotations()[workload.PausedAnnotation]
	if gvr == applications {
		_, found, _ := unstructured.NestedFieldNoCopy(obj.Object, "spec", "syncPolicy", "automated")
		return !found, recorded
	}
	suspend, _, _ := unstructured.NestedBool(obj.Object, "spec", "suspend")
	return suspend, recorded
}

// TestPauseGitOps migrates two Deployments of one Flux Kustomization, one of
// a Kustomization the user suspended, and one of an Argo CD Application with
// automated sync: while each original is deleted its owner is paused;
// afterwards every owner is exactly as before and the user's suspended
// Kustomization was never written.
func TestPauseGitOps(t *testing.T) {
	c := testcluster.Get(t)
	installGitOpsCRDs(t, c)
	ns, flux, argo := c.Namespace(t), c.Namespace(t), c.Namespace(t)
	kust := func(name string) string {
		return "kustomize.toolkit.fluxcd.io/name: " + name + ", kustomize.toolkit.fluxcd.io/namespace: " + flux
	}
	c.ApplyYAML(t, flux, []byte(kustomizationYAML("apps", "")+kustomizationYAML("held", ", suspend: true")))
	c.ApplyYAML(t, argo, []byte(applicationYAML))
	c.ApplyYAML(t, ns, []byte(gitopsDeployment("web", kust("apps"), "")+gitopsDeployment("api", kust("apps"), "")+
		gitopsDeployment("held-web", kust("held"), "")+
		gitopsDeployment("argo-web", "", fmt.Sprintf(`argocd.argoproj.io/tracking-id: "shop:apps/Deployment:%s/argo-web"`, ns))))
	waitRolledOut(t, c, ns)
	owners := []struct {
		gvr      schema.GroupVersionResource
		ns, name string
	}{{kustomizations, flux, "apps"}, {kustomizations, flux, "held"}, {applications, argo, "shop"}}
	before := map[string]any{}
	for _, o := range owners {
		before[o.name] = get(t, c, o.gvr, o.ns, o.name).Object["spec"]
	}
	ownerOf := map[string]int{"web": 0, "api": 0, "held-web": 1, "argo-web": 2}

	// Each original's delete, with its owner's state as the delete is seen.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := c.Dynamic.Resource(deployments).Namespace(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	pausedAtDelete := map[string]bool{}
	var watching sync.WaitGroup
	watching.Go(func() {
		for ev := range w.ResultChan() {
			obj, ok := ev.Object.(*unstructured.Unstructured)
			if !ok || ev.Type != watch.Deleted || strings.HasSuffix(obj.GetName(), "-temp") {
				continue
			}
			o := owners[ownerOf[obj.GetName()]]
			paused, _ := pausedState(t, c, o.gvr, o.ns, o.name)
			mu.Lock()
			order = append(order, fmt.Sprintf("deleted %s (%s paused: %v)", obj.GetName(), o.name, paused))
			if _, seen := pausedAtDelete[obj.GetName()]; !seen {
				pausedAtDelete[obj.GetName()] = paused
			}
			mu.Unlock()
		}
	})

	t0 := time.Now()
	r := relabel(t, c, nil, "--label", "stage=production", "-n", ns, "--gvr", "deployments", "--yes", "--pause-gitops",
		"--argocd-namespace", argo, "--concurrency", "4", "--backup-dir", t.TempDir())
	cancel()
	watching.Wait()
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	t.Logf("order: %v", order)
	for name, i := range ownerOf {
		assertLabelled(t, get(t, c, deployments, ns, name), "stage", "production")
		paused, seen := pausedAtDelete[name]
		if !seen {
			t.Errorf("no delete of %s was seen", name)
		}
		if !paused {
			t.Errorf("%s was deleted while %s was not paused", name, owners[i].name)
		}
	}
	for _, o := range owners {
		after := get(t, c, o.gvr, o.ns, o.name)
		if !reflect.DeepEqual(after.Object["spec"], before[o.name]) {
			t.Errorf("%s: spec after the run\n %v\nwant\n %v", o.name, after.Object["spec"], before[o.name])
		}
		if _, ok := after.GetAnnotations()[workload.PausedAnnotation]; ok {
			t.Errorf("%s keeps relabel's record", o.name)
		}
	}
	if automated, _, _ := unstructured.NestedMap(get(t, c, applications, argo, "shop").Object, "spec", "syncPolicy", "automated"); !reflect.DeepEqual(automated, map[string]any{"prune": true, "selfHeal": true}) {
		t.Errorf("automated after the run: %v", automated)
	}
	writes, _ := writesSince(t, c, t0, flux, argo)
	var kustWrites, heldWrites, appWrites int
	for _, w := range writes {
		switch {
		case w.ObjectRef.Resource == "kustomizations" && w.ObjectRef.Name == "held":
			heldWrites++
		case w.ObjectRef.Resource == "kustomizations":
			kustWrites++
		case w.ObjectRef.Resource == "applications":
			appWrites++
		}
	}
	if heldWrites != 0 {
		t.Errorf("%d writes to the Kustomization the user suspended, want 0", heldWrites)
	}
	// Once paused and once resumed, however many objects share it.
	if kustWrites != 2 || appWrites != 2 {
		t.Errorf("writes: Kustomization apps %d, Application %d; want 2 each", kustWrites, appWrites)
	}
}

// TestPauseGitOpsCrash kills relabel right after it deleted the original:
// the Kustomization stays suspended, with relabel's record; the rerun finds
// the record, migrates and resumes it.
func TestPauseGitOpsCrash(t *testing.T) {
	c := testcluster.Get(t)
	installGitOpsCRDs(t, c)
	ns, flux := c.Namespace(t), c.Namespace(t)
	c.ApplyYAML(t, flux, []byte(kustomizationYAML("apps", ", suspend: false")))
	c.ApplyYAML(t, ns, []byte(gitopsDeployment("web", "kustomize.toolkit.fluxcd.io/name: apps, kustomize.toolkit.fluxcd.io/namespace: "+flux, "")))
	waitRolledOut(t, c, ns)
	before := get(t, c, kustomizations, flux, "apps").Object["spec"]
	args := []string{"--label", "stage=production", "-n", ns, "--yes", "--pause-gitops", "--backup-dir", t.TempDir()}

	r := relabel(t, c, []string{"RELABEL_TEST_CRASH_AFTER=" + string(engine.StepOriginalDeleted)}, args...)
	if !r.killed {
		t.Fatalf("relabel was not killed (exit %d)", r.code)
	}
	if paused, recorded := pausedState(t, c, kustomizations, flux, "apps"); !paused || !recorded {
		t.Fatalf("after the crash: suspended %v, recorded %v; want both", paused, recorded)
	}
	if r := relabel(t, c, nil, args...); r.code != 0 {
		t.Fatalf("rerun: exit %d", r.code)
	}
	assertLabelled(t, get(t, c, deployments, ns, "web"), "stage", "production")
	after := get(t, c, kustomizations, flux, "apps")
	if !reflect.DeepEqual(after.Object["spec"], before) {
		t.Errorf("spec after the rerun %v, want %v", after.Object["spec"], before)
	}
	if _, ok := after.GetAnnotations()[workload.PausedAnnotation]; ok {
		t.Error("the rerun left relabel's record")
	}
}

// TestGitOpsPlanWithoutPause: without --pause-gitops the plan names the
// owner and what its next reconcile does; a dry run writes nothing.
func TestGitOpsPlanWithoutPause(t *testing.T) {
	c := testcluster.Get(t)
	installGitOpsCRDs(t, c)
	ns := c.Namespace(t)
	c.ApplyYAML(t, ns, []byte(gitopsDeployment("web", "kustomize.toolkit.fluxcd.io/name: apps, kustomize.toolkit.fluxcd.io/namespace: flux-system", "")+
		gitopsDeployment("chart", "app.kubernetes.io/instance: chart, app.kubernetes.io/managed-by: Helm", "")))
	t0 := time.Now()
	r := relabel(t, c, nil, "--label", "stage=production", "-n", ns, "--dry-run=client", "--backup-dir", t.TempDir())
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	want := `managed by Flux Kustomization flux-system/apps: its next reconcile re-applies the old selector (fails with "field is immutable"`
	if !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "--pause-gitops") {
		t.Errorf("the plan does not name the owner and the consequence:\n%s", r.stderr)
	}
	if strings.Contains(r.stderr, "Argo CD Application") {
		t.Errorf("a Helm release's instance label was taken for an Application:\n%s", r.stderr)
	}
	if writes := writesOnly(t, c, t0, ns); len(writes) > 0 {
		t.Errorf("%d writes, want none: %+v", len(writes), writes)
	}
}

// TestPauseGitOpsPreflight: a ServiceAccount with the generated role less
// patch on Kustomizations is refused before any write.
func TestPauseGitOpsPreflight(t *testing.T) {
	c := testcluster.Get(t)
	installGitOpsCRDs(t, c)
	ns := c.Namespace(t)
	c.ApplyYAML(t, ns, []byte(kustomizationYAML("apps", "")+
		gitopsDeployment("web", "kustomize.toolkit.fluxcd.io/name: apps, kustomize.toolkit.fluxcd.io/namespace: "+ns, "")))
	waitRolledOut(t, c, ns)
	perms, err := engine.MigrationRolePermissions([]rules.Kind{deploymentKindForTest(t)}, rules.TempCopy)
	if err != nil {
		t.Fatal(err)
	}
	var kept []engine.Permission
	for _, p := range append(perms, engine.GitOpsRolePermissions()...) {
		if p.Resource != "kustomizations" || p.Verb != "patch" {
			kept = append(kept, p)
		}
	}
	restricted := &testcluster.Cluster{Kubeconfig: kubeconfigFor(t, c, ns, engine.PolicyRules(kept))}
	beforeUID := get(t, c, deployments, ns, "web").GetUID()
	t0 := time.Now()
	r := relabel(t, restricted, nil, "--label", "stage=production", "-n", ns, "--gvr", "deployments", "--strategy", "temp-copy",
		"--yes", "--pause-gitops", "--backup-dir", t.TempDir())
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	if !strings.Contains(r.stderr, "patch kustomizations.kustomize.toolkit.fluxcd.io in namespace "+ns) {
		t.Errorf("preflight does not name the missing patch:\n%s", r.stderr)
	}
	writes, _ := writesSince(t, c, t0, ns)
	for _, w := range writes {
		if w.User.Username == "system:serviceaccount:"+ns+":restricted" {
			t.Errorf("a write by the ServiceAccount: %+v", w)
		}
	}
	if paused, recorded := pausedState(t, c, kustomizations, ns, "apps"); paused || recorded {
		t.Error("the Kustomization was paused although preflight failed")
	}
	if get(t, c, deployments, ns, "web").GetUID() != beforeUID {
		t.Error("the Deployment was replaced although preflight failed")
	}
}

func deploymentKindForTest(t *testing.T) rules.Kind {
	k, ok := rules.Builtin(schema.GroupKind{Group: "apps", Kind: "Deployment"})
	if !ok {
		t.Fatal("no built-in Deployment")
	}
	return k
}

var _ = helmreleases
