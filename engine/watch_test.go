package engine

import (
	"fmt"
	"slices"
	"testing"

	"relabel.dev/relabel/rules"
)

func TestInformerNamespaces(t *testing.T) {
	deployments := rules.Kind{Group: "apps", Version: "v1", Kind: "Deployment", Resource: "deployments", Namespaced: true}
	clusterWide := rules.Kind{Group: "example.com", Version: "v1", Kind: "Fleet", Resource: "fleets"}
	items := func(kind rules.Kind, namespaces int) []Item {
		var out []Item
		for i := range namespaces {
			out = append(out, Item{Kind: kind, Namespace: fmt.Sprintf("ns-%02d", i), Name: "a"}, Item{Kind: kind, Namespace: fmt.Sprintf("ns-%02d", i), Name: "b"})
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		items []Item
		want  []string
	}{
		{"one namespace", items(deployments, 1), []string{"ns-00"}},
		{"a few namespaces each get one", items(deployments, 3), []string{"ns-00", "ns-01", "ns-02"}},
		{"many namespaces share one cluster-wide informer", items(deployments, maxScopedNamespaces+1), []string{""}},
		{"a cluster-scoped kind", []Item{{Kind: clusterWide, Name: "x"}}, []string{""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := informerNamespaces(tc.items)[tc.items[0].Kind.GVR()]
			if !slices.Equal(got, tc.want) {
				t.Errorf("namespaces %q, want %q", got, tc.want)
			}
			if len(informerNamespaces(tc.items)) != 1 {
				t.Errorf("informers for kinds that have no items")
			}
		})
	}
}
