package manifests

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"relabel.dev/relabel/rules"
	workload "relabel.dev/relabel/unstructured"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var stageProd = Options{Label: rules.Label{Key: "stage", Value: "prod"}}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// onlyAdditions checks that the change keeps every original byte: each new
// line holds the label or opens a map for it, and a line that changed only
// gained text containing the label.
func onlyAdditions(t *testing.T, r *Result, l rules.Label) {
	t.Helper()
	for i, d := range r.diff {
		switch {
		case d.op == '-':
			if i+1 >= len(r.diff) || r.diff[i+1].op != '+' {
				t.Errorf("%s: line removed: %q", r.Path, d.text)
				continue
			}
			old, changed := d.text, r.diff[i+1].text
			p := 0
			for p < len(old) && old[p] == changed[p] {
				p++
			}
			added := changed[p : p+len(changed)-len(old)]
			if changed[:p]+changed[p+len(added):] != old || !strings.Contains(added, l.Key) {
				t.Errorf("%s: line %q became %q: not an insertion of the label", r.Path, old, changed)
			}
		case d.op == '+' && (i == 0 || r.diff[i-1].op != '-'):
			text := strings.NewReplacer(`"`, "", "'", "").Replace(strings.TrimSpace(d.text))
			if !strings.Contains(text, l.Key+": "+l.Value) && !strings.HasSuffix(text, ":") {
				t.Errorf("%s: added line %q is neither the label nor a map for it", r.Path, d.text)
			}
		}
	}
}

func TestYAMLGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.in.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			r, err := YAML(in, data, stageProd)
			if err != nil {
				golden(t, filepath.Join("testdata", name+".golden.err"), []byte(err.Error()+"\n"))
				return
			}
			golden(t, filepath.Join("testdata", name+".golden.yaml"), r.New)
			onlyAdditions(t, r, stageProd.Label)
			// Rewriting the result again changes nothing.
			again, err := YAML(in, r.New, stageProd)
			if err != nil {
				t.Fatalf("second run: %v", err)
			}
			if again.Changed() {
				t.Errorf("second run changes the file again:\n%s", again.Diff())
			}
			for _, w := range again.Workloads {
				if w.Lacking {
					t.Errorf("%s:%d %s %s still lacks the label", w.File, w.Line, w.Kind, w.Ref())
				}
			}
		})
	}
}

// TestTreeGolden runs the paths as the command does and keeps the diffs,
// notes and errors in one golden file per case.
func TestTreeGolden(t *testing.T) {
	for _, tc := range []struct{ name, path string }{
		{"kustomize", "testdata/kustomize/overlay"},
		{"helm-chart", "testdata/helm-chart"},
		{"helm-literal-chart", "testdata/helm-literal-chart"},
		{"helm-values-chart", "testdata/helm-values-chart"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			plan, err := Load([]string{tc.path}, stageProd)
			if err != nil {
				out.WriteString("error: " + err.Error() + "\n")
			} else {
				for _, n := range plan.Notes {
					out.WriteString("note: " + n.String() + "\n")
				}
				for _, w := range plan.Workloads() {
					out.WriteString("workload: " + w.File + " " + w.Kind + " " + w.Ref() + "\n")
				}
				for _, r := range plan.Changed() {
					out.WriteString(r.Diff())
					onlyAdditions(t, r, stageProd.Label)
				}
			}
			golden(t, filepath.Join("testdata", tc.name+".golden.txt"), []byte(out.String()))
		})
	}
}

func TestErrorsNameFileAndLine(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     error
		wantPos  string
	}{
		{"unparseable", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: [web\n", ErrParse, "bad.yaml:"},
		{"selector conflict", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels:\n      stage: dev\n  template:\n    metadata:\n      labels:\n        stage: dev\n", ErrConflict, "bad.yaml:8:"},
		{"expressions exclude the value", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchExpressions:\n    - {key: stage, operator: NotIn, values: [prod]}\n  template:\n    metadata:\n      labels:\n        app: web\n", workload.ErrSelectorConflict, "bad.yaml:2:"},
		{"metadata conflict", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels:\n    stage: dev\nspec:\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n", ErrConflict, "bad.yaml:6:"},
		{"merge key", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels:\n      <<: {app: web}\n  template:\n    metadata:\n      labels:\n        app: web\n", ErrUnsafe, "bad.yaml:8:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := YAML("bad.yaml", []byte(tc.in), stageProd)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.wantPos) {
				t.Errorf("got %v, want %v at %s", err, tc.want, tc.wantPos)
			}
		})
	}
}

func TestRenderScalar(t *testing.T) {
	for _, tc := range []struct {
		in    string
		quote byte
		want  string
	}{
		{"prod", 0, "prod"},
		{"true", 0, `"true"`},
		{"123", 0, `"123"`},
		{"", 0, `""`},
		{"prod", '"', `"prod"`},
		{"it's", '\'', `'it''s'`},
	} {
		if got := renderScalar(tc.in, tc.quote); got != tc.want {
			t.Errorf("renderScalar(%q, %q) = %s, want %s", tc.in, tc.quote, got, tc.want)
		}
	}
}

func TestUnifiedDiffHunks(t *testing.T) {
	var old []string
	for i := range 20 {
		old = append(old, strings.Repeat("x", i+1)+"\n")
	}
	_, diff := apply(old, []edit{{line: 2, col: -1, text: "a\n"}, {line: 18, col: -1, text: "b\n"}})
	got := unifiedDiff("f.yaml", diff)
	for _, want := range []string{"--- a/f.yaml\n+++ b/f.yaml\n", "@@ -1,5 +1,6 @@\n", "@@ -16,5 +17,6 @@\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("diff lacks %q:\n%s", want, got)
		}
	}
}

func TestWriteKeepsModeAndIsAtomic(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	deploy := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n"
	if err := os.WriteFile(good, []byte(deploy), 0o640); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "z-bad.yaml")
	if err := os.WriteFile(bad, []byte("kind: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load([]string{dir}, stageProd); !errors.Is(err, ErrParse) {
		t.Fatalf("Load with a bad file: %v, want a parse error", err)
	}
	if data, _ := os.ReadFile(good); string(data) != deploy {
		t.Errorf("good.yaml changed though another file is bad")
	}
	os.Remove(bad)
	plan, err := Load([]string{dir}, stageProd)
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.Write(); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(good)
	if err != nil || info.Mode().Perm() != 0o640 {
		t.Errorf("mode after write: %v %v, want 0640", info.Mode(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestRulesPickKindsAndLabels(t *testing.T) {
	file, err := rules.LoadFile("../../testdata/rules/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	in := "testdata/rules-objects.yaml"
	data, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	r, err := YAML(in, data, Options{Rules: file})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "testdata/rules-objects.golden.yaml", r.New)
	want := map[string]string{"api": "team=payments", "web": "app.kubernetes.io/name=web"}
	for _, w := range r.Workloads {
		if got := w.Label.String(); got != want[w.Name] || !w.Lacking {
			t.Errorf("%s: label %s (lacking %v), want %s", w.Name, got, w.Lacking, want[w.Name])
		}
	}
}

func TestCRLFFileGetsCRLFLines(t *testing.T) {
	in := strings.ReplaceAll("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels:\n    app: web\nspec:\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n", "\n", "\r\n")
	r, err := YAML("crlf.yaml", []byte(in), stageProd)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(r.New), "stage: prod\r\n"); got != 3 {
		t.Errorf("%d CRLF label lines, want 3:\n%q", got, r.New)
	}
	if strings.Count(string(r.New), "\n") != strings.Count(string(r.New), "\r\n") {
		t.Errorf("mixed line endings: %q", r.New)
	}
}
