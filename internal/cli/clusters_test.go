package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const kubeconfigTemplate = `apiVersion: v1
kind: Config
clusters:
- {name: %[1]s, cluster: {server: "https://%[1]s.example.com"}}
users:
- {name: %[1]s, user: {token: x}}
contexts:
- {name: %[1]s, context: {cluster: %[1]s, user: %[1]s}}
current-context: %[1]s
`

// kubeconfigs writes one kubeconfig per name and returns their paths.
func kubeconfigs(t *testing.T, names ...string) []string {
	t.Helper()
	var paths []string
	for _, name := range names {
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, fmt.Appendf(nil, kubeconfigTemplate, name), 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, path)
	}
	return paths
}

func TestContextTargets(t *testing.T) {
	paths := kubeconfigs(t, "prod", "dev", "staging")
	t.Setenv("KUBECONFIG", strings.Join(paths, string(os.PathListSeparator)))
	for _, tc := range []struct {
		name     string
		contexts Contexts
		want     []string // context=server
		usage    bool
	}{
		{"one context reads nothing", Contexts{Names: []string{"nowhere"}}, []string{"nowhere="}, false},
		{"order as given", Contexts{Names: []string{"staging", "prod"}}, []string{"staging=https://staging.example.com", "prod=https://prod.example.com"}, false},
		{"repeats once", Contexts{Names: []string{"dev", "prod", "dev"}}, []string{"dev=https://dev.example.com", "prod=https://prod.example.com"}, false},
		{"all sorted", Contexts{All: true}, []string{"dev=https://dev.example.com", "prod=https://prod.example.com", "staging=https://staging.example.com"}, false},
		{"unknown", Contexts{Names: []string{"prod", "prdo"}}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			targets, err := tc.contexts.targets(Connection{Namespace: "shop"})
			var usage UsageError
			if tc.usage {
				if !errors.As(err, &usage) {
					t.Fatalf("err %v, want a usage error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, target := range targets {
				got = append(got, target.Context+"="+target.Server)
				if target.Namespace != "shop" {
					t.Errorf("%s: namespace %q, want shop for every context", target.Context, target.Namespace)
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("targets %v, want %v", got, tc.want)
			}
		})
	}
}

func TestEachClusterKeepsOrder(t *testing.T) {
	targets := []Target{{Connection: Connection{Context: "a"}}, {Connection: Connection{Context: "b"}}, {Connection: Connection{Context: "c"}}}
	// a finishes last: it waits until c is done.
	cDone := make(chan struct{})
	results := eachCluster(context.Background(), targets, io.Discard, func(_ context.Context, t Target, _ io.Writer) (*string, error) {
		switch t.Context {
		case "a":
			<-cDone
		case "b":
			return nil, errors.New("unreachable")
		case "c":
			defer close(cDone)
		}
		name := t.Context
		return &name, nil
	})
	var got []string
	for _, r := range results {
		if r.Report != nil {
			got = append(got, r.Context+":"+*r.Report)
		} else {
			got = append(got, r.Context+":"+r.Error)
		}
	}
	if want := []string{"a:a", "b:unreachable", "c:c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("results %v, want %v", got, want)
	}
}

func TestWorstOutcome(t *testing.T) {
	failed := errors.New("connection refused")
	findings := fmt.Errorf("%w: 2 of 3", ErrFindings)
	usage := usageErrorf("--gvr rollouts: unknown resource")
	for _, tc := range []struct {
		name     string
		outcomes []error
		want     int // exit code as main picks it
	}{
		{"all ok", []error{nil, nil}, 0},
		{"findings", []error{nil, findings}, 3},
		{"an error beats findings", []error{findings, failed, nil}, 1},
		{"bad input beats an error", []error{failed, usage, findings}, 2},
		{"not started after a failure", []error{failed, errNotStarted}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var outcomes []clusterOutcome
			for i, err := range tc.outcomes {
				outcomes = append(outcomes, clusterOutcome{context: fmt.Sprint("ctx", i), err: err})
			}
			if got := exitCodeOf(worstOutcome(outcomes)); got != tc.want {
				t.Errorf("exit %d, want %d", got, tc.want)
			}
		})
	}
}

// exitCodeOf mirrors main's choice of exit code.
func exitCodeOf(err error) int {
	var usage UsageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &usage):
		return 2
	case errors.Is(err, ErrFindings):
		return 3
	}
	return 1
}
