package unstructured

import (
	"encoding/json"
	"reflect"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"relabel.dev/relabel/rules"
)

func deploymentWith(labels, annotations map[string]string) *unstructured.Unstructured {
	obj := &unstructured.Unstructured{}
	obj.SetAPIVersion("apps/v1")
	obj.SetKind("Deployment")
	obj.SetNamespace("shop")
	obj.SetName("web")
	obj.SetLabels(labels)
	obj.SetAnnotations(annotations)
	return obj
}

func TestGitOpsOwners(t *testing.T) {
	kust := func(ns, name string) GitOpsOwner {
		return GitOpsOwner{Kind: rules.FluxKustomization, Namespace: ns, Name: name}
	}
	app := func(ns, name string, guess bool) GitOpsOwner {
		return GitOpsOwner{Kind: rules.ArgoCDApplication, Namespace: ns, Name: name, Guess: guess}
	}
	for _, tc := range []struct {
		name        string
		labels      map[string]string
		annotations map[string]string
		want        []GitOpsOwner
	}{
		{name: "nothing"},
		{name: "flux kustomization",
			labels: map[string]string{fluxKustomizeName: "apps", fluxKustomizeNamespace: "flux-system"},
			want:   []GitOpsOwner{kust("flux-system", "apps")}},
		{name: "flux kustomization without its namespace label",
			labels: map[string]string{fluxKustomizeName: "apps"}},
		{name: "flux helmrelease",
			labels: map[string]string{fluxHelmName: "web", fluxHelmNamespace: "shop"},
			want:   []GitOpsOwner{{Kind: rules.FluxHelmRelease, Namespace: "shop", Name: "web"}}},
		{name: "argo tracking id",
			annotations: map[string]string{argoTrackingID: "shop-app:apps/Deployment:shop/web"},
			want:        []GitOpsOwner{app("argocd", "shop-app", false)}},
		{name: "argo tracking id, application in another namespace",
			annotations: map[string]string{argoTrackingID: "team-a_shop-app:apps/Deployment:shop/web"},
			want:        []GitOpsOwner{app("team-a", "shop-app", false)}},
		{name: "argo tracking id copied from another object",
			annotations: map[string]string{argoTrackingID: "shop-app:apps/Deployment:shop/api"}},
		{name: "argo tracking id of another kind",
			annotations: map[string]string{argoTrackingID: "shop-app:apps/StatefulSet:shop/web"}},
		{name: "malformed tracking id",
			annotations: map[string]string{argoTrackingID: "shop-app"}},
		{name: "tracking id wins over the instance label",
			labels:      map[string]string{appInstance: "other"},
			annotations: map[string]string{argoTrackingID: "shop-app:apps/Deployment:shop/web"},
			want:        []GitOpsOwner{app("argocd", "shop-app", false)}},
		{name: "argo instance label",
			labels: map[string]string{argoInstance: "shop-app"},
			want:   []GitOpsOwner{app("argocd", "shop-app", false)}},
		{name: "app.kubernetes.io/instance is a guess",
			labels: map[string]string{appInstance: "shop-app"},
			want:   []GitOpsOwner{app("argocd", "shop-app", true)}},
		{name: "app.kubernetes.io/instance of a Helm release is Helm's",
			labels: map[string]string{appInstance: "web", "app.kubernetes.io/managed-by": "Helm"}},
		{name: "app.kubernetes.io/instance with Helm's annotation",
			labels: map[string]string{appInstance: "web"}, annotations: map[string]string{"meta.helm.sh/release-name": "web"}},
		{name: "both flux kinds",
			labels: map[string]string{fluxKustomizeName: "apps", fluxKustomizeNamespace: "flux-system", fluxHelmName: "web", fluxHelmNamespace: "shop"},
			want:   []GitOpsOwner{kust("flux-system", "apps"), {Kind: rules.FluxHelmRelease, Namespace: "shop", Name: "web"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := GitOpsOwners(deploymentWith(tc.labels, tc.annotations), "argocd")
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestOriginalOfCopyFindsTheOwner(t *testing.T) {
	orig := deploymentWith(map[string]string{"app": "web", fluxKustomizeName: "apps", fluxKustomizeNamespace: "flux-system"},
		map[string]string{argoTrackingID: "shop-app:apps/Deployment:shop/web"})
	copy := orig.DeepCopy()
	copy.SetName("web-temp")
	copy.SetAnnotations(map[string]string{OriginNameAnnotation: "web", argoTrackingID: orig.GetAnnotations()[argoTrackingID]})
	if err := untrack(copy); err != nil {
		t.Fatal(err)
	}
	if owners := GitOpsOwners(copy, "argocd"); len(owners) != 0 {
		t.Fatalf("the copy itself has owners %v", owners)
	}
	rebuilt, err := OriginalOf(copy)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := GitOpsOwners(rebuilt, "argocd"), GitOpsOwners(orig, "argocd"); !reflect.DeepEqual(got, want) || len(got) != 2 {
		t.Errorf("owners from the copy %v, want %v", got, want)
	}
}

func gitopsObject(kind rules.GitOpsKind, spec map[string]any, annotations map[string]string) *unstructured.Unstructured {
	obj := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	obj.SetAPIVersion(kind.Group + "/" + kind.Version)
	obj.SetKind(kind.Kind)
	obj.SetNamespace("flux-system")
	obj.SetName("apps")
	obj.SetResourceVersion("7")
	obj.SetAnnotations(annotations)
	return obj
}

// applyMerge applies a merge patch as the API server does.
func applyMerge(t *testing.T, obj *unstructured.Unstructured, patch []byte) *unstructured.Unstructured {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(patch, &m); err != nil {
		t.Fatal(err)
	}
	if md, _ := m["metadata"].(map[string]any); md["resourceVersion"] != obj.GetResourceVersion() {
		t.Fatalf("patch is not guarded by the resourceVersion: %s", patch)
	}
	delete(m["metadata"].(map[string]any), "resourceVersion")
	cur, _ := json.Marshal(obj.Object)
	data, _ := json.Marshal(m)
	out, err := jsonpatch.MergePatch(cur, data)
	if err != nil {
		t.Fatal(err)
	}
	res := &unstructured.Unstructured{}
	if err := json.Unmarshal(out, &res.Object); err != nil {
		t.Fatal(err)
	}
	if len(res.GetAnnotations()) == 0 {
		res.SetAnnotations(nil)
	}
	return res
}

// TestPauseAndRestore runs the pause, then something in between, then the
// restore, and checks what the object is left as.
func TestPauseAndRestore(t *testing.T) {
	automated := map[string]any{"prune": true, "selfHeal": true}
	for _, tc := range []struct {
		name    string
		kind    rules.GitOpsKind
		spec    map[string]any
		between func(spec map[string]any) // someone else's change while paused
		// wantPaused: the pause writes; wantDropped: the restore finds the field changed.
		wantPaused, wantDropped bool
		wantSpec                map[string]any
	}{
		{name: "kustomization without suspend", kind: rules.FluxKustomization,
			spec: map[string]any{"interval": "5m"}, wantPaused: true, wantSpec: map[string]any{"interval": "5m"}},
		{name: "kustomization with suspend false", kind: rules.FluxKustomization,
			spec: map[string]any{"suspend": false}, wantPaused: true, wantSpec: map[string]any{"suspend": false}},
		{name: "kustomization the user suspended", kind: rules.FluxKustomization,
			spec: map[string]any{"suspend": true}, wantSpec: map[string]any{"suspend": true}},
		{name: "kustomization someone resumed meanwhile", kind: rules.FluxKustomization,
			spec: map[string]any{}, between: func(s map[string]any) { s["suspend"] = false },
			wantPaused: true, wantDropped: true, wantSpec: map[string]any{"suspend": false}},
		{name: "helmrelease", kind: rules.FluxHelmRelease,
			spec: map[string]any{"chart": map[string]any{"spec": map[string]any{"chart": "web"}}}, wantPaused: true,
			wantSpec: map[string]any{"chart": map[string]any{"spec": map[string]any{"chart": "web"}}}},
		{name: "application with prune and selfHeal", kind: rules.ArgoCDApplication,
			spec:       map[string]any{"syncPolicy": map[string]any{"automated": automated, "syncOptions": []any{"CreateNamespace=true"}}},
			wantPaused: true,
			wantSpec:   map[string]any{"syncPolicy": map[string]any{"automated": automated, "syncOptions": []any{"CreateNamespace=true"}}}},
		{name: "application with an empty automated", kind: rules.ArgoCDApplication,
			spec: map[string]any{"syncPolicy": map[string]any{"automated": map[string]any{}}}, wantPaused: true,
			wantSpec: map[string]any{"syncPolicy": map[string]any{"automated": map[string]any{}}}},
		{name: "application without automated sync", kind: rules.ArgoCDApplication,
			spec: map[string]any{"project": "default"}, wantSpec: map[string]any{"project": "default"}},
		{name: "application someone re-automated meanwhile", kind: rules.ArgoCDApplication,
			spec: map[string]any{"syncPolicy": map[string]any{"automated": automated}},
			between: func(s map[string]any) {
				s["syncPolicy"] = map[string]any{"automated": map[string]any{"prune": false}}
			},
			wantPaused: true, wantDropped: true,
			wantSpec: map[string]any{"syncPolicy": map[string]any{"automated": map[string]any{"prune": false}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			owner := gitopsObject(tc.kind, tc.spec, nil)
			before := owner.DeepCopy()
			pause, err := DecidePause(owner, tc.kind, "relabel@host/1/x", "shop")
			if err != nil {
				t.Fatal(err)
			}
			if (pause.Patch != nil) != tc.wantPaused {
				t.Fatalf("pause patch %s, want a patch: %v (%s)", pause.Patch, tc.wantPaused, pause.Why)
			}
			if !reflect.DeepEqual(owner, before) {
				t.Fatal("DecidePause changed its input")
			}
			if pause.Patch != nil {
				owner = applyMerge(t, owner, pause.Patch)
				owner.SetResourceVersion("8")
				rec, err := RecordOf(owner)
				if err != nil || rec == nil || rec.Holder != "relabel@host/1/x" {
					t.Fatalf("record %+v, %v", rec, err)
				}
				value, found, _ := unstructured.NestedFieldNoCopy(owner.Object, tc.kind.Path.Fields()...)
				if tc.kind.Pause == rules.PauseSuspend && value != true || tc.kind.Pause == rules.PauseAutomated && found {
					t.Fatalf("not paused: %s = %v", tc.kind.Path, value)
				}
				// A second run (or a rerun) sees the record and leaves the object so.
				again, err := DecidePause(owner, tc.kind, "relabel@host/2/y", "shop")
				if err != nil || again.Patch != nil || again.Record == nil || again.Record.Holder != "relabel@host/1/x" {
					t.Fatalf("pause of a paused object: %+v, %v", again, err)
				}
			}
			if tc.between != nil {
				spec, _ := owner.Object["spec"].(map[string]any)
				tc.between(spec)
			}
			restore, err := DecideRestore(owner, tc.kind)
			if err != nil {
				t.Fatal(err)
			}
			if restore.Dropped != tc.wantDropped {
				t.Errorf("dropped %v, want %v (%s)", restore.Dropped, tc.wantDropped, restore.Why)
			}
			if restore.Patch != nil {
				owner = applyMerge(t, owner, restore.Patch)
			}
			if !reflect.DeepEqual(owner.Object["spec"], tc.wantSpec) {
				t.Errorf("spec after restore %v, want %v", owner.Object["spec"], tc.wantSpec)
			}
			if _, ok := owner.GetAnnotations()[PausedAnnotation]; ok {
				t.Errorf("the record is left: %v", owner.GetAnnotations())
			}
		})
	}
}
