package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// runApp runs the app in process as program with args.
func runApp(t *testing.T, program string, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	app := NewApp(program, BuildInfo{Version: "v1.2.3", Commit: "abc1234", Date: "2026-01-02T03:04:05Z"}, strings.NewReader(""), &stdout, &stderr)
	err := app.Run(append([]string{program}, args...))
	return stdout.String(), err
}

func TestHelpNamesTheProgram(t *testing.T) {
	for _, tc := range []struct {
		program, want, notWant string
	}{
		{"relabel", "   relabel audit --label KEY[=VALUE]", "kubectl relabel"},
		{"kubectl-relabel", "   kubectl relabel audit --label KEY[=VALUE]", "\n   relabel audit"},
		{"kubectl-relabel.exe", "   kubectl relabel audit --label KEY[=VALUE]", "\n   relabel audit"},
		{"relabel-v2", "   relabel audit --label KEY[=VALUE]", "kubectl relabel"},
	} {
		t.Run(tc.program, func(t *testing.T) {
			for _, args := range [][]string{{"--help"}, {"audit", "--help"}} {
				out, err := runApp(t, tc.program, args...)
				if err != nil {
					t.Fatalf("%v: %v", args, err)
				}
				if !strings.Contains(out, tc.want) || strings.Contains(out, tc.notWant) {
					t.Errorf("%s %v: want %q and not %q in\n%s", tc.program, args, tc.want, tc.notWant, out)
				}
			}
		})
	}
}

func TestUsageFor(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"relabel audit", "kubectl relabel audit"},
		{"relabel audit\n\n   relabel audit -A", "kubectl relabel audit\n\n   kubectl relabel audit -A"},
		{"   source <(relabel completion bash)", "   source <(relabel completion bash)"},
		{"relabeller x", "relabeller x"},
	} {
		if got := usageFor(tc.in, "kubectl relabel"); got != tc.want {
			t.Errorf("usageFor(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestVersionOutput(t *testing.T) {
	text, err := runApp(t, "relabel", "version")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"relabel v1.2.3\n", "commit: abc1234\n", "built: 2026-01-02T03:04:05Z\n", "client-go: ", "go: go1."} {
		if !strings.Contains(text, want) {
			t.Errorf("version text lacks %q:\n%s", want, text)
		}
	}
	check := func(t *testing.T, v VersionInfo) {
		t.Helper()
		if v.APIVersion != SchemaVersion || v.Kind != "Version" || v.Version != "v1.2.3" || v.Commit != "abc1234" ||
			v.BuildDate != "2026-01-02T03:04:05Z" || v.ClientGoVersion == "" || !strings.HasPrefix(v.GoVersion, "go") || v.Platform == "" {
			t.Errorf("version document %+v", v)
		}
	}
	t.Run("json", func(t *testing.T) {
		out, err := runApp(t, "relabel", "version", "-o", "json")
		var v VersionInfo
		if err != nil || json.Unmarshal([]byte(out), &v) != nil {
			t.Fatalf("%v, output %q", err, out)
		}
		check(t, v)
	})
	t.Run("yaml", func(t *testing.T) {
		out, err := runApp(t, "relabel", "version", "--output", "yaml")
		var v VersionInfo
		if err != nil || yaml.UnmarshalStrict([]byte(out), &v) != nil {
			t.Fatalf("%v, output %q", err, out)
		}
		check(t, v)
	})
	t.Run("bad format", func(t *testing.T) {
		var usage UsageError
		if _, err := runApp(t, "relabel", "version", "-o", "table"); !errors.As(err, &usage) {
			t.Errorf("-o table: %v, want a usage error", err)
		}
	})
}

func TestCompletionScripts(t *testing.T) {
	for _, tc := range []struct {
		shell   string
		markers []string
	}{
		{"bash", []string{"FUNC() {", "--generate-bash-completion", "complete -o default -F FUNC PROG\n"}},
		{"zsh", []string{"#compdef PROG\n", "FUNC() {", "--generate-bash-completion", "_describe", "compdef FUNC PROG\n"}},
		{"fish", []string{"function __fish_PROG_no_subcommand", "complete -c PROG -n '__fish_PROG_no_subcommand' -f -l label -r",
			"-a 'audit'", "-a 'check'", "-l output -s o -r", "-a 'bash'"}},
	} {
		for _, program := range []string{"relabel", "kubectl-relabel"} {
			t.Run(tc.shell+"/"+program, func(t *testing.T) {
				out, err := runApp(t, program, "completion", tc.shell)
				if err != nil {
					t.Fatal(err)
				}
				fn := "_" + strings.ReplaceAll(program, "-", "_") + "_complete"
				for _, m := range tc.markers {
					m = strings.NewReplacer("FUNC", fn, "PROG", program).Replace(m)
					if !strings.Contains(out, m) {
						t.Errorf("%s script for %s lacks %q:\n%s", tc.shell, program, m, out)
					}
				}
			})
		}
	}
	t.Run("no shell", func(t *testing.T) {
		var usage UsageError
		for _, args := range [][]string{{"completion"}, {"completion", "tcsh"}, {"completion", "bash", "extra"}} {
			if _, err := runApp(t, "relabel", args...); !errors.As(err, &usage) {
				t.Errorf("%v: %v, want a usage error", args, err)
			}
		}
	})
}
