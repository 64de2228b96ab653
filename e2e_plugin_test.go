package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"relabel.dev/relabel/internal/cli"
	"relabel.dev/relabel/internal/testcluster"
)

// command runs name with args and env (on top of a minimal environment).
func command(t *testing.T, env []string, name string, args ...string) run {
	t.Helper()
	return commandWithin(t, 2*time.Minute, env, name, args...)
}

// commandWithin is command with a deadline of its own.
func commandWithin(t *testing.T, timeout time.Duration, env []string, name string, args ...string) run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := run{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	default:
		t.Fatalf("running %s %v: %v", name, args, err)
	}
	t.Logf("%s %s: exit %d\nstdout:\n%s\nstderr:\n%s", filepath.Base(name), strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

// pluginDir builds relabel as kubectl-relabel, with its kubectl completion
// helper, into a directory of its own.
func pluginDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "kubectl-relabel"), ".").CombinedOutput(); err != nil {
		t.Fatalf("building kubectl-relabel: %v\n%s", err, out)
	}
	helper, err := os.ReadFile("plugins/kubectl_complete-relabel")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kubectl_complete-relabel"), helper, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestKubectlPlugin(t *testing.T) {
	c := testcluster.Get(t)
	ns := c.Namespace(t)
	c.ApplyYAML(t, ns, []byte(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 0
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: example.com/web:1}]}
`))
	bin, err := testcluster.Script("bin")
	if err != nil {
		t.Fatal(err)
	}
	kubectl := filepath.Join(strings.TrimSpace(bin), "kubectl")
	plugins := pluginDir(t)
	// Only the plugin's directory and the system's: no other kubectl plugins.
	env := []string{"PATH=" + plugins + ":/usr/bin:/bin", "HOME=" + t.TempDir()}

	t.Run("version", func(t *testing.T) {
		r := command(t, env, kubectl, "relabel", "version", "-o", "json")
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		v := decodeJSON[cli.VersionInfo](t, r.stdout)
		if v.Kind != "Version" || v.APIVersion != cli.SchemaVersion || !strings.HasPrefix(v.ClientGoVersion, "v0.") {
			t.Errorf("version document %+v", v)
		}
		if r := command(t, env, kubectl, "relabel", "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "relabel ") {
			t.Errorf("exit %d, text %q", r.code, r.stdout)
		}
	})
	t.Run("help", func(t *testing.T) {
		r := command(t, env, kubectl, "relabel", "--help")
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		for _, want := range []string{"kubectl relabel - add a label", "   kubectl relabel --label KEY=VALUE", "   kubectl relabel audit --label"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("help lacks %q", want)
			}
		}
		if r := command(t, env, kubectl, "relabel", "audit", "--help"); !strings.Contains(r.stdout, "kubectl relabel audit - ") {
			t.Errorf("audit help does not say kubectl relabel audit")
		}
	})
	t.Run("audit", func(t *testing.T) {
		// --gvr: other tests on the shared cluster come and go with their CRDs.
		r := command(t, env, kubectl, "relabel", "audit", "--label", "stage=prod", "--gvr", "deployments", "-n", ns, "--kubeconfig", c.Kubeconfig, "-o", "json")
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		report := decodeJSON[cli.AuditReport](t, r.stdout)
		if report.Kind != "AuditReport" || report.Summary.Objects != 1 || report.Summary.Lacking != 1 ||
			len(report.Items) != 1 || report.Items[0].Kind != "Deployment" || report.Items[0].Name != "web" || report.Items[0].Namespace != ns {
			t.Errorf("report %+v", report)
		}
	})
	t.Run("exit codes pass through kubectl", func(t *testing.T) {
		if r := command(t, env, kubectl, "relabel", "audit", "--label", "stage=prod", "--gvr", "deployments", "-n", ns, "--kubeconfig", c.Kubeconfig, "--exit-code"); r.code != 3 {
			t.Errorf("--exit-code with a finding: exit %d, want 3", r.code)
		}
		if r := command(t, env, kubectl, "relabel", "audit", "-n", ns, "--kubeconfig", c.Kubeconfig); r.code != 2 || !strings.Contains(r.stderr, "--label is required") {
			t.Errorf("audit without --label: exit %d, want 2", r.code)
		}
	})
	t.Run("plugin list", func(t *testing.T) {
		r := command(t, env, kubectl, "plugin", "list")
		if r.code != 0 || !strings.Contains(r.stdout, filepath.Join(plugins, "kubectl-relabel")+"\n") {
			t.Errorf("kubectl plugin list: exit %d, does not list %s", r.code, filepath.Join(plugins, "kubectl-relabel"))
		}
	})
	t.Run("kubectl completion", func(t *testing.T) {
		for _, tc := range []struct {
			words []string
			want  string
		}{
			{[]string{"rel"}, "relabel\t"},
			{[]string{"relabel", "au"}, "audit\n"},
			{[]string{"relabel", "audit", "--la"}, "--label\n"},
			{[]string{"relabel", "audit", "--gvr", ""}, "apps/v1/deployments\n"},
		} {
			r := command(t, env, kubectl, append([]string{"__complete"}, tc.words...)...)
			if r.code != 0 || !strings.Contains(r.stdout, tc.want) {
				t.Errorf("kubectl __complete %q: exit %d, no %q in %q", tc.words, r.code, tc.want, r.stdout)
			}
		}
	})
	t.Run("symlink", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Symlink(relabelBin, filepath.Join(dir, "kubectl-relabel")); err != nil {
			t.Fatal(err)
		}
		env := []string{"PATH=" + dir + ":/usr/bin:/bin", "HOME=" + t.TempDir()}
		if r := command(t, env, kubectl, "relabel", "kinds", "--help"); r.code != 0 || !strings.Contains(r.stdout, "kubectl relabel kinds") {
			t.Errorf("through a symlink: exit %d, help does not say kubectl relabel kinds", r.code)
		}
	})
}
