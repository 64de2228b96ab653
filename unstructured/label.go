// Package unstructured holds pure functions over workload objects: where the
// label is, adding it, building the temporary copy and the recreated object.
// Elsewhere it is imported as "workload", to keep apart from apimachinery's
// package of the same name.
package unstructured

import "relabel.dev/relabel/rules"

// Label is the key and value relabel adds. It is defined in package rules,
// which builds labels from a rules file and cannot import this package.
type Label = rules.Label

// ErrInvalidLabel marks a label the user gave that cannot be used.
var ErrInvalidLabel = rules.ErrInvalidLabel

// ParseLabel reads KEY=VALUE, or KEY alone when valueOptional is set.
func ParseLabel(s string, valueOptional bool) (Label, error) {
	return rules.ParseLabel(s, valueOptional)
}
