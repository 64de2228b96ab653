package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/urfave/cli/v2"
)

// Contexts is which kubeconfig contexts a command works on.
type Contexts struct {
	// Names are the --context values, in the order given.
	Names []string
	// All is --all-contexts: every context, sorted by name.
	All bool
}

// Several is true when the command line asks for several clusters; the output
// then has one section per context, even if they come down to one.
func (cs Contexts) Several() bool { return cs.All || len(cs.Names) > 1 }

func contextsFrom(c *cli.Context) (Contexts, error) {
	cs := Contexts{Names: c.StringSlice("context"), All: c.Bool("all-contexts")}
	if cs.All && len(cs.Names) > 0 {
		return cs, usageErrorf("--context and --all-contexts exclude each other")
	}
	return cs, nil
}

// Target is one cluster to work on.
type Target struct {
	Connection
	// Server is the context's API server, from the kubeconfig: it is known
	// even when the server cannot be reached.
	Server string
}

// targets lists one Target per selected context. For one context it reads
// nothing: Connect loads the kubeconfig as before.
func (cs Contexts) targets(conn Connection) ([]Target, error) {
	if !cs.Several() {
		if len(cs.Names) == 1 {
			conn.Context = cs.Names[0]
		}
		return []Target{{Connection: conn}}, nil
	}
	raw, err := conn.clientConfig().RawConfig()
	if err != nil {
		return nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	known := slices.Sorted(maps.Keys(raw.Contexts))
	names := cs.Names
	if cs.All {
		if len(known) == 0 {
			return nil, errors.New("--all-contexts: the kubeconfig has no contexts")
		}
		names = known
	}
	var targets []Target
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] {
			continue
		}
		seen[name] = true
		kc, ok := raw.Contexts[name]
		if !ok {
			return nil, usageErrorf("--context %q: no such context in the kubeconfig (it has: %s)", name, strings.Join(known, ", "))
		}
		t := Target{Connection: conn}
		t.Context = name
		if cluster := raw.Clusters[kc.Cluster]; cluster != nil {
			t.Server = cluster.Server
		}
		targets = append(targets, t)
	}
	return targets, nil
}

// clusterConcurrency bounds how many clusters audit and kinds read at once.
const clusterConcurrency = 4

// ClusterResult is one cluster's part of a multi-cluster document: its
// report, or the error that stopped it.
type ClusterResult[T any] struct {
	Context string `json:"context"`
	Server  string `json:"server,omitempty"`
	Report  *T     `json:"report,omitempty"`
	Error   string `json:"error,omitempty"`
	err     error
}

func newClusterResult[T any](t Target, report *T, err error) ClusterResult[T] {
	r := ClusterResult[T]{Context: t.Context, Server: t.Server, Report: report, err: err}
	if err != nil {
		r.Report, r.Error = nil, err.Error()
	}
	return r
}

// eachCluster runs fn on every target, a few at once, and returns the results
// in the targets' order, whichever finishes first. Each fn gets its own
// stderr, whose lines name its context.
func eachCluster[T any](ctx context.Context, targets []Target, stderr io.Writer, fn func(context.Context, Target, io.Writer) (*T, error)) []ClusterResult[T] {
	results := make([]ClusterResult[T], len(targets))
	var mu sync.Mutex
	var wg sync.WaitGroup
	slots := make(chan struct{}, clusterConcurrency)
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			report, err := fn(ctx, t, &prefixWriter{mu: &mu, w: stderr, prefix: "context " + t.Context + ": "})
			results[i] = newClusterResult(t, report, err)
		}()
	}
	wg.Wait()
	return results
}

// prefixWriter starts each write with a prefix; writers sharing mu never
// interleave their writes.
type prefixWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := io.WriteString(p.w, p.prefix); err != nil {
		return 0, err
	}
	return p.w.Write(b)
}

// sectionHeader opens a context's section of a table.
func sectionHeader(w io.Writer, first bool, context, server string) {
	if !first {
		fmt.Fprintln(w)
	}
	if server == "" {
		server = "server unknown"
	}
	fmt.Fprintf(w, "== context %s (%s) ==\n", context, server)
}

// clusterOutcome is how one cluster's part of a run ended, for the exit code.
type clusterOutcome struct {
	context string
	err     error
}

// worstOutcome folds per-cluster outcomes into the run's error, the worst
// first: bad input (exit 2) over an error (1) over findings (3) over success.
// An error ranks above findings so that a cluster that could not be read is
// never mistaken for one that merely lacks labels.
func worstOutcome(outcomes []clusterOutcome) error {
	var usage, failed, findings, notStarted []string
	for _, o := range outcomes {
		var u UsageError
		switch {
		case o.err == nil:
		case errors.Is(o.err, errNotStarted):
			notStarted = append(notStarted, o.context)
		case errors.As(o.err, &u):
			usage = append(usage, o.context+": "+o.err.Error())
		case errors.Is(o.err, ErrFindings):
			findings = append(findings, o.context)
		default:
			failed = append(failed, o.context+": "+o.err.Error())
		}
	}
	n := len(outcomes)
	switch {
	case len(usage) > 0:
		return usageErrorf("bad input for %d of %d contexts: %s", len(usage), n, strings.Join(usage, "; "))
	case len(failed) > 0:
		err := fmt.Errorf("%d of %d contexts failed: %s", len(failed), n, strings.Join(failed, "; "))
		if len(notStarted) > 0 {
			err = fmt.Errorf("%w; not started: %s", err, strings.Join(notStarted, ", "))
		}
		return err
	case len(findings) > 0:
		return fmt.Errorf("%w in %d of %d contexts: %s", ErrFindings, len(findings), n, strings.Join(findings, ", "))
	}
	return nil
}
