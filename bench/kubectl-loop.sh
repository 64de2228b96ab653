#!/usr/bin/env bash
# The baseline for bench/migrate.sh: what a careful operator does without
# relabel, one Deployment after another, with kubectl and jq, on the local
# cluster relabel-bench:
#
#   get -o json ─► create NAME-temp (temp label in selector and template) ─► rollout status
#   ─► delete NAME --wait ─► create NAME (label in selector, template, metadata) ─► rollout status
#   ─► delete NAME-temp --wait
#
#   bash bench/kubectl-loop.sh
#   BENCH_LOOP_SIZE=5 bash bench/kubectl-loop.sh     # smoke run
#
# The whole loop is timed with GNU time (wall seconds; peak RSS of the
# largest single process, a kubectl); then every Deployment must carry the
# label, with no copy left.
#
# Environment:
#   BENCH_LOOP_SIZE  Deployments (2 replicas each) in the namespace (default 50)
#   BENCH_MIN_READY_SECONDS  the Deployments' minReadySeconds (default 0)
#   BENCH_OUT        also write the report to this file
#   BENCH_RESULTS    directory for machine-readable figures (bench/run.sh)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh

label=stage=production
temp_label=migration-temp

# strip prints a Deployment without what the API server sets.
strip='del(.status, .metadata.uid, .metadata.resourceVersion, .metadata.creationTimestamp,
	.metadata.managedFields, .metadata.generation, .metadata.annotations["deployment.kubernetes.io/revision"])'

# migrate_one NS NAME: the operator's steps for one Deployment.
migrate_one() {
	local ns=$1 name=$2 original
	original=$(k get deployment "$name" -n "$ns" -o json)
	jq --arg name "$name-temp" --arg temp "$temp_label" "$strip"' | .metadata.name = $name
		| .spec.selector.matchLabels[$temp] = "true" | .spec.template.metadata.labels[$temp] = "true"' <<<"$original" |
		k create -f - >/dev/null
	k rollout status deployment "$name-temp" -n "$ns" --timeout=5m >/dev/null
	k delete deployment "$name" -n "$ns" --wait >/dev/null
	jq --arg key "${label%%=*}" --arg value "${label#*=}" "$strip"' | .metadata.labels[$key] = $value
		| .spec.selector.matchLabels[$key] = $value | .spec.template.metadata.labels[$key] = $value' <<<"$original" |
		k create -f - >/dev/null
	k rollout status deployment "$name" -n "$ns" --timeout=5m >/dev/null
	k delete deployment "$name-temp" -n "$ns" --wait >/dev/null
}

# loop NS migrates the namespace's Deployments one after another.
loop() {
	local ns=$1 name
	for name in $(k get deployments -n "$ns" -o jsonpath='{.items[*].metadata.name}'); do
		migrate_one "$ns" "$name"
	done
}

# Under GNU time, the script runs itself: `kubectl-loop.sh loop KUBECONFIG NS`.
if [[ ${1:-} == loop ]]; then
	kubeconfig=$2 kubectl=$(bash internal/cluster/cluster.sh bin)/kubectl
	loop "$3"
	exit
fi

n=${BENCH_LOOP_SIZE:-50}
[[ $n =~ ^[1-9][0-9]*$ ]] || die "BENCH_LOOP_SIZE must be a positive integer, not '$n'"
need_tools
work=$(mktemp -d "${TMPDIR:-/tmp}/relabel-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
cluster_up

ns=kubectl-loop-$n-$(random_suffix)
create_namespace "$ns" "$n"
wait_controllers_idle 1800
log "$ns: migrating $n Deployments with kubectl, one after another"
measure "$work/times" bash "${BASH_SOURCE[0]}" loop "$kubeconfig" "$ns"
read -r wall rss _ <"$work/times"
verify_labelled "$ns" "$n" "$label"
log "$ns: $n migrated in $wall s"
result "loop.$n.wall" "$wall"
result "loop.$n.rss" "$rss"
delete_namespace "$ns"

report() {
	echo "kubectl loop benchmark, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "$n Deployments (2 replicas each), one after another: $wall s wall ($(ratio "$wall" "$n") s per Deployment), peak RSS $(mib "$rss") MiB"
}
if [[ -n ${BENCH_OUT:-} ]]; then
	report | tee "$BENCH_OUT"
else
	report
fi
