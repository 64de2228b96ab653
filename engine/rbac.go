package engine

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"

	"relabel.dev/relabel/rules"
)

// NamespaceListPermission lets audit list a large kind a namespace at a
// time (Auditor.Audit); without it the kind is read in one list. Only a
// ClusterRole can grant it.
var NamespaceListPermission = Permission{Resource: "namespaces", Verb: "list"}

// AuditRolePermissions lists what auditing the kinds needs, in every namespace.
func AuditRolePermissions(kinds []rules.Kind) []Permission {
	var out []Permission
	for _, k := range kinds {
		out = append(out, AuditPermissions(k, "")...)
	}
	return sortedUnique(out)
}

// MigrationRolePermissions lists what migrating the kinds with strategy
// needs, in every namespace: the same permissions preflight checks. Auto
// may pick either strategy for a kind that can adopt, so it gets both.
//
// The rules are the same for a Role and a ClusterRole; where they apply is
// the binding's. Bound in one namespace (`relabel rbac -n NS`), they cover a
// run in that namespace: its informers watch there only (informerNamespaces),
// so preflight asks for list and watch there only. Bound cluster-wide, they
// also grant list and watch in every namespace, which preflight asks for
// when a plan spans more than maxScopedNamespaces namespaces of a kind and
// one informer watches it everywhere; Roles in each of many namespaces do
// not grant that.
func MigrationRolePermissions(kinds []rules.Kind, strategy rules.Strategy) ([]Permission, error) {
	var out []Permission
	for _, k := range kinds {
		var strategies []rules.Strategy
		switch strategy {
		case rules.StrategyAuto:
			strategies = []rules.Strategy{rules.TempCopy}
			if k.CanAdopt() {
				strategies = append(strategies, rules.Adopt)
			}
		case rules.TempCopy:
			strategies = []rules.Strategy{rules.TempCopy}
		case rules.Adopt:
			if !k.CanAdopt() {
				return nil, fmt.Errorf("%w: %s has no adopt rule (what its controller owns); use --strategy auto or temp-copy", ErrStrategyRefused, k.GVRString())
			}
			strategies = []rules.Strategy{rules.Adopt}
		default:
			return nil, fmt.Errorf("strategy %q: want auto, temp-copy or adopt", strategy)
		}
		for _, s := range strategies {
			out = append(out, MigrationPermissions(k, s, "")...)
		}
	}
	return sortedUnique(out), nil
}

// verbOrder is the order verbs are written in, as in the Kubernetes docs.
var verbOrder = []string{"get", "list", "watch", "create", "update", "patch", "delete"}

// PolicyRules turns permissions into RBAC rules granting exactly them,
// whatever their namespace (the Role or ClusterRole decides where).
// Resources of one group with the same verbs and names share a rule.
func PolicyRules(perms []Permission) []rbacv1.PolicyRule {
	type target struct{ group, resource, name string }
	verbs := map[target][]string{}
	for _, p := range perms {
		t := target{p.Group, p.Resource, p.Name}
		if !slices.Contains(verbs[t], p.Verb) {
			verbs[t] = append(verbs[t], p.Verb)
		}
	}
	type shape struct{ group, verbs, name string }
	merged := map[shape]*rbacv1.PolicyRule{}
	for t, vs := range verbs {
		slices.SortFunc(vs, func(a, b string) int {
			if d := verbRank(a) - verbRank(b); d != 0 {
				return d
			}
			return strings.Compare(a, b)
		})
		s := shape{t.group, strings.Join(vs, ","), t.name}
		rule := merged[s]
		if rule == nil {
			rule = &rbacv1.PolicyRule{APIGroups: []string{t.group}, Verbs: vs}
			if t.name != "" {
				rule.ResourceNames = []string{t.name}
			}
			merged[s] = rule
		}
		rule.Resources = append(rule.Resources, t.resource)
	}
	out := make([]rbacv1.PolicyRule, 0, len(merged))
	for _, rule := range merged {
		sort.Strings(rule.Resources)
		out = append(out, *rule)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.APIGroups[0] != b.APIGroups[0] {
			return a.APIGroups[0] < b.APIGroups[0]
		}
		if a.Resources[0] != b.Resources[0] {
			return a.Resources[0] < b.Resources[0]
		}
		return len(a.ResourceNames) < len(b.ResourceNames)
	})
	return out
}

func verbRank(verb string) int {
	if i := slices.Index(verbOrder, verb); i >= 0 {
		return i
	}
	return len(verbOrder)
}
