package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestShellCompletion loads each completion script into its shell and asks it
// for completions, which runs the binary. The shells must be installed
// (.ci/run installs zsh and fish): a missing one fails the test.
func TestShellCompletion(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	// The scripts call the program by name: put it on PATH under both names.
	dir := t.TempDir()
	for _, name := range []string{"relabel", "kubectl-relabel"} {
		if err := os.Symlink(relabelBin, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"PATH=" + dir + ":/usr/bin:/bin", "HOME=" + t.TempDir()}
	script := func(t *testing.T, program, shell string) string {
		t.Helper()
		r := command(t, env, filepath.Join(dir, program), "completion", shell)
		if r.code != 0 || r.stdout == "" {
			t.Fatalf("%s completion %s: exit %d, %d bytes", program, shell, r.code, len(r.stdout))
		}
		path := filepath.Join(t.TempDir(), program+"."+shell)
		if err := os.WriteFile(path, []byte(r.stdout), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	shellPath := func(t *testing.T, shell string) string {
		t.Helper()
		path, err := exec.LookPath(shell)
		if err != nil {
			t.Fatalf("%s is not installed (apt-get install %s): its completion script cannot be checked", shell, shell)
		}
		return path
	}
	// Each case: the words typed so far, the last being completed, and a
	// completion that must be offered, or none at all ("").
	cases := []struct {
		words []string
		want  string
	}{
		{[]string{"au"}, "audit"},
		{[]string{""}, "completion"},
		{[]string{"completion", ""}, "zsh"},
		{[]string{"rules", ""}, "check"},
		{[]string{"audit", "--exit"}, "--exit-code"},
		{[]string{"-A", "--dry"}, "--dry-run"},
		{[]string{"--strategy", "ad"}, "adopt"},
		{[]string{"audit", "--gvr", ""}, "apps/v1/statefulsets"},
		{[]string{"audit", "-n", ""}, ""},
	}
	check := func(t *testing.T, words []string, want, got string) {
		t.Helper()
		lines := strings.Fields(got)
		if want == "" && len(lines) > 0 || want != "" && !slices.Contains(lines, want) {
			t.Errorf("%q: completions %q, want %q", words, lines, want)
		}
	}

	t.Run("bash", func(t *testing.T) {
		bash := shellPath(t, "bash")
		for _, program := range []string{"relabel", "kubectl-relabel"} {
			path := script(t, program, "bash")
			if r := command(t, env, bash, "-n", path); r.code != 0 {
				t.Fatalf("bash -n: exit %d", r.code)
			}
			fn := "_" + strings.ReplaceAll(program, "-", "_") + "_complete"
			for _, tc := range cases {
				// COMP_WORDS as bash sets it; the script fills COMPREPLY.
				words := append([]string{program}, tc.words...)
				code := `source "$1"; shift; [[ $(complete -p ` + program + `) == *"-F ` + fn + ` ` + program + `" ]] || exit 9
COMP_WORDS=("$@"); COMP_CWORD=$(($#-1)); ` + fn + `; printf '%s\n' "${COMPREPLY[@]}"`
				r := command(t, env, bash, append([]string{"-c", code, "bash", path}, words...)...)
				if r.code != 0 {
					t.Fatalf("%q: exit %d", words, r.code)
				}
				check(t, tc.words, tc.want, r.stdout)
			}
		}
	})
	t.Run("zsh", func(t *testing.T) {
		zsh := shellPath(t, "zsh")
		path := script(t, "relabel", "zsh")
		if r := command(t, env, zsh, "-n", path); r.code != 0 {
			t.Fatalf("zsh -n: exit %d", r.code)
		}
		for _, tc := range cases {
			// compsys stand-ins print what the script hands them.
			code := `compdef() { [[ $* == "_relabel_complete relabel" ]] || exit 9 }
_describe() { print -rl -- "${(@P)2}" }
_files() { }
source "$1"; shift; words=(relabel "$@"); CURRENT=${#words}; _relabel_complete`
			r := command(t, env, zsh, append([]string{"-fc", code, "zsh", path}, tc.words...)...)
			if r.code != 0 {
				t.Fatalf("%q: exit %d", tc.words, r.code)
			}
			check(t, tc.words, tc.want, r.stdout)
		}
	})
	t.Run("fish", func(t *testing.T) {
		fish := shellPath(t, "fish")
		path := script(t, "relabel", "fish")
		if r := command(t, env, fish, "--no-execute", path); r.code != 0 {
			t.Fatalf("fish --no-execute: exit %d", r.code)
		}
		// Fish's script is static: commands, subcommands and flags, no values.
		for _, tc := range []struct {
			line, want string
		}{
			{"relabel au", "audit"},
			{"relabel completion ", "fish"},
			{"relabel rules ", "check"},
			{"relabel audit --exit", "--exit-code"},
			{"relabel --dry", "--dry-run"},
		} {
			r := command(t, env, fish, "--no-config", "-c", `source $argv[1]; complete --do-complete $argv[2]`, path, tc.line)
			var got []string
			for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
				got = append(got, strings.SplitN(l, "\t", 2)[0]) // drop descriptions
			}
			if r.code != 0 || !slices.Contains(got, tc.want) {
				t.Errorf("%q: exit %d, completions %q, want %q", tc.line, r.code, got, tc.want)
			}
		}
	})
}
