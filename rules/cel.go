package rules

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/cel-go/cel"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Limits on readiness expressions: they are short, and evaluated on every
// event of every object being migrated.
const (
	maxReadinessLength = 4096
	readinessCostLimit = 1_000_000
	// Distinct expressions compiled once and kept; more are compiled on each use.
	maxCachedPrograms = 256
)

// celEnv declares `self`, the object, as a map of dynamic values: the type
// checker accepts any field path and checks only what the expression itself
// makes certain (a comparison is bool, an arithmetic expression is not).
var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("self", cel.MapType(cel.StringType, cel.DynType)),
		cel.OptionalTypes(),
		cel.CrossTypeNumericComparisons(true),
		cel.ParserExpressionSizeLimit(maxReadinessLength),
	)
})

// CompileReadiness checks that expr is a CEL expression over `self` that
// returns a bool. "" and "kstatus" are not CEL and are not accepted here.
func CompileReadiness(expr string) error {
	_, err := compileReadiness(expr)
	return err
}

func compileReadiness(expr string) (cel.Program, error) {
	env, err := celEnv()
	if err != nil {
		return nil, fmt.Errorf("CEL environment: %w", err)
	}
	if strings.TrimSpace(expr) == "" {
		return nil, fmt.Errorf("empty CEL expression")
	}
	ast, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		var msgs []string
		for _, e := range iss.Errors() {
			msgs = append(msgs, fmt.Sprintf("%d:%d: %s", e.Location.Line(), e.Location.Column()+1, e.Message))
		}
		return nil, fmt.Errorf("invalid CEL at %s", strings.Join(msgs, "; "))
	}
	if out := ast.OutputType(); !out.IsExactType(cel.BoolType) && !out.IsExactType(cel.DynType) {
		return nil, fmt.Errorf("CEL expression returns %s, not bool", out)
	}
	prg, err := env.Program(ast, cel.CostLimit(readinessCostLimit))
	if err != nil {
		return nil, fmt.Errorf("CEL program: %w", err)
	}
	return prg, nil
}

type cachedProgram struct {
	once sync.Once
	prg  cel.Program
	err  error
}

var (
	programs       sync.Map // expression → *cachedProgram
	cachedPrograms atomic.Int64
)

// readinessProgram compiles each distinct expression once; safe for concurrent use.
func readinessProgram(expr string) (cel.Program, error) {
	v, ok := programs.Load(expr)
	if !ok {
		if cachedPrograms.Load() >= maxCachedPrograms {
			return compileReadiness(expr)
		}
		var loaded bool
		v, loaded = programs.LoadOrStore(expr, &cachedProgram{})
		if !loaded {
			cachedPrograms.Add(1)
		}
	}
	c := v.(*cachedProgram)
	c.once.Do(func() { c.prg, c.err = compileReadiness(expr) })
	return c.prg, c.err
}

// usesCEL says whether the kind's readiness is a CEL expression.
func (k Kind) usesCEL() bool {
	_, builtin := builtinReadiness[k.Readiness]
	return k.Readiness != "" && !builtin
}

// readyCEL evaluates the kind's readiness expression with `self` bound to
// obj. A field the expression reads but obj lacks (no status yet) means not
// ready; a result that is not a bool is an error.
func (k Kind) readyCEL(obj *unstructured.Unstructured) (bool, string, error) {
	expr := k.Readiness
	prg, err := readinessProgram(expr)
	if err != nil {
		return false, "", fmt.Errorf("readiness of %s %s/%s: %w", k.Kind, obj.GetNamespace(), obj.GetName(), err)
	}
	out, _, err := prg.Eval(map[string]any{"self": obj.Object})
	if err != nil {
		if missingField(err) {
			return false, fmt.Sprintf("readiness %q: %v", expr, err), nil
		}
		return false, "", fmt.Errorf("readiness %q of %s %s/%s: %w", expr, k.Kind, obj.GetNamespace(), obj.GetName(), err)
	}
	ready, ok := out.Value().(bool)
	if !ok {
		return false, "", fmt.Errorf("readiness %q of %s %s/%s returned %s, not bool", expr, k.Kind, obj.GetNamespace(), obj.GetName(), out.Type().TypeName())
	}
	if !ready {
		return false, fmt.Sprintf("readiness %q is false", expr), nil
	}
	return true, fmt.Sprintf("readiness %q is true", expr), nil
}

// missingField tells the errors CEL gives for a field, key or list element
// that is not there. cel-go has no error type for them, only these messages.
func missingField(err error) bool {
	msg := err.Error()
	for _, prefix := range []string{"no such key", "no such attribute", "index out of bounds"} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}
