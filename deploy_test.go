package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"relabel.dev/relabel/internal/cli"
)

// The RBAC manifests in deploy/ and the relabel rbac command that makes them.
var deployRBAC = []struct {
	file string
	args []string
}{
	{"deploy/rbac.yaml", []string{"rbac"}},
	{"deploy/rbac-audit.yaml", []string{"rbac", "--audit-only"}},
}

// runInProcess runs the CLI without a cluster and returns stdout.
func runInProcess(args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	app := cli.NewApp("relabel", cli.BuildInfo{Version: "test"}, strings.NewReader(""), &stdout, &stderr)
	err := app.Run(append([]string{"relabel"}, args...))
	return stdout.String(), err
}

func TestDeployRBACIsGenerated(t *testing.T) {
	for _, tc := range deployRBAC {
		t.Run(tc.file, func(t *testing.T) {
			want, err := runInProcess(tc.args...)
			if err != nil {
				t.Fatalf("relabel %s: %v", strings.Join(tc.args, " "), err)
			}
			got, err := os.ReadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != want {
				t.Errorf("%s differs from the output of `relabel %s`; regenerate it with `make deploy-manifests`", tc.file, strings.Join(tc.args, " "))
			}
		})
	}
}

// strictDecoder decodes manifests into the Kubernetes types and refuses
// unknown and duplicate fields, as kubectl apply --validate=strict does.
var strictDecoder = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

func decodeManifests(data []byte) ([]runtime.Object, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []runtime.Object
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		var probe map[string]any
		if err := yaml.Unmarshal(doc, &probe); err != nil {
			return nil, err
		}
		if len(probe) == 0 {
			continue // only comments
		}
		obj, _, err := strictDecoder.Decode(doc, nil, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, obj)
	}
}

func TestStrictDecoderRefusesTypos(t *testing.T) {
	_, err := decodeManifests([]byte("apiVersion: batch/v1\nkind: Job\nmetadata: {name: x}\nspec:\n  backofLimit: 3\n"))
	if err == nil || !strings.Contains(err.Error(), "backofLimit") {
		t.Errorf("a misspelled field decoded: err %v", err)
	}
}

// TestDeployManifests decodes every manifest in deploy/ strictly and checks
// that the Jobs fit together with the rest and run locked down.
func TestDeployManifests(t *testing.T) {
	files, err := filepath.Glob("deploy/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/: %v", err)
	}
	serviceAccounts, claims := map[string]bool{}, map[string]bool{}
	var jobs []*batchv1.Job
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeManifests(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, obj := range objs {
			m, _ := meta.Accessor(obj)
			if _, ok := obj.(*corev1.Namespace); !ok && m.GetNamespace() != "" && m.GetNamespace() != cli.DefaultServiceAccountNamespace {
				t.Errorf("%s: %s is in namespace %s, want %s", f, m.GetName(), m.GetNamespace(), cli.DefaultServiceAccountNamespace)
			}
			switch o := obj.(type) {
			case *corev1.ServiceAccount:
				serviceAccounts[o.Name] = true
			case *corev1.PersistentVolumeClaim:
				claims[o.Name] = true
			case *batchv1.Job:
				jobs = append(jobs, o)
			}
		}
	}
	if len(jobs) != 2 {
		t.Fatalf("%d Jobs in deploy/, want the audit and the migration", len(jobs))
	}
	for _, job := range jobs {
		t.Run(job.Name, func(t *testing.T) {
			spec := job.Spec.Template.Spec
			if job.Spec.BackoffLimit == nil || job.Spec.ActiveDeadlineSeconds == nil {
				t.Error("backoffLimit and activeDeadlineSeconds must be set")
			}
			if spec.RestartPolicy != corev1.RestartPolicyNever {
				t.Errorf("restartPolicy %s, want Never (a fresh pod per retry)", spec.RestartPolicy)
			}
			if !serviceAccounts[spec.ServiceAccountName] {
				t.Errorf("serviceAccountName %q is not defined in deploy/", spec.ServiceAccountName)
			}
			pod := spec.SecurityContext
			if pod == nil || pod.RunAsNonRoot == nil || !*pod.RunAsNonRoot || pod.RunAsUser == nil || *pod.RunAsUser != 65532 ||
				pod.SeccompProfile == nil || pod.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("pod securityContext %+v: want runAsNonRoot, runAsUser 65532, seccompProfile RuntimeDefault", pod)
			}
			mounts := map[string]string{} // volume name to path
			for _, v := range spec.Volumes {
				if v.PersistentVolumeClaim != nil && !claims[v.PersistentVolumeClaim.ClaimName] {
					t.Errorf("volume %s claims %q, which deploy/ does not define", v.Name, v.PersistentVolumeClaim.ClaimName)
				}
			}
			if len(spec.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(spec.Containers))
			}
			c := spec.Containers[0]
			sc := c.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
				sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
				t.Errorf("container securityContext %+v: want readOnlyRootFilesystem, no privilege escalation, capabilities drop ALL", sc)
			}
			for _, m := range c.VolumeMounts {
				mounts[m.Name] = m.MountPath
			}
			if i := slices.Index(c.Args, "--backup-dir"); i >= 0 {
				dir := c.Args[i+1]
				if !slices.ContainsFunc(spec.Volumes, func(v corev1.Volume) bool { return v.PersistentVolumeClaim != nil && mounts[v.Name] == dir }) {
					t.Errorf("--backup-dir %s is not a mounted PersistentVolumeClaim", dir)
				}
			} else if slices.Contains(c.Args, "--yes") {
				t.Error("a migration without --backup-dir keeps its backups in the pod, which is lost")
			}
			// The arguments must parse: with a kubeconfig that does not
			// exist, relabel gets as far as loading it, past every flag check.
			_, err := runInProcess(append(slices.Clone(c.Args), "--kubeconfig", filepath.Join(t.TempDir(), "none"))...)
			var usage cli.UsageError
			if err == nil || errors.As(err, &usage) || !strings.Contains(err.Error(), "kubeconfig") {
				t.Errorf("relabel %s: err %v, want only the missing kubeconfig", strings.Join(c.Args, " "), err)
			}
		})
	}
}

// TestDockerfileGoVersion keeps the image's Go in step with go.mod.
func TestDockerfileGoVersion(t *testing.T) {
	dockerfile, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	image := regexp.MustCompile(`(?m)^FROM golang:(\d+\.\d+)`).FindSubmatch(dockerfile)
	module := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if image == nil || module == nil || string(image[1]) != string(module[1]) {
		t.Errorf("the Dockerfile builds with golang:%s, go.mod asks for go %s", image, module)
	}
}

func TestRBACCommand(t *testing.T) {
	out, err := runInProcess("rbac", "-n", "shop", "--gvr", "deploy", "--strategy", "temp-copy")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeManifests([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, obj := range objs {
		m, _ := meta.Accessor(obj)
		kinds = append(kinds, obj.GetObjectKind().GroupVersionKind().Kind+" "+m.GetNamespace()+"/"+m.GetName())
	}
	if got, want := strings.Join(kinds, ", "), "ServiceAccount shop/relabel, Role shop/relabel, RoleBinding shop/relabel"; got != want {
		t.Errorf("objects %s, want %s", got, want)
	}
	if strings.Contains(out, "pods") || strings.Contains(out, "statefulsets") {
		t.Errorf("a temp-copy role for Deployments grants more:\n%s", out)
	}

	rulesFile := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rulesFile, []byte("apiVersion: relabel.dev/v1\nkind: Rules\nkinds:\n- {group: example.com, version: v1, kind: Node, resource: nodes, "+
		"selectorPath: spec.selector, templateLabelsPath: spec.template.metadata.labels, maxNameLength: 63}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"rbac", "--strategy", "fast"}, `--strategy "fast"`},
		{[]string{"rbac", "--audit-only", "--strategy", "adopt"}, "exclude each other"},
		{[]string{"rbac", "--gvr", "widgets"}, "--rules"},
		{[]string{"rbac", "--name", "Relabel"}, `--name "Relabel"`},
		{[]string{"rbac", "--rules", rulesFile, "--gvr", "nodes.example.com", "--strategy", "adopt"}, "no adopt rule"},
		{[]string{"rbac", "--rules", rulesFile, "-n", "shop"}, "example.com/v1/nodes is cluster-scoped"},
		{[]string{"rbac", "extra"}, "unexpected argument"},
	} {
		_, err := runInProcess(tc.args...)
		var usage cli.UsageError
		if !errors.As(err, &usage) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("relabel %s: err %v, want a usage error with %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
}
