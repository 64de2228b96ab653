package engine

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	authorizationclient "k8s.io/client-go/kubernetes/typed/authorization/v1"

	"relabel.dev/relabel/rules"
)

// Verbs a migration needs on each workload resource: get, create and delete
// for the object and its copy, list and watch (WatchVerbs) for the informer
// that waits on them.
var MigrationVerbs = []string{"get", "list", "watch", "create", "delete"}

// WatchVerbs are what an informer needs where it watches.
var WatchVerbs = []string{"list", "watch"}

// Permission is one verb on one resource in one namespace ("" for all),
// limited to one object when Name is set.
type Permission struct {
	Group, Resource, Verb, Namespace, Name string
}

func (p Permission) String() string {
	res := p.Resource
	if p.Group != "" {
		res += "." + p.Group
	}
	if p.Name != "" {
		res += " named " + p.Name
	}
	where := "in every namespace"
	if p.Namespace != "" {
		where = "in namespace " + p.Namespace
	}
	return fmt.Sprintf("%s %s %s", p.Verb, res, where)
}

// AuditPermissions lists what auditing objects of kind in namespace needs:
// audit only lists. Discovery reads /api and /apis, which every authenticated
// user may (system:discovery), and lists CustomResourceDefinitions only to
// recognise custom resources no rules file describes.
func AuditPermissions(kind rules.Kind, namespace string) []Permission {
	return []Permission{{Group: kind.Group, Resource: kind.Resource, Verb: "list", Namespace: namespace}}
}

// MigrationPermissions lists what migrating objects of kind in namespace
// with strategy (temp-copy or adopt) needs when relabel watches them there:
// the workload verbs, creating Events, the namespace's Lease, and for adopt
// what the kind's controller owns. Where a plan's informers watch is up to
// informerNamespaces; RequiredPermissions follows it.
func MigrationPermissions(kind rules.Kind, strategy rules.Strategy, namespace string) []Permission {
	return append(objectPermissions(kind, strategy, namespace), WatchPermissions(kind, namespace)...)
}

// WatchPermissions lists what an informer of kind in namespace ("" for
// every namespace) needs.
func WatchPermissions(kind rules.Kind, namespace string) []Permission {
	var out []Permission
	for _, verb := range WatchVerbs {
		out = append(out, Permission{Group: kind.Group, Resource: kind.Resource, Verb: verb, Namespace: namespace})
	}
	return out
}

// objectPermissions is MigrationPermissions without the informer's.
func objectPermissions(kind rules.Kind, strategy rules.Strategy, namespace string) []Permission {
	var out []Permission
	for _, verb := range MigrationVerbs {
		if !slices.Contains(WatchVerbs, verb) {
			out = append(out, Permission{Group: kind.Group, Resource: kind.Resource, Verb: verb, Namespace: namespace})
		}
	}
	out = append(out, Permission{Resource: "events", Verb: "create", Namespace: namespace})
	lockNamespace := namespace
	if lockNamespace == "" {
		lockNamespace = "default"
	}
	// The name of a new object is not known when create is authorised, so
	// only the other verbs can be limited to relabel's own Lease.
	out = append(out, Permission{Group: "coordination.k8s.io", Resource: "leases", Verb: "create", Namespace: lockNamespace})
	for _, verb := range []string{"get", "update", "delete"} {
		out = append(out, Permission{Group: "coordination.k8s.io", Resource: "leases", Verb: verb, Namespace: lockNamespace, Name: LockName})
	}
	if strategy != rules.Adopt {
		return out
	}
	for _, dep := range kind.Owned {
		// Owned objects are labelled, or marked as orphans, with a patch;
		// marked orphans are deleted once the recreated owner is ready.
		verbs := []string{"list", "patch"}
		if dep.Action == rules.DeleteOrphans {
			verbs = append(verbs, "delete")
		}
		for _, v := range verbs {
			out = append(out, Permission{Group: dep.Group, Resource: dep.Resource, Verb: v, Namespace: namespace})
		}
	}
	return out
}

// RequiredPermissions lists what migrating the plan's items needs: each
// object's permissions in its namespace, and list and watch of each kind
// where Migrator.Run's informers will watch it (informerNamespaces). A plan
// over more than maxScopedNamespaces namespaces of one kind therefore needs
// list and watch of that kind in every namespace.
func RequiredPermissions(items []Item) []Permission {
	var todo []Item
	var perms []Permission
	kinds := map[schema.GroupVersionResource]rules.Kind{}
	for _, it := range items {
		if it.Action != ActionSkip {
			todo = append(todo, it)
			kinds[it.Kind.GVR()] = it.Kind
			perms = append(perms, objectPermissions(it.Kind, it.Strategy, it.Namespace)...)
		}
	}
	for gvr, namespaces := range informerNamespaces(todo) {
		for _, ns := range namespaces {
			perms = append(perms, WatchPermissions(kinds[gvr], ns)...)
		}
	}
	return sortedUnique(perms)
}

func sortedUnique(perms []Permission) []Permission {
	seen := map[Permission]bool{}
	var out []Permission
	for _, p := range perms {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
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
			ResourceAttributes: &authorizationv1.ResourceAttributes{Group: p.Group, Resource: p.Resource, Verb: p.Verb, Namespace: p.Namespace, Name: p.Name},
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
	msg := "missing permissions, nothing was changed:\n" + strings.Join(lines, "\n")
	if slices.ContainsFunc(e.Missing, func(p Permission) bool { return p.Verb == "watch" && p.Namespace == "" }) {
		msg += fmt.Sprintf("\nrelabel watches a kind in every namespace when the plan holds objects of it in more than %d namespaces "+
			"(or the kind is cluster-scoped): grant list and watch cluster-wide (`relabel rbac` without -n), or migrate fewer namespaces at a time", maxScopedNamespaces)
	}
	return msg
}
