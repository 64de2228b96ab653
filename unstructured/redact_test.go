package unstructured

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestRedactedHidesLiteralEnvValues(t *testing.T) {
	const secret = "s3cr3t-literal"
	env := []any{
		map[string]any{"name": "PASSWORD", "value": secret},
		map[string]any{"name": "TOKEN", "valueFrom": map[string]any{
			"secretKeyRef": map[string]any{"name": "creds", "key": "token"},
		}},
	}
	container := map[string]any{"name": "app", "image": "app:1", "env": env}
	obj := fixture(t, "deployment",
		set([]any{container}, "spec", "template", "spec", "containers"),
		set([]any{container}, "spec", "template", "spec", "initContainers"),
		set(map[string]any{lastApplied: `{"value":"` + secret + `"}`}, "metadata", "annotations"),
	)
	before, _ := yaml.Marshal(obj.Object)

	out, err := yaml.Marshal(Redacted(obj, builtinKind(t, "Deployment")).Object)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), secret) {
		t.Errorf("the redacted object still holds the literal value:\n%s", out)
	}
	for _, want := range []string{"secretKeyRef", "name: creds", "key: token", "name: PASSWORD"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the redacted object lost %q", want)
		}
	}
	if after, _ := yaml.Marshal(obj.Object); string(after) != string(before) {
		t.Error("Redacted changed its input")
	}
}
