// Package testutil holds what the unit tests share: reading YAML fixtures
// into unstructured objects, in the manner of cli-utils' testutil.Unstructured.
package testutil

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// Mutator changes a decoded fixture before the test uses it.
type Mutator func(*unstructured.Unstructured)

// Unstructured decodes the YAML fixture at path, which is relative to the
// module root ("testdata/objects/deployment.yaml") unless absolute, and
// applies the mutators in order. The file must hold a single object. Numbers
// decode as int64, as they do from the API server. Failures end the test.
func Unstructured(t testing.TB, path string, mutators ...Mutator) *unstructured.Unstructured {
	t.Helper()
	if !filepath.IsAbs(path) {
		path = filepath.Join(moduleRoot(t), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading fixture: %v", err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatalf("fixture %s: %v", path, err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(js); err != nil {
		t.Fatalf("fixture %s: %v", path, err)
	}
	for _, m := range mutators {
		m(u)
	}
	return u
}

// moduleRoot is the nearest directory above the working directory (the
// package under test) that holds go.mod.
func moduleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("finding the module root: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("finding the module root: no go.mod above the working directory")
		}
		dir = parent
	}
}
