package rules

import (
	"fmt"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Ready judges whether obj has rolled out and serves, by the kind's rule:
// kstatus, or the kind's CEL expression when Readiness is one. The message
// says what is still missing when it is not.
func (k Kind) Ready(obj *unstructured.Unstructured) (bool, string, error) {
	if k.usesCEL() {
		return k.readyCEL(obj)
	}
	res, err := status.Compute(obj)
	if err != nil {
		return false, "", fmt.Errorf("computing readiness of %s %s/%s: %w", k.Kind, obj.GetNamespace(), obj.GetName(), err)
	}
	if res.Status == status.FailedStatus {
		return false, "failed: " + res.Message, nil
	}
	return res.Status == status.CurrentStatus, res.Message, nil
}
