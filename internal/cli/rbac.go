package cli

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"relabel.dev/relabel/discovery"
	"relabel.dev/relabel/engine"
	"relabel.dev/relabel/rules"
)

// DefaultServiceAccountNamespace is where the ServiceAccount of a
// cluster-wide role lives, and where deploy/ runs the Jobs.
const DefaultServiceAccountNamespace = "relabel"

func rbacCommand() *cli.Command {
	return &cli.Command{
		Name:  "rbac",
		Usage: "print a ServiceAccount and the least-privilege role relabel needs, without a cluster",
		UsageText: "relabel rbac [--gvr RESOURCE]... [--rules FILE] [-n NAMESPACE] [--audit-only] [--strategy auto|temp-copy|adopt] [--name NAME]\n\n" +
			"   relabel rbac | kubectl apply -f -                      # ClusterRole: migrate every built-in kind everywhere\n" +
			"   relabel rbac --audit-only                              # read-only ClusterRole for relabel audit\n" +
			"   relabel rbac -n shop --gvr deploy --strategy temp-copy # Role in shop only\n" +
			"   relabel rbac --rules kinds.yaml                        # custom resources described in a rules file",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "gvr", Usage: "kind the role covers (apps/v1/deployments, deploy, sts, a rules file's kind); repeatable; default: the built-in kinds and the rules file's"},
			rulesFlag(),
			&cli.StringFlag{Name: "namespace", Aliases: []string{"n"}, Usage: "a Role and RoleBinding for this namespace only (default: a ClusterRole and ClusterRoleBinding)"},
			&cli.BoolFlag{Name: "audit-only", Usage: "the read-only role relabel audit needs"},
			&cli.StringFlag{Name: "strategy", Value: string(rules.StrategyAuto), Usage: "the migration strategy to allow: auto (both, for kinds that can adopt), temp-copy or adopt"},
			&cli.BoolFlag{Name: "pause-gitops", Usage: "also get and patch Flux Kustomizations and HelmReleases and Argo CD Applications, for relabel --pause-gitops"},
			&cli.StringFlag{Name: "name", Usage: "name of the ServiceAccount, role and binding (default: relabel, or relabel-audit with --audit-only)"},
			&cli.StringFlag{Name: "service-account-namespace", Usage: "namespace of the ServiceAccount (default: --namespace, else " + DefaultServiceAccountNamespace + ")"},
		},
		Action: func(c *cli.Context) error {
			cfg, err := rbacConfigFrom(c)
			if err != nil {
				return err
			}
			out, err := RBACManifests(cfg)
			if err != nil {
				return err
			}
			_, err = c.App.Writer.Write(out)
			return err
		},
	}
}

// RBACConfig is the rbac command's input.
type RBACConfig struct {
	GVRs      []string
	Rules     *rules.File
	Namespace string // empty: cluster-wide
	AuditOnly bool
	Strategy  rules.Strategy
	// PauseGitOps grants what relabel --pause-gitops needs too.
	PauseGitOps bool
	Name        string
	// ServiceAccountNamespace is where the ServiceAccount lives.
	ServiceAccountNamespace string
}

func rbacConfigFrom(c *cli.Context) (RBACConfig, error) {
	if err := argsNone(c); err != nil {
		return RBACConfig{}, err
	}
	file, err := loadRules(c)
	if err != nil {
		return RBACConfig{}, err
	}
	cfg := RBACConfig{
		GVRs: c.StringSlice("gvr"), Rules: file, Namespace: c.String("namespace"), AuditOnly: c.Bool("audit-only"),
		Strategy: rules.Strategy(c.String("strategy")), Name: c.String("name"), ServiceAccountNamespace: c.String("service-account-namespace"),
		PauseGitOps: c.Bool("pause-gitops"),
	}
	if cfg.AuditOnly && cfg.PauseGitOps {
		return cfg, usageErrorf("--pause-gitops and --audit-only exclude each other: an audit pauses nothing")
	}
	switch cfg.Strategy {
	case rules.StrategyAuto, rules.TempCopy, rules.Adopt:
	default:
		return cfg, usageErrorf("--strategy %q: want auto, temp-copy or adopt", cfg.Strategy)
	}
	if cfg.AuditOnly && c.IsSet("strategy") {
		return cfg, usageErrorf("--strategy and --audit-only exclude each other: an audit writes nothing")
	}
	if cfg.Name == "" {
		cfg.Name = "relabel"
		if cfg.AuditOnly {
			cfg.Name = "relabel-audit"
		}
	}
	if cfg.ServiceAccountNamespace == "" {
		cfg.ServiceAccountNamespace = cfg.Namespace
	}
	if cfg.ServiceAccountNamespace == "" {
		cfg.ServiceAccountNamespace = DefaultServiceAccountNamespace
	}
	for flag, value := range map[string]string{"--namespace": cfg.Namespace, "--service-account-namespace": cfg.ServiceAccountNamespace, "--name": cfg.Name} {
		if value == "" {
			continue
		}
		if msgs := validation.IsDNS1123Label(value); len(msgs) > 0 {
			return cfg, usageErrorf("%s %q: %s", flag, value, strings.Join(msgs, "; "))
		}
	}
	return cfg, nil
}

// RBACManifests renders the ServiceAccount, the role and its binding as
// YAML documents. It needs no cluster: the kinds are the built-in ones and
// the rules file's, which is how custom resources get in.
func RBACManifests(cfg RBACConfig) ([]byte, error) {
	var extra []rules.Kind
	if cfg.Rules != nil {
		extra = cfg.Rules.Kinds
	}
	kinds, err := selectKinds(discovery.Offline(extra), cfg.GVRs)
	if errors.Is(err, discovery.ErrUnknownResource) {
		return nil, usageErrorf("%v (rbac works without a cluster and knows the built-in kinds and those of --rules; "+
			"for a custom resource, save `relabel kinds -o yaml` from the cluster and pass it with --rules)", err)
	}
	if err != nil {
		return nil, err
	}
	var perms []engine.Permission
	purpose := "audit"
	if cfg.AuditOnly {
		perms = engine.AuditRolePermissions(kinds)
	} else {
		purpose = fmt.Sprintf("migrate (strategy %s)", cfg.Strategy)
		if perms, err = engine.MigrationRolePermissions(kinds, cfg.Strategy); err != nil {
			return nil, UsageError{Err: err}
		}
		if cfg.Namespace == "" {
			perms = append(perms, engine.ClusterIdentityPermission)
		}
		if cfg.PauseGitOps {
			perms = append(perms, engine.GitOpsRolePermissions()...)
		}
	}
	if cfg.Namespace == "" {
		perms = append(perms, engine.NamespaceListPermission)
	}
	where := "in every namespace"
	if cfg.Namespace != "" {
		where = "in namespace " + cfg.Namespace
		for _, k := range kinds {
			if !k.Namespaced {
				return nil, usageErrorf("%s is cluster-scoped and a Role in %s cannot grant it: leave out -n for a ClusterRole (or set namespaced: true in the rules file if it is namespaced)",
					k.GVRString(), cfg.Namespace)
			}
		}
	}

	labels := map[string]string{"app.kubernetes.io/name": "relabel"}
	sa := &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: metav1.ObjectMeta{Name: cfg.Name, Namespace: cfg.ServiceAccountNamespace, Labels: labels},
	}
	subjects := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: cfg.Name, Namespace: cfg.ServiceAccountNamespace}}
	policy := engine.PolicyRules(perms)
	var role, binding any
	if cfg.Namespace == "" {
		role = &rbacv1.ClusterRole{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRole"},
			ObjectMeta: metav1.ObjectMeta{Name: cfg.Name, Labels: labels}, Rules: policy,
		}
		binding = &rbacv1.ClusterRoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: cfg.Name, Labels: labels}, Subjects: subjects,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: cfg.Name},
		}
	} else {
		role = &rbacv1.Role{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "Role"},
			ObjectMeta: metav1.ObjectMeta{Name: cfg.Name, Namespace: cfg.Namespace, Labels: labels}, Rules: policy,
		}
		binding = &rbacv1.RoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "RoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: cfg.Name, Namespace: cfg.Namespace, Labels: labels}, Subjects: subjects,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: cfg.Name},
		}
	}

	var out bytes.Buffer
	fmt.Fprintf(&out, "# Generated by `relabel rbac`: what relabel needs to %s\n# %s, for these kinds:\n", purpose, where)
	for _, k := range kinds {
		fmt.Fprintf(&out, "#   %s\n", k.GVRString())
	}
	if cfg.AuditOnly {
		out.WriteString("# An audit only lists.\n")
	} else {
		out.WriteString("# relabel's preflight checks exactly these permissions, but get on the\n")
		if cfg.Namespace == "" {
			out.WriteString("# kube-system Namespace: its UID names the cluster's backups.\n")
		} else {
			out.WriteString("# kube-system Namespace, which a Role cannot grant: backups are keyed by\n# the API server's host instead (see the README's Backups and restore).\n")
		}
	}
	out.WriteString("# Discovery (/api, /apis) and access reviews are granted to every authenticated\n" +
		"# user by the default ClusterRoles system:discovery and system:basic-user.\n")
	for i, obj := range []any{sa, role, binding} {
		data, err := yaml.Marshal(obj)
		if err != nil {
			return nil, fmt.Errorf("rendering the RBAC manifests: %w", err)
		}
		if i > 0 {
			out.WriteString("---\n")
		}
		out.Write(data)
	}
	return out.Bytes(), nil
}
