package manifests

import (
	"fmt"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// KustomizeBase is what a kustomization leads to: its local resources, and
// what the user must check by hand.
type KustomizeBase struct {
	Local []string
	Notes []Note
}

// Kustomization reads a kustomization file. Remote resources are reported,
// not fetched; so are patches and labels that may change selectors after
// the base's files are rewritten.
func Kustomization(path string, data []byte, opts Options) (*KustomizeBase, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, parseError(path, err)
	}
	out := &KustomizeBase{}
	if len(root.Content) == 0 {
		return out, nil
	}
	doc := root.Content[0]
	for _, key := range []string{"resources", "bases", "components"} {
		_, seq := lookup(doc, key)
		if seq == nil || seq.Kind != yaml.SequenceNode {
			continue
		}
		for _, item := range seq.Content {
			if item.Kind != yaml.ScalarNode {
				continue
			}
			if remote(item.Value) {
				out.Notes = append(out.Notes, Note{File: path, Line: item.Line, Msg: fmt.Sprintf("remote resource %s is not fetched: add the label where it is maintained", item.Value)})
				continue
			}
			out.Local = append(out.Local, item.Value)
		}
	}
	label := opts.Label
	for _, key := range []string{"commonLabels", "labels"} {
		// Both reach the selectors kustomize builds (labels with includeSelectors).
		if k, v := lookup(doc, key); k != nil && label.Key != "" && mentions(v, label.Key) {
			out.Notes = append(out.Notes, Note{File: path, Line: k.Line, Msg: fmt.Sprintf("%s sets %s: check that it is %s, or the built selectors differ from the cluster's", key, label.Key, label.Value)})
		}
	}
	for _, key := range []string{"patches", "patchesStrategicMerge", "patchesJson6902", "replacements"} {
		k, v := lookup(doc, key)
		if k == nil || v == nil {
			continue
		}
		for _, item := range v.Content {
			text := nodeText(item)
			_, file := lookup(item, "path")
			if file != nil || item.Kind == yaml.ScalarNode || strings.Contains(text, "selector") || strings.Contains(text, "labels") {
				out.Notes = append(out.Notes, Note{File: path, Line: item.Line, Msg: key + " entry may set selectors or labels: check that it keeps " + label.String()})
			}
		}
	}
	return out, nil
}

func remote(s string) bool {
	return strings.Contains(s, "://") || strings.HasPrefix(s, "github.com/") || strings.HasPrefix(s, "git@") || strings.Contains(s, "?ref=")
}

// mentions says whether any key or value under n is s.
func mentions(n *yaml.Node, s string) bool {
	if n == nil {
		return false
	}
	if n.Kind == yaml.ScalarNode && n.Value == s {
		return true
	}
	for _, c := range n.Content {
		if mentions(c, s) {
			return true
		}
	}
	return false
}

// nodeText is the scalars under n, for a rough look at an inline patch.
func nodeText(n *yaml.Node) string {
	var b strings.Builder
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode {
			b.WriteString(n.Value)
			b.WriteByte('\n')
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}
