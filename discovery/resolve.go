package discovery

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"relabel.dev/relabel/rules"
)

// ErrUnknownResource and ErrNotWorkload mark --gvr values that cannot be used.
var (
	ErrUnknownResource = errors.New("unknown resource")
	ErrNotWorkload     = errors.New("not a workload with an immutable selector")
)

// Resolve turns what a user typed for --gvr into a discovered workload kind.
// It accepts group/version/resource, version/resource for the core group,
// and the names kubectl accepts: plural, singular, short name or kind,
// each optionally qualified by its group (deployments.apps, deploy.apps).
func (r *Result) Resolve(arg string) (rules.Kind, error) {
	gvr, err := r.resolveResource(arg)
	if err != nil {
		return rules.Kind{}, err
	}
	for _, k := range r.Workloads {
		if k.Group == gvr.Group && k.Resource == gvr.Resource {
			return k, nil
		}
	}
	for _, s := range r.Skipped {
		if s.GVR == rules.FormatGVR(gvr) {
			return rules.Kind{}, fmt.Errorf("--gvr %s: %w: %s", arg, ErrNotWorkload, s.Reason)
		}
	}
	return rules.Kind{}, fmt.Errorf("--gvr %s: %s is %w (no label selector and pod template); see 'relabel kinds'", arg, rules.FormatGVR(gvr), ErrNotWorkload)
}

func (r *Result) resolveResource(arg string) (schema.GroupVersionResource, error) {
	arg = strings.TrimSpace(arg)
	if parts := strings.Split(arg, "/"); len(parts) >= 2 {
		gvr := schema.GroupVersionResource{Version: parts[len(parts)-2], Resource: strings.ToLower(parts[len(parts)-1])}
		if len(parts) == 3 {
			gvr.Group = parts[0]
		} else if len(parts) > 3 {
			return schema.GroupVersionResource{}, fmt.Errorf("--gvr %q: %w: want group/version/resource", arg, ErrUnknownResource)
		}
		for _, res := range r.resources {
			if res.gvr.Group == gvr.Group && res.gvr.Resource == gvr.Resource {
				if res.gvr.Version != gvr.Version {
					return schema.GroupVersionResource{}, fmt.Errorf("--gvr %s: %w: the server serves %s", arg, ErrUnknownResource, rules.FormatGVR(res.gvr))
				}
				return gvr, nil
			}
		}
		return schema.GroupVersionResource{}, r.unknown(arg)
	}

	name, group, qualified := strings.Cut(strings.ToLower(arg), ".")
	var matches []schema.GroupVersionResource
	for _, res := range r.resources {
		if qualified && res.gvr.Group != group {
			continue
		}
		if res.names()[name] {
			matches = append(matches, res.gvr)
		}
	}
	switch len(matches) {
	case 0:
		return schema.GroupVersionResource{}, r.unknown(arg)
	case 1:
		return matches[0], nil
	}
	// kubectl prefers the built-in groups for ambiguous short names; so do we.
	for _, m := range matches {
		if m.Group == "" || m.Group == "apps" {
			return m, nil
		}
	}
	var names []string
	for _, m := range matches {
		names = append(names, rules.FormatGVR(m))
	}
	sort.Strings(names)
	return schema.GroupVersionResource{}, fmt.Errorf("--gvr %s is ambiguous: it names %s; give group/version/resource", arg, strings.Join(names, ", "))
}

func (res resource) names() map[string]bool {
	n := map[string]bool{res.gvr.Resource: true, strings.ToLower(res.kind): true}
	if res.singular != "" {
		n[res.singular] = true
	}
	for _, s := range res.shortNames {
		n[s] = true
	}
	return n
}

func (r *Result) unknown(arg string) error {
	// Ties go to the GVR that sorts first: discovery's order varies from run
	// to run, the suggestion should not.
	best, bestDistance := "", 1<<30
	consider := func(gvr string, d int) {
		if d < bestDistance || d == bestDistance && gvr < best {
			best, bestDistance = gvr, d
		}
	}
	for _, res := range r.resources {
		gvr := rules.FormatGVR(res.gvr)
		for n := range res.names() {
			consider(gvr, distance(strings.ToLower(arg), n))
		}
		consider(gvr, distance(arg, gvr))
	}
	if best == "" {
		return fmt.Errorf("--gvr %s: %w", arg, ErrUnknownResource)
	}
	return fmt.Errorf("--gvr %s: %w; did you mean %s?", arg, ErrUnknownResource, best)
}

// distance is the Levenshtein edit distance.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// builtinShortNames are what the API server lists for the built-in kinds.
var builtinShortNames = map[schema.GroupVersionResource][]string{
	{Group: "apps", Version: "v1", Resource: "deployments"}:  {"deploy"},
	{Group: "apps", Version: "v1", Resource: "statefulsets"}: {"sts"},
	{Group: "apps", Version: "v1", Resource: "daemonsets"}:   {"ds"},
}

// Offline is what discovery would find on a cluster serving exactly the
// built-in workload kinds and the extra ones (a rules file's, which take
// precedence), for commands that work without a cluster. --gvr resolves
// against it as usual.
func Offline(extra []rules.Kind) *Result {
	byGK := map[schema.GroupKind]rules.Kind{}
	for _, k := range rules.Builtins() {
		byGK[k.GroupKind()] = k
	}
	for _, k := range extra {
		byGK[k.GroupKind()] = k
	}
	res := &Result{}
	for _, k := range byGK {
		res.Workloads = append(res.Workloads, k)
		res.resources = append(res.resources, resource{gvr: k.GVR(), kind: k.Kind, singular: strings.ToLower(k.Kind), shortNames: builtinShortNames[k.GVR()]})
	}
	sort.Slice(res.Workloads, func(i, j int) bool { return res.Workloads[i].GVRString() < res.Workloads[j].GVRString() })
	return res
}
