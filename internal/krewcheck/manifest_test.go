package krewcheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/krew/pkg/index"
	"sigs.k8s.io/yaml"
)

const manifest = "../../plugins/relabel.yaml"

// validate runs krew's validate-krew-manifest on path. -skip-install: the
// release archives the manifest points at do not exist before a release.
func validate(t *testing.T, path string) (string, error) {
	t.Helper()
	out, err := exec.Command("go", "tool", "validate-krew-manifest", "-manifest", path, "-skip-install").CombinedOutput()
	return string(out), err
}

func TestManifestIsValid(t *testing.T) {
	if out, err := validate(t, manifest); err != nil {
		t.Fatalf("krew rejects %s: %v\n%s", manifest, err, out)
	}
}

// The validator is not vacuous: the same manifest, broken, is refused.
func TestValidatorRefusesBrokenManifests(t *testing.T) {
	data, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, old, new, want string }{
		{"short sha256", `sha256: "00000000`, `sha256: "`, "sha256"},
		{"no bin", "bin: kubectl-relabel.exe", `bin: ""`, "bin"},
		{"overlapping platforms", "arch: arm64", "arch: amd64", "overlapping"},
		{"bad version", "version: v0.1.0", "version: 0.1", "version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			broken := strings.Replace(string(data), tc.old, tc.new, 1)
			if broken == string(data) {
				t.Fatalf("%q is not in the manifest", tc.old)
			}
			// krew wants the file named after the plugin.
			path := filepath.Join(t.TempDir(), "relabel.yaml")
			if err := os.WriteFile(path, []byte(broken), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := validate(t, path)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Errorf("krew accepts the manifest with %s (err %v):\n%s", tc.name, err, out)
			}
		})
	}
}

// What krew cannot know: the platforms relabel is released for, that each
// archive is the one `make dist` names, and that the licence is installed.
func TestManifestMatchesReleases(t *testing.T) {
	data, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	var p index.Plugin
	// Strict: krew ignores unknown fields, so a misspelt one would be lost.
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"linux/amd64": true, "linux/arm64": true, "darwin/amd64": true, "darwin/arm64": true, "windows/amd64": true}
	for _, pl := range p.Spec.Platforms {
		osArch := pl.Selector.MatchLabels["os"] + "/" + pl.Selector.MatchLabels["arch"]
		if !want[osArch] {
			t.Errorf("unexpected or repeated platform %s", osArch)
		}
		delete(want, osArch)
		archive := "kubectl-relabel_" + p.Spec.Version + "_" + strings.ReplaceAll(osArch, "/", "_") + ".tar.gz"
		if pl.URI != "https://github.com/relabel-dev/relabel/releases/download/"+p.Spec.Version+"/"+archive {
			t.Errorf("%s: uri %s, want the release's %s", osArch, pl.URI, archive)
		}
		bin := "kubectl-relabel"
		if pl.Selector.MatchLabels["os"] == "windows" {
			bin += ".exe"
		}
		if pl.Bin != bin {
			t.Errorf("%s: bin %q, want %q", osArch, pl.Bin, bin)
		}
		// krew-index wants the licence installed with the plugin.
		var files []string
		for _, f := range pl.Files {
			files = append(files, f.From+" to "+f.To)
		}
		if got, want := strings.Join(files, ", "), bin+" to ., LICENSE to ."; got != want {
			t.Errorf("%s: files %s, want %s", osArch, got, want)
		}
	}
	for osArch := range want {
		t.Errorf("no platform for %s", osArch)
	}
}
