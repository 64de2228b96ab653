package engine

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"

	"relabel.dev/relabel/rules"
)

// grants says whether a rule allows p, as the RBAC authorizer decides it.
func grants(rule rbacv1.PolicyRule, p Permission) bool {
	return slices.Contains(rule.APIGroups, p.Group) && slices.Contains(rule.Resources, p.Resource) &&
		slices.Contains(rule.Verbs, p.Verb) && (len(rule.ResourceNames) == 0 || slices.Contains(rule.ResourceNames, p.Name))
}

// checkExact fails unless the rules grant every permission in need and
// nothing else: each verb on each resource (and name) of a rule is needed.
func checkExact(t *testing.T, policy []rbacv1.PolicyRule, need []Permission) {
	t.Helper()
	for _, p := range need {
		if !slices.ContainsFunc(policy, func(r rbacv1.PolicyRule) bool { return grants(r, p) }) {
			t.Errorf("no rule grants %s", p)
		}
	}
	for _, rule := range policy {
		for _, g := range rule.APIGroups {
			for _, res := range rule.Resources {
				for _, verb := range rule.Verbs {
					names := rule.ResourceNames
					if len(names) == 0 {
						names = []string{""}
					}
					for _, name := range names {
						if g == "*" || res == "*" || verb == "*" {
							t.Errorf("rule %v uses a wildcard", rule)
						}
						granted := Permission{Group: g, Resource: res, Verb: verb, Name: name}
						if !slices.ContainsFunc(need, func(p Permission) bool { p.Namespace = ""; return p == granted }) {
							t.Errorf("rule grants %s, which no check needs", granted)
						}
					}
				}
			}
		}
	}
}

func itemOf(k rules.Kind, s rules.Strategy) Item {
	return Item{Kind: k, Namespace: "shop", Name: "x", Action: ActionMigrate, Strategy: s}
}

// TestPolicyRulesMatchPreflight proves that the roles `relabel rbac` prints
// and the permissions preflight checks cannot drift apart.
func TestPolicyRulesMatchPreflight(t *testing.T) {
	for _, k := range rules.Builtins() {
		var union []Permission
		for _, s := range []rules.Strategy{rules.TempCopy, rules.Adopt} {
			t.Run(k.Kind+"/"+string(s), func(t *testing.T) {
				perms, err := MigrationRolePermissions([]rules.Kind{k}, s)
				if err != nil {
					t.Fatal(err)
				}
				need := RequiredPermissions([]Item{itemOf(k, s)})
				union = append(union, need...)
				checkExact(t, PolicyRules(perms), need)
			})
		}
		t.Run(k.Kind+"/auto", func(t *testing.T) {
			perms, err := MigrationRolePermissions([]rules.Kind{k}, rules.StrategyAuto)
			if err != nil {
				t.Fatal(err)
			}
			checkExact(t, PolicyRules(perms), union)
		})
		t.Run(k.Kind+"/audit", func(t *testing.T) {
			checkExact(t, PolicyRules(AuditRolePermissions([]rules.Kind{k})), []Permission{{Group: k.Group, Resource: k.Resource, Verb: "list"}})
		})
	}
	t.Run("every built-in kind, auto", func(t *testing.T) {
		kinds := rules.Builtins()
		var items []Item
		for _, k := range kinds {
			items = append(items, itemOf(k, rules.TempCopy), itemOf(k, rules.Adopt))
		}
		perms, err := MigrationRolePermissions(kinds, rules.StrategyAuto)
		if err != nil {
			t.Fatal(err)
		}
		checkExact(t, PolicyRules(perms), RequiredPermissions(items))
	})
}

func TestMigrationRolePermissionsRefusesAdoptWithoutOwned(t *testing.T) {
	custom := rules.Kind{Group: "example.com", Version: "v1", Kind: "Workload", Resource: "workloads", Strategy: rules.TempCopy}
	if _, err := MigrationRolePermissions([]rules.Kind{custom}, rules.Adopt); !errors.Is(err, ErrStrategyRefused) {
		t.Errorf("adopt for a kind without owned: err %v, want ErrStrategyRefused", err)
	}
	perms, err := MigrationRolePermissions([]rules.Kind{custom}, rules.StrategyAuto)
	if err != nil {
		t.Fatal(err)
	}
	checkExact(t, PolicyRules(perms), RequiredPermissions([]Item{itemOf(custom, rules.TempCopy)}))
}

func TestPolicyRulesShape(t *testing.T) {
	deployment := deploymentKind
	perms, err := MigrationRolePermissions([]rules.Kind{deployment}, rules.TempCopy)
	if err != nil {
		t.Fatal(err)
	}
	got := PolicyRules(perms)
	want := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list", "watch", "create", "delete"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{LockName}, Verbs: []string{"get", "update", "delete"}},
	}
	if !slices.EqualFunc(got, want, func(a, b rbacv1.PolicyRule) bool {
		return slices.Equal(a.APIGroups, b.APIGroups) && slices.Equal(a.Resources, b.Resources) &&
			slices.Equal(a.Verbs, b.Verbs) && slices.Equal(a.ResourceNames, b.ResourceNames)
	}) {
		t.Errorf("rules:\n got %+v\nwant %+v", got, want)
	}
}

// roleGrants says whether the rules, bound in namespace ("" for a
// ClusterRoleBinding), allow p.
func roleGrants(policy []rbacv1.PolicyRule, namespace string, p Permission) bool {
	return (namespace == "" || p.Namespace == namespace) && slices.ContainsFunc(policy, func(r rbacv1.PolicyRule) bool { return grants(r, p) })
}

// TestRolesCoverTheWatchers extends TestPolicyRulesMatchPreflight to where
// the informers watch: the rules of `relabel rbac` bound in one namespace
// (-n) cover a plan there, and bound cluster-wide any plan; Roles in each of
// many namespaces lack exactly the cluster-wide list and watch that a plan
// over more than maxScopedNamespaces namespaces needs, which preflight names.
func TestRolesCoverTheWatchers(t *testing.T) {
	spread := func(k rules.Kind, s rules.Strategy, namespaces int) []Item {
		var out []Item
		for i := range namespaces {
			out = append(out, Item{Kind: k, Namespace: fmt.Sprintf("ns-%02d", i), Name: "x", Action: ActionMigrate, Strategy: s})
		}
		return out
	}
	for _, k := range rules.Builtins() {
		if !k.Namespaced {
			continue
		}
		for _, s := range []rules.Strategy{rules.TempCopy, rules.Adopt} {
			perms, err := MigrationRolePermissions([]rules.Kind{k}, s)
			if err != nil {
				t.Fatal(err)
			}
			policy := PolicyRules(perms)
			for _, n := range []int{1, maxScopedNamespaces, maxScopedNamespaces + 1} {
				t.Run(fmt.Sprintf("%s/%s/%d namespaces", k.Kind, s, n), func(t *testing.T) {
					need := RequiredPermissions(spread(k, s, n))
					// The ClusterRole grants exactly what preflight checks.
					checkExact(t, policy, need)
					// A Role in each of the plan's namespaces lacks only the
					// cluster-wide informer's list and watch.
					var lacking []Permission
					for _, p := range need {
						if p.Namespace == "" || !roleGrants(policy, p.Namespace, p) {
							lacking = append(lacking, p)
						}
					}
					var want []Permission
					if n > maxScopedNamespaces {
						want = WatchPermissions(k, "")
					}
					if !slices.Equal(sortedUnique(lacking), sortedUnique(want)) {
						t.Errorf("Roles in the %d namespaces lack %v, want %v", n, lacking, want)
					}
				})
			}
			t.Run(fmt.Sprintf("%s/%s/a Role in one namespace", k.Kind, s), func(t *testing.T) {
				for _, p := range RequiredPermissions(spread(k, s, 1)) {
					if !roleGrants(policy, "ns-00", p) {
						t.Errorf("the Role of ns-00 does not grant %s", p)
					}
				}
			})
		}
	}
}
