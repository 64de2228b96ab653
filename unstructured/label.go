// Package unstructured holds pure functions over workload objects: where the
// label is, adding it, building the temporary copy and the recreated object.
// Elsewhere it is imported as "workload", to keep apart from apimachinery's
// package of the same name.
package unstructured

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Label is the key and value relabel adds.
type Label struct {
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
	// AnyValue is set when only the key was given (audit's KEY form).
	AnyValue bool `json:"-"`
}

func (l Label) String() string {
	if l.AnyValue {
		return l.Key
	}
	return l.Key + "=" + l.Value
}

// ErrInvalidLabel marks a label the user gave that cannot be used.
var ErrInvalidLabel = errors.New("invalid label")

// Domains that Kubernetes reserves for its own components; the recommended
// app.kubernetes.io labels are meant for users and stay allowed.
var reservedDomains = []string{"kubernetes.io", "k8s.io"}

func reservedPrefix(key string) (string, bool) {
	prefix, _, hasPrefix := strings.Cut(key, "/")
	if !hasPrefix || prefix == "app.kubernetes.io" {
		return "", false
	}
	for _, d := range reservedDomains {
		if prefix == d || strings.HasSuffix(prefix, "."+d) {
			return prefix, true
		}
	}
	return "", false
}

// ParseLabel reads KEY=VALUE, or KEY alone when valueOptional is set.
func ParseLabel(s string, valueOptional bool) (Label, error) {
	key, value, hasValue := strings.Cut(s, "=")
	if !hasValue && !valueOptional {
		return Label{}, fmt.Errorf("%w %q: want KEY=VALUE", ErrInvalidLabel, s)
	}
	if errs := validation.IsQualifiedName(key); len(errs) > 0 {
		return Label{}, fmt.Errorf("%w key %q: %s", ErrInvalidLabel, key, strings.Join(errs, "; "))
	}
	if prefix, reserved := reservedPrefix(key); reserved {
		return Label{}, fmt.Errorf("%w key %q: the prefix %s/ is reserved for Kubernetes components", ErrInvalidLabel, key, prefix)
	}
	if key == TempLabelKey {
		return Label{}, fmt.Errorf("%w key %q: relabel uses it to mark its temporary copies", ErrInvalidLabel, key)
	}
	if !hasValue {
		return Label{Key: key, AnyValue: true}, nil
	}
	if errs := validation.IsValidLabelValue(value); len(errs) > 0 {
		return Label{}, fmt.Errorf("%w value %q for key %q: %s", ErrInvalidLabel, value, key, strings.Join(errs, "; "))
	}
	return Label{Key: key, Value: value}, nil
}
