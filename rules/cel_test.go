package rules

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"relabel.dev/relabel/internal/testutil"
)

func TestCompileReadiness(t *testing.T) {
	tests := []struct {
		name    string
		expr    string
		wantErr string // a part of the message; empty when valid
	}{
		{name: "comparisons", expr: "self.status.observedGeneration >= self.metadata.generation && self.status.readyReplicas == self.spec.replicas"},
		{name: "a field of unknown type", expr: "self.status.ready"},
		{name: "index", expr: "self['status']['ready']"},
		{name: "has", expr: "has(self.status) && self.status.phase == 'Running'"},
		{name: "macro", expr: "self.status.conditions.exists(c, c.type == 'Ready' && c.status == 'True')"},
		{name: "optional", expr: "self.?status.?ready.orValue(false)"},
		{name: "multi-line", expr: "self.status.ready &&\n  self.status.phase == 'Running'"},
		{name: "syntax error", expr: "self.status.", wantErr: "invalid CEL at 1:13: Syntax error"},
		{name: "int", expr: "self.spec.replicas + 1", wantErr: "returns int, not bool"},
		{name: "string", expr: "'ready'", wantErr: "returns string, not bool"},
		{name: "optional without orValue", expr: "self.?status", wantErr: "returns optional_type(dyn), not bool"},
		{name: "undeclared variable", expr: "object.status.ready", wantErr: "undeclared reference to 'object'"},
		{name: "kstatus is not CEL", expr: "kstatus", wantErr: "undeclared reference to 'kstatus'"},
		{name: "empty", expr: " ", wantErr: "empty CEL expression"},
		{name: "too long", expr: "self.a == '" + strings.Repeat("x", maxReadinessLength) + "'", wantErr: "size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CompileReadiness(tc.expr)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("CompileReadiness: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("CompileReadiness = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

const replicasReady = "self.status.observedGeneration >= self.metadata.generation && self.status.readyReplicas == self.spec.replicas"

func TestReadyCEL(t *testing.T) {
	fixture := func(mutators ...testutil.Mutator) *unstructured.Unstructured {
		return testutil.Unstructured(t, "testdata/objects/rollout.yaml", mutators...)
	}
	kind := func(readiness string) Kind {
		return Kind{Group: "demo.relabel.dev", Version: "v1alpha1", Kind: "Rollout", Resource: "rollouts", Readiness: readiness}
	}
	tests := []struct {
		name      string
		readiness string
		obj       *unstructured.Unstructured
		wantReady bool
		// wantMessage and wantErr are parts of the message or error.
		wantMessage string
		wantErr     string
	}{
		{name: "true", readiness: replicasReady, obj: fixture(set(int64(3), "spec", "replicas"), set(int64(3), "status", "readyReplicas"),
			set(int64(2), "metadata", "generation"), set(int64(2), "status", "observedGeneration")), wantReady: true},
		{name: "false", readiness: replicasReady, obj: fixture(set(int64(3), "spec", "replicas"), set(int64(1), "status", "readyReplicas"),
			set(int64(2), "metadata", "generation"), set(int64(2), "status", "observedGeneration")),
			wantMessage: `readiness "` + replicasReady + `" is false`},
		{name: "generation not observed", readiness: replicasReady, obj: fixture(set(int64(3), "spec", "replicas"), set(int64(3), "status", "readyReplicas"),
			set(int64(2), "metadata", "generation"), set(int64(1), "status", "observedGeneration")),
			wantMessage: "not observed generation 2"},
		{name: "numbers decoded as floats", readiness: replicasReady, obj: fixture(set(float64(3), "spec", "replicas"), set(int64(3), "status", "readyReplicas"),
			set(float64(2), "metadata", "generation"), set(int64(2), "status", "observedGeneration")), wantReady: true},
		{name: "no status yet", readiness: replicasReady, obj: fixture(remove("status")), wantMessage: "no such key: status"},
		{name: "no such list element", readiness: "self.status.conditions[0].status == 'True'", obj: fixture(set([]interface{}{}, "status", "conditions")),
			wantMessage: "index out of bounds"},
		{name: "condition", readiness: "self.status.conditions.exists(c, c.type == 'Ready' && c.status == 'True')",
			obj: fixture(set([]interface{}{cond("Ready", "True", "", "")}, "status", "conditions")), wantReady: true},
		{name: "optional field", readiness: "self.?status.?paused.orValue(false) == false", obj: fixture(remove("status")), wantReady: true},
		{name: "kstatus is not consulted", readiness: "false", obj: fixture(), wantMessage: `readiness "false" is false`},
		{name: "int result", readiness: "self.spec.replicas", obj: fixture(set(int64(3), "spec", "replicas")),
			wantErr: `readiness "self.spec.replicas" of Rollout shop/checkout returned int, not bool`},
		{name: "string result", readiness: "self.metadata.name", obj: fixture(),
			wantErr: "returned string, not bool"},
		{name: "division by zero", readiness: "self.spec.replicas / 0 == 1", obj: fixture(set(int64(3), "spec", "replicas")),
			wantErr: "division by zero"},
		{name: "expression that does not compile", readiness: "self.", obj: fixture(),
			wantErr: "readiness of Rollout shop/checkout: invalid CEL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ready, msg, err := kind(tc.readiness).Ready(tc.obj)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Ready = %v, %q, %v; want an error containing %q", ready, msg, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Ready: %v", err)
			}
			if ready != tc.wantReady {
				t.Errorf("ready = %v, want %v (%s)", ready, tc.wantReady, msg)
			}
			if !strings.Contains(msg, tc.wantMessage) {
				t.Errorf("message %q does not contain %q", msg, tc.wantMessage)
			}
		})
	}
}

// A kind without a readiness rule is never judged ready: Judge says how to give one.
func TestReadyWithoutRule(t *testing.T) {
	obj := testutil.Unstructured(t, "testdata/objects/deployment.yaml")
	k, _ := Builtin(schema.GroupKind{Group: "apps", Kind: "Deployment"})
	k.Readiness = ""
	ready, _, err := k.Ready(obj)
	if ready || err == nil || !strings.Contains(err.Error(), "readiness:") {
		t.Errorf("Ready = %v, %v; want an error showing a readiness rule", ready, err)
	}
}

// Many goroutines evaluate the same expressions; each is compiled once.
func TestReadyCELConcurrent(t *testing.T) {
	obj := testutil.Unstructured(t, "testdata/objects/rollout.yaml", set(int64(3), "spec", "replicas"))
	exprs := []string{"self.spec.replicas == 3", "self.spec.replicas > 3", "self.spec.replicas < 10 && true"}
	want := []bool{true, false, true}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Go(func() {
			for i := range 20 {
				j := (g + i) % len(exprs)
				ready, _, err := Kind{Kind: "Rollout", Readiness: exprs[j]}.Ready(obj)
				if err != nil || ready != want[j] {
					errs <- fmt.Errorf("%s: %v, %v", exprs[j], ready, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, e := range exprs {
		if _, ok := programs.Load(e); !ok {
			t.Errorf("%q was not kept compiled", e)
		}
	}
}
