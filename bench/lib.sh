# shellcheck shell=bash
# Helpers shared by the benchmark scripts; sourced, never run. The including
# script sets `set -euo pipefail` and runs from the repository's root.
#
# A script that records a figure calls `result KEY VALUE`; with BENCH_RESULTS
# set (bench/run.sh sets it), the figure goes to $BENCH_RESULTS/results.tsv,
# from which bench/run.sh prints the table.

# BENCH_CLUSTER: another cluster for a data set apart (the 50,000-object audit).
cluster=${BENCH_CLUSTER:-relabel-bench}
# Each benchmark Deployment's replicas.
replicas=2

log() { echo "bench: $*" >&2; }
die() {
	log "$*"
	exit 1
}

# need_tools installs GNU time and jq when missing (Debian packages).
need_tools() {
	local -a missing=() sudo=()
	[[ -x /usr/bin/time ]] || missing+=(time)
	command -v jq >/dev/null || missing+=(jq)
	((${#missing[@]} == 0)) && return
	log "installing ${missing[*]}"
	((EUID == 0)) || sudo=(sudo)
	"${sudo[@]}" apt-get update -qq
	"${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
}

# cluster_up starts (or reuses) the benchmark cluster and sets kubeconfig,
# bin and kubectl.
cluster_up() {
	log "starting (or reusing) cluster $cluster"
	kubeconfig=$(bash internal/cluster/cluster.sh up "$cluster")
	bin=$(bash internal/cluster/cluster.sh bin)
	kubectl=$bin/kubectl
}

k() { "$kubectl" --kubeconfig "$kubeconfig" "$@"; }

# build_relabel DIR builds relabel into DIR and sets relabel to its path.
build_relabel() {
	log "building relabel"
	go build -trimpath -ldflags '-s -w' -o "$1/relabel" .
	# shellcheck disable=SC2034 # used by the including script
	relabel=$1/relabel
}

# measure TIMES CMD... runs CMD under GNU time and appends "wall_seconds
# peak_rss_kib cpu_seconds" to the file TIMES; CMD's stdout and stderr go to
# TIMES.out and TIMES.err.
measure() {
	local times=$1
	shift
	if ! /usr/bin/time -f '%e %M %U %S' -o "$times.time" "$@" >"$times.out" 2>"$times.err"; then
		tail -n 20 "$times.err" >&2
		cat "$times.time" >&2
		die "failed: $*"
	fi
	tail -n1 "$times.time" | awk '{ printf "%s %s %.2f\n", $1, $2, $3 + $4 }' >>"$times"
}

# wait_controllers_idle SECONDS waits until kube-controller-manager's
# Deployment and ReplicaSet queues are empty, so that a timed run does not
# pay for a backlog left by earlier work.
wait_controllers_idle() {
	local deadline=$((SECONDS + $1)) depth
	while :; do
		depth=$(bash internal/cluster/cluster.sh controller-metrics "$cluster" |
			awk '/^workqueue_depth\{name="(deployment|replicaset)"\}/ { d += $2 } END { print d + 0 }')
		((depth == 0)) && return
		((SECONDS < deadline)) || die "kube-controller-manager still has $depth Deployments and ReplicaSets queued after $1 s"
		log "waiting for kube-controller-manager: $depth Deployments and ReplicaSets queued"
		sleep 10
	done
}

# now prints the time as the audit log's stageTimestamp does, so that the two
# compare as strings.
now() { date -u +%Y-%m-%dT%H:%M:%S.%6NZ; }

result() {
	[[ -n ${BENCH_RESULTS:-} ]] || return 0
	printf '%s\t%s\n' "$1" "$2" >>"$BENCH_RESULTS/results.tsv"
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

# random_suffix prints 6 hex digits for a fresh namespace name.
random_suffix() { od -An -N3 -tx1 /dev/urandom | tr -d ' \n'; }

# deployments NS N prints N Deployments of $replicas replicas each as a List. With
# BENCH_MIN_READY_SECONDS, a pod counts as available only after being ready
# that long: kwok pods are ready at once, real ones take a while.
deployments() {
	local ns=$1 n=$2
	jq -n --arg ns "$ns" --argjson n "$n" --argjson replicas "$replicas" --argjson minready "${BENCH_MIN_READY_SECONDS:-0}" '{
		apiVersion: "v1", kind: "List",
		items: [range($n) | "app-\(.)" as $name | {
			apiVersion: "apps/v1", kind: "Deployment",
			metadata: {name: $name, namespace: $ns, labels: {app: $name, bench: "migrate"}},
			spec: {
				replicas: $replicas,
				minReadySeconds: $minready,
				selector: {matchLabels: {app: $name}},
				template: {
					metadata: {labels: {app: $name, bench: "migrate"}},
					spec: {containers: [{name: "app", image: "example.com/app:1",
						resources: {requests: {cpu: "10m", memory: "16Mi"}}}]}
				}
			}
		}]
	}'
}

# rolled_out NS prints how many of the namespace's Deployments are rolled
# out, and how many there are.
rolled_out() {
	k get deployments -n "$1" -o json | jq -r '(.items | length) as $total | [.items[] | select(
		(.status.observedGeneration // 0) >= .metadata.generation and
		(.status.updatedReplicas // 0) == .spec.replicas and
		(.status.readyReplicas // 0) == .spec.replicas and
		(.status.availableReplicas // 0) == .spec.replicas and
		(.status.replicas // 0) == .spec.replicas)] | "\(length) \($total)"'
}

# wait_rolled_out NS N SECONDS waits until the namespace's N Deployments are
# rolled out, at most SECONDS.
wait_rolled_out() {
	local ns=$1 n=$2 deadline=$((SECONDS + $3)) counts ready total
	while :; do
		counts=$(rolled_out "$ns") || die "$ns: reading its Deployments failed"
		read -r ready total <<<"$counts"
		((ready == n && total == n)) && return
		((SECONDS < deadline)) || die "$ns: only $ready of $n Deployments rolled out after $3 s"
		sleep 2
	done
}

# create_namespace NS N creates the namespace with N Deployments and waits
# until they are rolled out.
create_namespace() {
	local ns=$1 n=$2
	log "$ns: creating $n Deployments"
	k create namespace "$ns" >/dev/null
	k label namespace "$ns" relabel.dev/bench=migrate >/dev/null
	deployments "$ns" "$n" | k create -f - >/dev/null
	wait_rolled_out "$ns" "$n" $((120 + 3 * n))
}

# verify_labelled NS N LABEL fails loudly unless the namespace holds exactly
# its N Deployments, each with LABEL (KEY=VALUE) in its selector, template and
# metadata, rolled out, and no copy.
verify_labelled() {
	local ns=$1 n=$2 key=${3%%=*} value=${3#*=} report
	report=$(k get deployments -n "$ns" -o json | jq -r --arg k "$key" --arg v "$value" --argjson n "$n" '
		[.items[] | select(.metadata.name | endswith("-temp"))] as $copies |
		[.items[] | select(.spec.selector.matchLabels[$k] != $v or .spec.template.metadata.labels[$k] != $v or .metadata.labels[$k] != $v)] as $unlabelled |
		if (.items | length) != $n or ($copies | length) > 0 or ($unlabelled | length) > 0 then
			"\(.items | length) Deployments (want \($n)); copies left: \([$copies[].metadata.name]); without the label: \([$unlabelled[].metadata.name])"
		else empty end')
	[[ -z $report ]] || die "$ns: $report"
	wait_rolled_out "$ns" "$n" 300
}

delete_namespace() {
	log "$1: deleting"
	k delete namespace "$1" --wait --timeout=10m >/dev/null
}

# delete_namespaces deletes the namespaces runs of the benchmark left behind.
delete_namespaces() {
	k delete namespace -l relabel.dev/bench=migrate --wait --timeout=10m >/dev/null
}
