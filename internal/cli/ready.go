package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"relabel.dev/relabel/rules"
)

// ErrNotReady is returned by `relabel ready` when some object is not ready.
var ErrNotReady = errors.New("some objects are not ready")

// stdinName is the -f value that reads standard input, as in kubectl.
const stdinName = "-"

func readyCommand() *cli.Command {
	return &cli.Command{
		Name:  "ready",
		Usage: "say whether objects read from files are ready, by the rules a migration waits with, without a cluster",
		UsageText: "relabel ready -f FILE [-f FILE]... [--rules FILE] [-o table|json]\n\n" +
			"   relabel ready -f web.yaml -f db.yaml\n" +
			"   kubectl get deploy,sts -n shop -o yaml | relabel ready -f -\n" +
			"   relabel ready -f rollout.yaml --rules rules.yaml -o json",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "filename", Aliases: []string{"f"}, Usage: "YAML or JSON file of objects (several documents, kind: List); - reads standard input; repeatable"},
			rulesFlag(),
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: outputTable, Usage: "table or json"},
		},
		Action: readyAction,
	}
}

// ReadyConfig is the ready command's input, checked before anything is judged.
type ReadyConfig struct {
	Files  []string
	Output string
	Rules  *rules.File
}

func readyConfigFrom(c *cli.Context) (ReadyConfig, error) {
	if err := argsNone(c); err != nil {
		return ReadyConfig{}, err
	}
	output, err := parseOutput(c.String("output"), outputTable, outputJSON)
	if err != nil {
		return ReadyConfig{}, err
	}
	files := c.StringSlice("filename")
	if len(files) == 0 {
		return ReadyConfig{}, usageErrorf("ready: name the objects' files with -f FILE (- reads standard input)")
	}
	stdin := 0
	for _, f := range files {
		if f == "" {
			return ReadyConfig{}, usageErrorf("-f: empty file name")
		}
		if f == stdinName {
			stdin++
		}
	}
	if stdin > 1 {
		return ReadyConfig{}, usageErrorf("-f -: standard input can be read only once")
	}
	file, err := loadRules(c)
	if err != nil {
		return ReadyConfig{}, err
	}
	return ReadyConfig{Files: files, Output: output, Rules: file}, nil
}

func readyAction(c *cli.Context) error {
	cfg, err := readyConfigFrom(c)
	if err != nil {
		return err
	}
	var objs []sourcedObject
	for _, name := range cfg.Files {
		found, err := readObjects(name, c.App.Reader)
		if err != nil {
			return err
		}
		objs = append(objs, found...)
	}
	report, err := JudgeReadiness(cfg.Rules, objs)
	if err != nil {
		return err
	}
	if err := printReadiness(c.App.Writer, cfg.Output, report); err != nil {
		return err
	}
	if len(report.Items) == 0 && cfg.Output == outputTable {
		fmt.Fprintln(c.App.ErrWriter, "No objects.")
	}
	for _, item := range report.Items {
		if !item.Ready {
			return ErrNotReady
		}
	}
	return nil
}

// ReadinessReport is the machine-readable form of `relabel ready`.
type ReadinessReport struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Items      []ReadinessItem `json:"items"`
}

// ReadinessItem is one object's verdict. Namespace is empty for cluster-scoped objects.
type ReadinessItem struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	Ready      bool   `json:"ready"`
	Reason     string `json:"reason"`
}

// sourcedObject is an object and where it was read, for messages.
type sourcedObject struct {
	obj   *unstructured.Unstructured
	where string // file: document N[, items[i]]
}

// readObjects reads the objects of one -f value: every document, and the
// items of each list. Anything that is not an object is bad input, and so is
// a file without any document: an empty pipe is more often a failed command
// than a cluster without workloads (whose `kubectl get -o yaml` is an empty List).
func readObjects(name string, stdin io.Reader) ([]sourcedObject, error) {
	var data []byte
	var err error
	label := name
	if name == stdinName {
		label = "standard input"
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, usageErrorf("reading %s: %w", label, err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []sourcedObject
	documents := 0
	for n := 1; ; n++ {
		var doc json.RawMessage
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		where := fmt.Sprintf("%s: document %d", label, n)
		if err != nil {
			return nil, usageErrorf("%s: %w", where, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 || string(bytes.TrimSpace(doc)) == "null" {
			continue // an empty document: a trailing ---, or comments only
		}
		documents++
		// util/json keeps integers int64, as they come from the API server.
		var m map[string]any
		if err := utiljson.Unmarshal(doc, &m); err != nil {
			return nil, usageErrorf("%s is not a Kubernetes object: want a mapping with apiVersion, kind and metadata.name", where)
		}
		objs, err := objectsOf(&unstructured.Unstructured{Object: m}, where)
		if err != nil {
			return nil, UsageError{Err: err}
		}
		out = append(out, objs...)
	}
	if documents == 0 {
		return nil, usageErrorf("%s holds no Kubernetes objects", label)
	}
	return out, nil
}

// objectsOf checks that obj is an object, or a list (kind: List, or a typed
// list such as DeploymentList whose items may lack apiVersion and kind), and
// returns the objects.
func objectsOf(obj *unstructured.Unstructured, where string) ([]sourcedObject, error) {
	kind, apiVersion := obj.GetKind(), obj.GetAPIVersion()
	if kind == "" || apiVersion == "" {
		return nil, fmt.Errorf("%s is not a Kubernetes object: it has no apiVersion or no kind", where)
	}
	if itemKind, isList := strings.CutSuffix(kind, "List"); isList {
		raw, found, _ := unstructured.NestedFieldNoCopy(obj.Object, "items")
		if items, ok := raw.([]any); found && ok {
			var out []sourcedObject
			for i, it := range items {
				at := fmt.Sprintf("%s, items[%d]", where, i)
				m, ok := it.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("%s is not a Kubernetes object: want a mapping", at)
				}
				item := &unstructured.Unstructured{Object: m}
				if item.GetKind() == "" && item.GetAPIVersion() == "" && itemKind != "" {
					item.SetAPIVersion(apiVersion)
					item.SetKind(itemKind)
				}
				objs, err := objectsOf(item, at)
				if err != nil {
					return nil, err
				}
				out = append(out, objs...)
			}
			return out, nil
		}
	}
	if _, err := schema.ParseGroupVersion(apiVersion); err != nil {
		return nil, fmt.Errorf("%s is not a Kubernetes object: apiVersion %q: %w", where, apiVersion, err)
	}
	if obj.GetName() == "" {
		return nil, fmt.Errorf("%s: %s has no metadata.name", where, kind)
	}
	return []sourcedObject{{obj: obj, where: where}}, nil
}

// readinessKind finds the rule objects of gk are judged by, as a migration
// does: the rules file's kinds win over the built-in ones. A kind without a
// readiness rule cannot be judged.
func readinessKind(file *rules.File, gk schema.GroupKind) (rules.Kind, bool) {
	if file != nil {
		for _, k := range file.Kinds {
			if k.GroupKind() == gk {
				return k, k.Readiness != ""
			}
		}
	}
	k, ok := rules.Builtin(gk)
	return k, ok && k.Readiness != ""
}

// JudgeReadiness judges each object by its kind's readiness rule, in order.
// An object of a kind relabel cannot judge is bad input: the error says how
// to give the kind a rule. A rule's error makes its object not ready, with
// the error as the reason.
func JudgeReadiness(file *rules.File, objs []sourcedObject) (ReadinessReport, error) {
	report := ReadinessReport{APIVersion: SchemaVersion, Kind: "ReadinessReport", Items: []ReadinessItem{}}
	kinds := make([]rules.Kind, len(objs))
	unknown := map[schema.GroupKind]sourcedObject{}
	for i, o := range objs {
		gk := o.obj.GroupVersionKind().GroupKind()
		k, ok := readinessKind(file, gk)
		if !ok {
			if _, seen := unknown[gk]; !seen {
				unknown[gk] = o
			}
			continue
		}
		kinds[i] = k
	}
	if len(unknown) > 0 {
		return ReadinessReport{}, UsageError{Err: noRuleError(file, unknown)}
	}
	for i, o := range objs {
		ready, reason, err := kinds[i].Ready(o.obj)
		if err != nil {
			ready, reason = false, err.Error()
		}
		report.Items = append(report.Items, ReadinessItem{
			APIVersion: o.obj.GetAPIVersion(), Kind: o.obj.GetKind(),
			Namespace: o.obj.GetNamespace(), Name: o.obj.GetName(),
			Ready: ready, Reason: reason,
		})
	}
	return report, nil
}

// noRuleError names the kinds without a readiness rule and shows a rules
// file that gives the first one a CEL rule.
func noRuleError(file *rules.File, unknown map[schema.GroupKind]sourcedObject) error {
	gks := make([]schema.GroupKind, 0, len(unknown))
	for gk := range unknown {
		gks = append(gks, gk)
	}
	sort.Slice(gks, func(i, j int) bool { return gks[i].String() < gks[j].String() })
	var lines []string
	for _, gk := range gks {
		o := unknown[gk]
		line := fmt.Sprintf("%s (%s, %s)", formatGroupKind(gk), o.where, objectName(o.obj))
		if reason, skipped := rules.SkipReason(gk); skipped {
			line += ": relabel does not migrate it: " + reason
		}
		lines = append(lines, line)
	}
	first := unknown[gks[0]].obj
	gv, _ := schema.ParseGroupVersion(first.GetAPIVersion())
	where := "a rules file, given with --rules FILE"
	if file != nil {
		where = "the rules file " + file.Name
	}
	return fmt.Errorf("relabel has no readiness rule for %s; give each kind one in %s: "+
		"an entry under kinds: with a CEL readiness: expression over self, the object, for example\n%s",
		strings.Join(lines, ", "), where, ruleExample(gv.Group, gv.Version, first.GetKind()))
}

// ruleExample is a three-line rules file giving the kind a CEL readiness rule.
func ruleExample(group, version, kind string) string {
	return fmt.Sprintf("  apiVersion: %s\n  kind: %s\n"+
		"  kinds: [{group: %q, version: %s, kind: %s, resource: %s, selectorPath: %s, templateLabelsPath: %s, "+
		"readiness: \"self.status.observedGeneration == self.metadata.generation && self.status.readyReplicas == self.spec.replicas\"}]",
		rules.FileAPIVersion, rules.FileKind, group, version, kind, pluralGuess(kind),
		rules.StandardSelectorPath, rules.StandardTemplateLabelsPath)
}

// pluralGuess is the usual plural of a kind's name, for the example only:
// the resource of a custom kind is whatever its CRD says.
func pluralGuess(kind string) string {
	k := strings.ToLower(kind)
	switch {
	case strings.HasSuffix(k, "s"), strings.HasSuffix(k, "x"), strings.HasSuffix(k, "ch"), strings.HasSuffix(k, "sh"):
		return k + "es"
	case strings.HasSuffix(k, "y") && len(k) > 1 && !strings.ContainsAny(k[len(k)-2:len(k)-1], "aeiou"):
		return k[:len(k)-1] + "ies"
	}
	return k + "s"
}

func formatGroupKind(gk schema.GroupKind) string {
	if gk.Group == "" {
		return gk.Kind
	}
	return gk.Group + "/" + gk.Kind
}

func objectName(obj *unstructured.Unstructured) string {
	if obj.GetNamespace() == "" {
		return obj.GetName()
	}
	return obj.GetNamespace() + "/" + obj.GetName()
}

func printReadiness(w io.Writer, format string, report ReadinessReport) error {
	if format == outputJSON {
		return printDocument(w, format, report)
	}
	if len(report.Items) == 0 {
		return nil
	}
	// A kind's name alone, unless two groups have a kind of that name here
	// (apps/StatefulSet and apps.kruise.io/StatefulSet): then Kind.group.
	groups := map[string]map[string]bool{}
	for _, it := range report.Items {
		gv, _ := schema.ParseGroupVersion(it.APIVersion)
		if groups[it.Kind] == nil {
			groups[it.Kind] = map[string]bool{}
		}
		groups[it.Kind][gv.Group] = true
	}
	t := newTable(w, "KIND", "NAMESPACE/NAME", "READY", "REASON")
	for _, it := range report.Items {
		kind := it.Kind
		if gv, _ := schema.ParseGroupVersion(it.APIVersion); len(groups[it.Kind]) > 1 && gv.Group != "" {
			kind += "." + gv.Group
		}
		name := it.Name
		if it.Namespace != "" {
			name = it.Namespace + "/" + it.Name
		}
		t.row(kind, name, fmt.Sprint(it.Ready), strings.Join(strings.Fields(it.Reason), " "))
	}
	return t.flush()
}
