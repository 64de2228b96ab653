package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authorizationclient "k8s.io/client-go/kubernetes/typed/authorization/v1"

	"relabel.dev/relabel/rules"
)

// Verbs a migration needs on each workload resource.
var MigrationVerbs = []string{"get", "list", "watch", "create", "delete"}

// Permission is one verb on one resource in one namespace ("" for all).
type Permission struct {
	Group, Resource, Verb, Namespace string
}

func (p Permission) String() string {
	res := p.Resource
	if p.Group != "" {
		res += "." + p.Group
	}
	where := "in every namespace"
	if p.Namespace != "" {
		where = "in namespace " + p.Namespace
	}
	return fmt.Sprintf("%s %s %s", p.Verb, res, where)
}

// RequiredPermissions lists what migrating the plan's items needs: the
// workload verbs per kind and namespace, and creating Events there.
func RequiredPermissions(items []Item) []Permission {
	seen := map[Permission]bool{}
	var out []Permission
	add := func(p Permission) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, it := range items {
		if it.Action == ActionSkip {
			continue
		}
		for _, verb := range MigrationVerbs {
			add(Permission{Group: it.Kind.Group, Resource: it.Kind.Resource, Verb: verb, Namespace: it.Namespace})
		}
		add(Permission{Resource: "events", Verb: "create", Namespace: it.Namespace})
		lockNamespace := it.Namespace
		if lockNamespace == "" {
			lockNamespace = "default"
		}
		for _, verb := range []string{"get", "create", "update", "delete"} {
			add(Permission{Group: "coordination.k8s.io", Resource: "leases", Verb: verb, Namespace: lockNamespace})
		}
		if it.Strategy != rules.Adopt {
			continue
		}
		for _, dep := range it.Kind.Owned {
			verb := "patch"
			if dep.Action == rules.DeleteOrphans {
				verb = "delete"
			}
			for _, v := range []string{"list", verb} {
				add(Permission{Group: dep.Group, Resource: dep.Resource, Verb: v, Namespace: it.Namespace})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// Preflight asks the API server, with SelfSubjectAccessReviews, whether the
// caller holds every permission; it returns the ones missing.
func Preflight(ctx context.Context, reviews authorizationclient.SelfSubjectAccessReviewInterface, perms []Permission) ([]Permission, error) {
	var missing []Permission
	for _, p := range perms {
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Group: p.Group, Resource: p.Resource, Verb: p.Verb, Namespace: p.Namespace},
		}}
		got, err := reviews.Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("checking permission to %s: %w", p, err)
		}
		if !got.Status.Allowed {
			missing = append(missing, p)
		}
	}
	return missing, nil
}

// MissingPermissionsError lists what the caller may not do.
type MissingPermissionsError struct{ Missing []Permission }

func (e MissingPermissionsError) Error() string {
	lines := make([]string, len(e.Missing))
	for i, p := range e.Missing {
		lines[i] = "  " + p.String()
	}
	return "missing permissions, nothing was changed:\n" + strings.Join(lines, "\n")
}
