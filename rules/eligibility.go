package rules

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Guard is a fact about an object, read from one field, that makes a
// strategy unsafe for it. Guards are checked in the plan, before any write.
type Guard struct {
	// Path is the field read; empty, the guard holds for every object of the kind.
	Path Path `json:"path,omitempty"`
	// Value, when set, is what the field must equal (compared as text);
	// unset, the guard holds when the field is set and not empty, zero or false.
	Value  string      `json:"value,omitempty"`
	Effect GuardEffect `json:"effect"`
	// Reason is shown in the plan line.
	Reason string `json:"reason"`
}

// GuardEffect is what a guard that holds does.
type GuardEffect string

const (
	// NoCopy refuses the temp-copy strategy; auto picks adopt where the kind has it.
	NoCopy GuardEffect = "no-copy"
	// Skip leaves the object alone, whatever the strategy.
	Skip GuardEffect = "skip"
)

// Holds says whether the guard applies to obj.
func (g Guard) Holds(obj *unstructured.Unstructured) bool {
	if g.Path == "" {
		return true
	}
	raw, found, err := unstructured.NestedFieldNoCopy(obj.Object, g.Path.Fields()...)
	if !found || err != nil || raw == nil {
		return false
	}
	if g.Value != "" {
		return fmt.Sprint(raw) == g.Value
	}
	switch v := raw.(type) {
	case bool:
		return v
	case string:
		return v != ""
	case []any:
		return len(v) > 0
	case map[string]any:
		return len(v) > 0
	case int64:
		return v != 0
	case float64:
		return v != 0
	}
	return true
}

// Eligibility is what the kind's guards say of one object.
type Eligibility struct {
	// SkipReason, when set, leaves the object alone.
	SkipReason string
	// NoCopyReasons, when any, refuse a temporary copy.
	NoCopyReasons []string
}

// Eligible applies the kind's guards to obj.
func (k Kind) Eligible(obj *unstructured.Unstructured) Eligibility {
	var e Eligibility
	for _, g := range k.Guards {
		if !g.Holds(obj) {
			continue
		}
		switch g.Effect {
		case Skip:
			if e.SkipReason == "" {
				e.SkipReason = g.Reason
			}
		case NoCopy:
			e.NoCopyReasons = append(e.NoCopyReasons, g.Reason)
		}
	}
	return e
}

func (g Guard) validate() error {
	if g.Effect != NoCopy && g.Effect != Skip {
		return fmt.Errorf("effect %q is not %s or %s", g.Effect, NoCopy, Skip)
	}
	if g.Reason == "" {
		return fmt.Errorf("reason is empty")
	}
	return nil
}
