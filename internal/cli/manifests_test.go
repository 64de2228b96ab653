package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const unlabelled = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
`

// The command's exit classes: findings, bad input, conflicts; only the
// plain run writes.
func TestManifestsCommand(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content string
		args    []string
		usage   bool // a UsageError (exit 2)
		finding bool // ErrFindings (exit 3)
		err     bool // any other error (exit 1)
		stdout  string
		writes  bool
	}{
		{name: "check lists what lacks the label", content: unlabelled, args: []string{"--label", "stage=prod", "--check"}, finding: true, stdout: "web.yaml:2 Deployment shop/web\n"},
		{name: "check as json", content: unlabelled, args: []string{"--label", "stage=prod", "--check", "-o", "json"}, finding: true, stdout: `"lacking": 1`},
		{name: "dry run prints a diff", content: unlabelled, args: []string{"--label", "stage=prod", "--dry-run"}, stdout: "+      stage: prod\n"},
		{name: "rewrites", content: unlabelled, args: []string{"--label", "stage=prod"}, stdout: "1 file changed; 1 of 1 workload labelled\n", writes: true},
		{name: "a conflict", content: strings.Replace(unlabelled, "      app: web\n  template", "      app: web\n      stage: dev\n  template", 1), args: []string{"--label", "stage=prod"}, err: true},
		{name: "unparseable", content: "kind: [\n", args: []string{"--label", "stage=prod"}, usage: true},
		{name: "no label", content: unlabelled, args: []string{"--check"}, usage: true},
		{name: "check and dry run", content: unlabelled, args: []string{"--label", "stage=prod", "--check", "--dry-run"}, usage: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "web.yaml")
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := runApp(t, "relabel", append(append([]string{"manifests"}, tc.args...), path)...)
			var usage UsageError
			if got := errors.As(err, &usage); got != tc.usage {
				t.Errorf("usage error: %v, want %v", err, tc.usage)
			}
			if got := errors.Is(err, ErrFindings); got != tc.finding {
				t.Errorf("findings: %v, want %v", err, tc.finding)
			}
			if got := err != nil && !tc.usage && !tc.finding; got != tc.err {
				t.Errorf("error: %v, want one: %v", err, tc.err)
			}
			if !strings.Contains(out, tc.stdout) {
				t.Errorf("stdout %q lacks %q", out, tc.stdout)
			}
			data, _ := os.ReadFile(path)
			if changed := string(data) != tc.content; changed != tc.writes {
				t.Errorf("file changed: %v, want %v", changed, tc.writes)
			}
		})
	}
}
