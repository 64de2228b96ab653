package rules

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Verdict is what a readiness rule says of an object.
type Verdict struct {
	// Ready: the object's controller has observed its current generation and
	// reports it fully rolled out.
	Ready bool
	// Failed: the object cannot progress without help (a quota, a deadline
	// exceeded, a degraded controller); waiting longer will not help.
	Failed bool
	// Reason says what is still missing, or what went wrong.
	Reason string
}

func notReady(format string, args ...any) Verdict {
	return Verdict{Reason: fmt.Sprintf(format, args...)}
}

func failed(format string, args ...any) Verdict {
	return Verdict{Failed: true, Reason: fmt.Sprintf(format, args...)}
}

func ready(format string, args ...any) Verdict {
	return Verdict{Ready: true, Reason: fmt.Sprintf(format, args...)}
}

// Readiness rules built into relabel, by the name a Kind's Readiness gives.
// Each is strict in the same way: no status, or a status that predates the
// object's generation, is never ready.
const (
	ReadinessDeployment        = "deployment"
	ReadinessStatefulSet       = "statefulset"
	ReadinessDaemonSet         = "daemonset"
	ReadinessArgoRollout       = "argo-rollout"
	ReadinessKruiseCloneSet    = "kruise-cloneset"
	ReadinessKruiseStatefulSet = "kruise-statefulset"
	ReadinessKruiseDaemonSet   = "kruise-daemonset"
)

var builtinReadiness = map[string]func(*unstructured.Unstructured) Verdict{
	ReadinessKstatus:           generic,
	ReadinessDeployment:        deploymentHealth,
	ReadinessStatefulSet:       statefulSetHealth,
	ReadinessDaemonSet:         daemonSetHealth,
	ReadinessArgoRollout:       argoRolloutHealth,
	ReadinessKruiseCloneSet:    kruiseCloneSetHealth,
	ReadinessKruiseStatefulSet: kruiseStatefulSetHealth,
	ReadinessKruiseDaemonSet:   kruiseDaemonSetHealth,
}

// ReadinessNames lists the built-in readiness rules a rules file may name.
func ReadinessNames() []string {
	return []string{ReadinessKstatus, ReadinessDeployment, ReadinessStatefulSet, ReadinessDaemonSet,
		ReadinessArgoRollout, ReadinessKruiseCloneSet, ReadinessKruiseStatefulSet, ReadinessKruiseDaemonSet}
}

// CanJudge says whether relabel can tell when objects of the kind are ready.
// A kind it cannot judge is never migrated: a copy would be trusted blindly.
func (k Kind) CanJudge() bool { return k.Readiness != "" }

// ReadinessHelp tells the user how to give a kind a readiness rule.
func ReadinessHelp(k Kind) string {
	return fmt.Sprintf(`relabel cannot tell when a %s is ready (its schema has no status); give it a readiness rule in a rules file:
  kinds:
  - group: %s
    kind: %s
    selectorPath: spec.selector
    templateLabelsPath: spec.template.metadata.labels
    readiness: "self.status.observedGeneration >= self.metadata.generation && self.status.readyReplicas == self.spec.replicas"
then check it with: relabel ready --rules FILE -f OBJECT.yaml`, k.Kind, k.Group, k.Kind)
}

// Ready judges whether obj has rolled out and serves, by the kind's rule. The
// message says what is still missing when it is not; it starts with
// "failed: " when the object cannot progress.
func (k Kind) Ready(obj *unstructured.Unstructured) (bool, string, error) {
	v, err := k.Judge(obj)
	if err != nil {
		return false, "", err
	}
	if v.Failed {
		return false, "failed: " + v.Reason, nil
	}
	return v.Ready, v.Reason, nil
}

// Judge applies the kind's readiness rule to obj. Whatever the rule, an
// object being deleted, or one whose status.observedGeneration is behind its
// generation, is not ready.
func (k Kind) Judge(obj *unstructured.Unstructured) (Verdict, error) {
	if obj.GetDeletionTimestamp() != nil {
		return notReady("being deleted (deletion in progress)"), nil
	}
	observed, hasObserved := observedGeneration(obj)
	if hasObserved && observed < obj.GetGeneration() {
		return notReady("its controller has not observed generation %d yet (observed %d)", obj.GetGeneration(), observed), nil
	}
	if k.Readiness == "" {
		return Verdict{}, fmt.Errorf("%s %s/%s: %s", k.Kind, obj.GetNamespace(), obj.GetName(), ReadinessHelp(k))
	}
	if check, ok := builtinReadiness[k.Readiness]; ok {
		if err := checkShape(obj); err != nil {
			return Verdict{}, fmt.Errorf("computing readiness of %s %s/%s: %w", k.Kind, obj.GetNamespace(), obj.GetName(), err)
		}
		return check(obj), nil
	}
	ok, msg, err := k.readyCEL(obj)
	return Verdict{Ready: ok, Reason: msg}, err
}

// checkShape refuses a status whose conditions are not a list of objects:
// rules that read them would otherwise see "no conditions".
func checkShape(obj *unstructured.Unstructured) error {
	raw, found, _ := unstructured.NestedFieldNoCopy(obj.Object, "status", "conditions")
	if !found || raw == nil {
		return nil
	}
	list, ok := raw.([]any)
	if !ok {
		return fmt.Errorf(".status.conditions is %T, not a list", raw)
	}
	for i, c := range list {
		if _, ok := c.(map[string]any); !ok {
			return fmt.Errorf(".status.conditions[%d] is %T, not an object", i, c)
		}
	}
	return nil
}

// number reads an integer that may be written as a number or as a string
// holding one (Argo Rollouts writes observedGeneration as a string).
func number(obj map[string]any, fields ...string) (int64, bool) {
	raw, found, _ := unstructured.NestedFieldNoCopy(obj, fields...)
	if !found {
		return 0, false
	}
	switch v := raw.(type) {
	case int64:
		return v, true
	case int:
		return int64(v), true
	case int32:
		return int64(v), true
	case float64:
		return int64(v), v == float64(int64(v))
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil
	}
	return 0, false
}

func observedGeneration(obj *unstructured.Unstructured) (int64, bool) {
	return number(obj.Object, "status", "observedGeneration")
}

// observed says whether the controller reported on this generation: a
// status.observedGeneration, or one on a Ready/Available condition.
func observed(obj *unstructured.Unstructured) (bool, string) {
	gen := obj.GetGeneration()
	if !hasStatus(obj) {
		return false, "no status yet: its controller has not reported on it"
	}
	if o, ok := observedGeneration(obj); ok {
		return o >= gen, fmt.Sprintf("its controller has not observed generation %d yet (observed %d)", gen, o)
	}
	for _, typ := range []string{"Ready", "Available"} {
		if c, ok := condition(obj, typ); ok {
			if o, ok := number(c, "observedGeneration"); ok && o >= gen {
				return true, ""
			}
		}
	}
	if raw, found, _ := unstructured.NestedFieldNoCopy(obj.Object, "status", "observedGeneration"); found {
		return false, fmt.Sprintf("status.observedGeneration %v is not a generation number: relabel cannot tell whether its controller has seen generation %d", raw, gen)
	}
	return false, "its status has no observedGeneration: relabel cannot tell whether its controller has seen this generation"
}

func hasStatus(obj *unstructured.Unstructured) bool {
	st, found, _ := unstructured.NestedMap(obj.Object, "status")
	return found && len(st) > 0
}

func condition(obj *unstructured.Unstructured, typ string) (map[string]any, bool) {
	list, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range list {
		m, ok := c.(map[string]any)
		if ok && m["type"] == typ {
			return m, true
		}
	}
	return nil, false
}

func conditionIs(obj *unstructured.Unstructured, typ, statusValue string) (map[string]any, bool) {
	c, ok := condition(obj, typ)
	return c, ok && c["status"] == statusValue
}

func conditionText(c map[string]any) string {
	reason, _ := c["reason"].(string)
	msg, _ := c["message"].(string)
	switch {
	case reason != "" && msg != "":
		return reason + ": " + msg
	case msg != "":
		return msg
	}
	return reason
}

func str(obj *unstructured.Unstructured, fields ...string) string {
	s, _, _ := unstructured.NestedString(obj.Object, fields...)
	return s
}

func boolean(obj *unstructured.Unstructured, fields ...string) bool {
	b, _, _ := unstructured.NestedBool(obj.Object, fields...)
	return b
}

// desired is spec.replicas, 1 when unset as the API servers default it.
func desired(obj *unstructured.Unstructured) int64 {
	if n, ok := number(obj.Object, "spec", "replicas"); ok {
		return n
	}
	return 1
}

func count(obj *unstructured.Unstructured, field string) int64 {
	n, _ := number(obj.Object, "status", field)
	return n
}

// healthyPhases are status.phase values that mean "serving" across the
// workload controllers relabel has met.
var healthyPhases = map[string]bool{"Healthy": true, "Running": true, "Ready": true, "Available": true}

var failedPhases = map[string]bool{"Degraded": true, "Failed": true}

// generic is the rule for kinds relabel has no specific knowledge of: the
// controller observed this generation, kstatus sees nothing in progress, and
// at least one positive signal (a True Ready/Available condition, ready
// replicas = desired, a healthy phase) with none against it.
func generic(obj *unstructured.Unstructured) Verdict {
	if ok, why := observed(obj); !ok {
		return notReady("%s", why)
	}
	res, err := status.Compute(withNumericObservedGeneration(obj))
	if err != nil {
		return notReady("kstatus: %v", err)
	}
	switch res.Status {
	case status.FailedStatus:
		return failed("%s", res.Message)
	case status.CurrentStatus:
	default:
		return notReady("%s", res.Message)
	}
	if phase := str(obj, "status", "phase"); failedPhases[phase] {
		return failed("phase %s: %s", phase, str(obj, "status", "message"))
	}

	var signals []string
	for _, typ := range []string{"Ready", "Available"} {
		if c, ok := condition(obj, typ); ok {
			if c["status"] != "True" {
				return notReady("condition %s is %v: %s", typ, c["status"], conditionText(c))
			}
			signals = append(signals, typ+"=True")
		}
	}
	want := desired(obj)
	for _, field := range []string{"readyReplicas", "availableReplicas", "updatedReplicas"} {
		if n, ok := number(obj.Object, "status", field); ok {
			if n < want {
				return notReady("%s: %d/%d", field, n, want)
			}
			signals = append(signals, fmt.Sprintf("%s %d/%d", field, n, want))
		}
	}
	if phase := str(obj, "status", "phase"); phase != "" {
		if !healthyPhases[phase] {
			return notReady("phase %s", phase)
		}
		signals = append(signals, "phase "+phase)
	}
	if len(signals) == 0 {
		return notReady("no sign that it serves: no Ready or Available condition, no ready replica count, no healthy phase")
	}
	return ready("%s", strings.Join(signals, ", "))
}

// withNumericObservedGeneration gives kstatus, which insists on an integer,
// the number a string observedGeneration holds.
func withNumericObservedGeneration(obj *unstructured.Unstructured) *unstructured.Unstructured {
	raw, found, _ := unstructured.NestedFieldNoCopy(obj.Object, "status", "observedGeneration")
	if _, isString := raw.(string); !found || !isString {
		return obj
	}
	out := obj.DeepCopy()
	if n, ok := observedGeneration(obj); ok {
		_ = unstructured.SetNestedField(out.Object, n, "status", "observedGeneration")
	} else {
		unstructured.RemoveNestedField(out.Object, "status", "observedGeneration")
	}
	return out
}

// deploymentHealth follows the deployment controller's own status: the
// rollout is complete when every desired replica is updated and available
// and no old one is left.
func deploymentHealth(obj *unstructured.Unstructured) Verdict {
	if ok, why := observed(obj); !ok {
		return notReady("%s", why)
	}
	if c, ok := conditionIs(obj, "ReplicaFailure", "True"); ok {
		return failed("its pods cannot be created: %s", conditionText(c))
	}
	if c, ok := condition(obj, "Progressing"); ok && c["reason"] == "ProgressDeadlineExceeded" {
		return failed("progress deadline exceeded: %s", conditionText(c))
	}
	if boolean(obj, "spec", "paused") {
		return notReady("paused: its controller does not roll it out")
	}
	want := desired(obj)
	if n := count(obj, "updatedReplicas"); n < want {
		return notReady("Updated: %d/%d", n, want)
	}
	if n := count(obj, "replicas"); n > want {
		return notReady("%d old replicas pending termination", n-want)
	}
	if n := count(obj, "readyReplicas"); n < want {
		return notReady("Ready: %d/%d", n, want)
	}
	if n := count(obj, "availableReplicas"); n < want {
		return notReady("Available: %d/%d", n, want)
	}
	return ready("Deployment is available: %d/%d replicas updated and available", want, want)
}

// statefulSetHealth: every replica ready (and available), the update
// revision rolled out; OnDelete sets are judged by ready counts alone.
func statefulSetHealth(obj *unstructured.Unstructured) Verdict {
	if ok, why := observed(obj); !ok {
		return notReady("%s", why)
	}
	want := desired(obj)
	if n := count(obj, "readyReplicas"); n < want {
		return notReady("Ready: %d/%d", n, want)
	}
	if n, ok := number(obj.Object, "status", "availableReplicas"); ok && n < want {
		return notReady("Available: %d/%d", n, want)
	}
	if n := count(obj, "replicas"); n > want {
		return notReady("%d replicas pending termination", n-want)
	}
	if str(obj, "spec", "updateStrategy", "type") == "OnDelete" {
		return ready("OnDelete: %d/%d replicas ready", want, want)
	}
	if partition, _ := number(obj.Object, "spec", "updateStrategy", "rollingUpdate", "partition"); partition > 0 {
		if n := count(obj, "updatedReplicas"); n < want-partition {
			return notReady("partitioned roll out: Updated %d/%d", n, want-partition)
		}
		return ready("partitioned roll out complete: %d/%d replicas ready", want, want)
	}
	// A recreated StatefulSet starts with currentRevision = updateRevision
	// while its adopted pods still run the old revision: count them.
	if n := count(obj, "updatedReplicas"); n < want {
		return notReady("Updated: %d/%d", n, want)
	}
	if rev := str(obj, "status", "updateRevision"); rev != "" && rev != str(obj, "status", "currentRevision") {
		return notReady("revision %s is being rolled out", rev)
	}
	return ready("StatefulSet is ready: %d/%d replicas", want, want)
}

// daemonSetHealth: a ready, available and updated pod on every node that
// should run one; OnDelete sets are judged by ready counts alone.
func daemonSetHealth(obj *unstructured.Unstructured) Verdict {
	if ok, why := observed(obj); !ok {
		return notReady("%s", why)
	}
	want, ok := number(obj.Object, "status", "desiredNumberScheduled")
	if !ok {
		return notReady("its controller has not counted the nodes yet (no desiredNumberScheduled)")
	}
	if n := count(obj, "numberReady"); n < want {
		return notReady("Ready: %d/%d", n, want)
	}
	if n := count(obj, "numberAvailable"); n < want {
		return notReady("Available: %d/%d", n, want)
	}
	if str(obj, "spec", "updateStrategy", "type") != "OnDelete" {
		if n := count(obj, "updatedNumberScheduled"); n < want {
			return notReady("Updated: %d/%d", n, want)
		}
	}
	return ready("DaemonSet is ready on %d/%d nodes", want, want)
}

// argoRolloutHealth follows Argo Rollouts' own verdict, status.phase, for the
// generation it observed, and checks the counts behind it.
func argoRolloutHealth(obj *unstructured.Unstructured) Verdict {
	if ok, why := observed(obj); !ok {
		return notReady("%s", why)
	}
	if c, ok := conditionIs(obj, "InvalidSpec", "True"); ok {
		return failed("invalid spec: %s", conditionText(c))
	}
	if c, ok := condition(obj, "Progressing"); ok && (c["reason"] == "RolloutAborted" || c["reason"] == "ProgressDeadlineExceeded") {
		return failed("%s", conditionText(c))
	}
	if c, ok := conditionIs(obj, "ReplicaFailure", "True"); ok {
		return failed("its pods cannot be created: %s", conditionText(c))
	}
	// A Rollout that takes its template from another workload has observed
	// that workload's generation too.
	if gen := obj.GetAnnotations()["rollout.argoproj.io/workload-generation"]; gen != "" {
		if w, ok := number(obj.Object, "status", "workloadObservedGeneration"); !ok || strconv.FormatInt(w, 10) != gen {
			return notReady("Argo Rollouts has not observed the referenced workload's generation %s yet", gen)
		}
	}
	phase, msg := str(obj, "status", "phase"), str(obj, "status", "message")
	switch phase {
	case "Healthy":
	case "Degraded":
		return failed("Rollout is Degraded: %s", msg)
	case "":
		return notReady("Rollout has no phase yet")
	default:
		return notReady("Rollout is %s: %s", phase, msg)
	}
	if boolean(obj, "spec", "paused") {
		return notReady("Rollout is paused")
	}
	want := desired(obj)
	if n := count(obj, "updatedReplicas"); n < want {
		return notReady("Updated: %d/%d", n, want)
	}
	if n := count(obj, "availableReplicas"); n < want {
		return notReady("Available: %d/%d", n, want)
	}
	return ready("Rollout is Healthy: %d/%d replicas available", want, want)
}

// kruiseCloneSetHealth: OpenKruise's CloneSet is ready when its controller
// observed this generation and every replica is updated and available.
func kruiseCloneSetHealth(obj *unstructured.Unstructured) Verdict {
	return kruiseReplicas(obj, "CloneSet", []string{"spec", "updateStrategy"})
}

// kruiseStatefulSetHealth: the same for OpenKruise's Advanced StatefulSet.
func kruiseStatefulSetHealth(obj *unstructured.Unstructured) Verdict {
	return kruiseReplicas(obj, "StatefulSet", []string{"spec", "updateStrategy", "rollingUpdate"})
}

func kruiseReplicas(obj *unstructured.Unstructured, kind string, strategy []string) Verdict {
	if ok, why := observed(obj); !ok {
		return notReady("%s", why)
	}
	if boolean(obj, append(strategy, "paused")...) {
		return notReady("%s updates are paused", kind)
	}
	want := desired(obj)
	readyCount, ok := number(obj.Object, "status", "readyReplicas")
	if !ok {
		readyCount = count(obj, "updatedReadyReplicas")
	}
	if readyCount < want {
		return notReady("Ready: %d/%d", readyCount, want)
	}
	if n, ok := number(obj.Object, "status", "availableReplicas"); ok && n < want {
		return notReady("Available: %d/%d", n, want)
	}
	if n := count(obj, "replicas"); n > want {
		return notReady("%d replicas pending deletion", n-want)
	}
	partition, _ := number(obj.Object, append(strategy, "partition")...)
	if partition > 0 {
		if n := count(obj, "updatedReplicas"); n < want-partition {
			return notReady("partitioned update: Updated %d/%d", n, want-partition)
		}
		return ready("%s partitioned update complete: %d/%d ready", kind, want, want)
	}
	updated, ok := number(obj.Object, "status", "updatedAvailableReplicas")
	if !ok {
		updated = count(obj, "updatedReadyReplicas")
	}
	if updated < want {
		return notReady("Updated and available: %d/%d", updated, want)
	}
	return ready("%s is ready: %d/%d replicas updated and available", kind, want, want)
}

// kruiseDaemonSetHealth: OpenKruise's Advanced DaemonSet, judged as a DaemonSet.
func kruiseDaemonSetHealth(obj *unstructured.Unstructured) Verdict {
	if boolean(obj, "spec", "updateStrategy", "rollingUpdate", "paused") {
		return notReady("DaemonSet updates are paused")
	}
	if partition, _ := number(obj.Object, "spec", "updateStrategy", "rollingUpdate", "partition"); partition > 0 {
		if ok, why := observed(obj); !ok {
			return notReady("%s", why)
		}
		want := count(obj, "desiredNumberScheduled")
		if n := count(obj, "numberAvailable"); n < want {
			return notReady("Available: %d/%d", n, want)
		}
		if n := count(obj, "updatedNumberScheduled"); n < want-partition {
			return notReady("partitioned update: Updated %d/%d", n, want-partition)
		}
		return ready("DaemonSet partitioned update complete on %d nodes", want)
	}
	return daemonSetHealth(obj)
}
