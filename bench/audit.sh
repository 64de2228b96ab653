#!/usr/bin/env bash
# The audit benchmark: `relabel audit` against its floors, bench/wirefloor
# paging the same four lists whole and discarding the bytes (as JSON, and
# in protobuf as relabel asks for built-in kinds), and
# bench/wirefloor sending the requests relabel sends (a large kind listed a
# namespace at a time, four lists at once), and against `kubectl get` of the
# same kinds, on a dedicated local cluster (relabel-bench) holding
# BENCH_NAMESPACES namespaces, each with BENCH_DEPLOYMENTS_PER_NS Deployments
# (scaled to zero) and BENCH_ROLLOUTS_PER_NS Rollout custom resources.
#
#   bash bench/audit.sh
#   BENCH_NAMESPACES=2 BENCH_DEPLOYMENTS_PER_NS=10 BENCH_ROLLOUTS_PER_NS=2 bash bench/audit.sh   # smoke run
#
# Environment:
#   BENCH_NAMESPACES          namespaces bench-000, bench-001, ... (default 100)
#   BENCH_DEPLOYMENTS_PER_NS  Deployments per namespace (default 100)
#   BENCH_ROLLOUTS_PER_NS     Rollouts per namespace (default 10)
#   BENCH_RUNS                timed runs of each command, alternating (default 5)
#   BENCH_WORKERS             concurrent create requests while loading (default 16)
#   BENCH_SETTLE_SECONDS      pause after a fresh load, once the controllers caught up (default 20)
#   BENCH_OUT                 also write the report to this file
#
# The 50,000-object point: BENCH_DEPLOYMENTS_PER_NS=500 BENCH_ROLLOUTS_PER_NS=50
# (BENCH_CLUSTER=relabel-bench-50k keeps it apart from the other benchmarks'
# cluster).
#
# The data set is loaded once; the ConfigMap default/relabel-bench records
# what was loaded, and a later run with the same dimensions reuses it. Loading
# never deletes: after a larger load, objects beyond smaller dimensions stay,
# and the report states the object counts actually measured. The cluster
# keeps running: `bash internal/cluster/cluster.sh down relabel-bench` removes it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh

namespaces=${BENCH_NAMESPACES:-100}
deployments=${BENCH_DEPLOYMENTS_PER_NS:-100}
rollouts=${BENCH_ROLLOUTS_PER_NS:-10}
runs=${BENCH_RUNS:-5}
workers=${BENCH_WORKERS:-16}
settle=${BENCH_SETTLE_SECONDS:-20}

for v in namespaces deployments rollouts runs workers settle; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer, not '${!v}'"
done
((runs > 0)) || die "BENCH_RUNS must be positive"
((namespaces > 0)) || die "BENCH_NAMESPACES must be positive"

need_tools
work=$(mktemp -d "${TMPDIR:-/tmp}/relabel-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

cluster_up
build_relabel "$work"
go build -trimpath -ldflags '-s -w' -o "$work/wirefloor" ./bench/wirefloor

# count RESOURCE_PATH: how many objects the API serves there, from one
# single-item page and its remainingItemCount.
count() {
	k get --raw "$1?limit=1" | jq '(.items | length) + (.metadata.remainingItemCount // 0)'
}

dataset="namespaces=$namespaces deploymentsPerNamespace=$deployments rolloutsPerNamespace=$rollouts"
loaded=$(k get configmap relabel-bench -n default -o jsonpath='{.data.dataset}' 2>/dev/null || true)
if [[ $loaded == "$dataset" ]]; then
	log "data set already loaded ($dataset)"
else
	log "loading $dataset"
	go run ./bench/load --kubeconfig "$kubeconfig" --crd testdata/crd-rollout.yaml \
		--namespaces "$namespaces" --deployments-per-namespace "$deployments" \
		--rollouts-per-namespace "$rollouts" --workers "$workers"
	# The Deployment controller creates a ReplicaSet for each new Deployment
	# and updates its status; measure only once it has caught up.
	log "waiting for the Deployment controller to catch up"
	# About 40 ReplicaSets a second on 2 cores; 15 minutes more to spare.
	wait_seconds=$((900 + namespaces * deployments / 40))
	deadline=$((SECONDS + wait_seconds))
	while :; do
		want=$(count /apis/apps/v1/deployments)
		have=$(count /apis/apps/v1/replicasets)
		((have >= want)) && break
		((SECONDS < deadline)) || die "only $have ReplicaSets for $want Deployments after $wait_seconds s"
		log "$have/$want ReplicaSets"
		sleep 10
	done
	sleep "$settle"
fi
# Measure once the controllers have caught up (after a load, or other work).
wait_controllers_idle 1800

objects_deploy=$(count /apis/apps/v1/deployments)
objects_sts=$(count /apis/apps/v1/statefulsets)
objects_ds=$(count /apis/apps/v1/daemonsets)
objects_ro=$(count /apis/demo.relabel.dev/v1alpha1/rollouts 2>/dev/null || echo 0)
size=$( (k get --raw /apis/apps/v1/namespaces/bench-000/deployments/app-0000 2>/dev/null || true) | wc -c)

relabel_cmd=("$relabel" audit --kubeconfig "$kubeconfig" --label stage -A -o json)
floor_cmd=("$work/wirefloor" --kubeconfig "$kubeconfig" /apis/apps/v1/deployments /apis/apps/v1/statefulsets /apis/apps/v1/daemonsets /apis/demo.relabel.dev/v1alpha1/rollouts)
# The same lists in protobuf, as relabel asks for built-in kinds (the API
# server answers JSON for the custom resources).
floor_pb_cmd=("$work/wirefloor" --protobuf "${floor_cmd[@]:1}")
# The lists relabel reads: a kind of at least 2000 objects, with at least 20
# per namespace on average, a namespace at a time (engine/audit.go,
# splitMinimum and minObjectsPerNamespace).
mapfile -t namespace_names < <(k get namespaces -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
relabel_lists() {
	local path=$1 objects=$2 ns
	if ((objects >= 2000 && ${#namespace_names[@]} * 20 <= objects)); then
		echo /api/v1/namespaces
		for ns in "${namespace_names[@]}"; do
			echo "${path%/*}/namespaces/$ns/${path##*/}"
		done
	else
		echo "$path"
	fi
}
mapfile -t split_paths < <(
	relabel_lists /apis/apps/v1/deployments "$objects_deploy"
	relabel_lists /apis/apps/v1/statefulsets "$objects_sts"
	relabel_lists /apis/apps/v1/daemonsets "$objects_ds"
	relabel_lists /apis/demo.relabel.dev/v1alpha1/rollouts "$objects_ro" | sort -u
)
split_cmd=("$work/wirefloor" --protobuf --kubeconfig "$kubeconfig" "${split_paths[@]}")
kubectl_cmd=("$kubectl" --kubeconfig "$kubeconfig" get "deployments,statefulsets,daemonsets,rollouts.demo.relabel.dev" -A -o json)

# time_run NAME CMD...: one run, appends "wall_seconds peak_rss_kib cpu_seconds" to $work/times.NAME.
time_run() {
	local name=$1
	shift
	measure "$work/times.$name" "$@"
}

# A warm-up run of each fills the API server's caches and kubectl's discovery cache.
log "warm-up"
"${relabel_cmd[@]}" >"$work/audit.json"
"${kubectl_cmd[@]}" >/dev/null
"${floor_cmd[@]}" >/dev/null
"${floor_pb_cmd[@]}" >/dev/null
"${split_cmd[@]}" >/dev/null
audited=$(jq '.summary.objects' "$work/audit.json")
lacking=$(jq '.summary.lacking' "$work/audit.json")

# Interleaved, so that load from elsewhere on the machine hits both alike.
for ((i = 1; i <= runs; i++)); do
	log "run $i/$runs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
	time_run floor "${floor_cmd[@]}"
	time_run floor_pb "${floor_pb_cmd[@]}"
	time_run split "${split_cmd[@]}"
	time_run relabel "${relabel_cmd[@]}"
	time_run kubectl "${kubectl_cmd[@]}"
done
load=$(cut -d' ' -f1-3 /proc/loadavg)

wall() { awk '{ print $1 }' "$work/times.$1" | median; }
rss() { awk '{ printf "%.1f\n", $2 / 1024 }' "$work/times.$1" | median; }
cpu() { awk '{ print $3 }' "$work/times.$1" | median; }
runs_of() { awk '{ printf "%s%.2fs/%.2fs/%.1fMiB", (NR > 1 ? ", " : ""), $1, $3, $2 / 1024 }' "$work/times.$1"; }

relabel_wall=$(wall relabel) relabel_rss=$(rss relabel) relabel_cpu=$(cpu relabel)
floor_wall=$(wall floor) floor_rss=$(rss floor) floor_cpu=$(cpu floor)
floor_wall_ratio=$(ratio "$relabel_wall" "$floor_wall")
floor_cpu_ratio=$(ratio "$relabel_cpu" "$floor_cpu")
floor_pb_wall=$(wall floor_pb) floor_pb_rss=$(rss floor_pb) floor_pb_cpu=$(cpu floor_pb)
floor_pb_wall_ratio=$(ratio "$relabel_wall" "$floor_pb_wall")
floor_pb_cpu_ratio=$(ratio "$relabel_cpu" "$floor_pb_cpu")
split_wall=$(wall split) split_rss=$(rss split) split_cpu=$(cpu split)
split_wall_ratio=$(ratio "$relabel_wall" "$split_wall")
split_cpu_ratio=$(ratio "$relabel_cpu" "$split_cpu")
kubectl_wall=$(wall kubectl) kubectl_rss=$(rss kubectl)
wall_ratio=$(ratio "$relabel_wall" "$kubectl_wall")
rss_ratio=$(ratio "$relabel_rss" "$kubectl_rss")
faster=$(awk -v r="$wall_ratio" 'BEGIN { print (r < 1 ? "yes" : "no") }')
lighter=$(awk -v r="$rss_ratio" 'BEGIN { print (r < 0.5 ? "yes" : "no") }')

result audit.objects "$audited"
result audit.deployments "$objects_deploy"
result audit.rollouts "$objects_ro"
result audit.relabel.wall "$relabel_wall"
result audit.relabel.rss_mib "$relabel_rss"
result audit.relabel.cpu "$relabel_cpu"
result audit.floor.wall "$floor_wall"
result audit.floor.cpu "$floor_cpu"
result audit.floor.rss_mib "$floor_rss"
result audit.floor_pb.wall "$floor_pb_wall"
result audit.floor_pb.cpu "$floor_pb_cpu"
result audit.floor_pb.rss_mib "$floor_pb_rss"
result audit.split.wall "$split_wall"
result audit.split.cpu "$split_cpu"
result audit.split.rss_mib "$split_rss"
result audit.split.lists "${#split_paths[@]}"
result audit.load "$load"
result audit.kubectl.wall "$kubectl_wall"
result audit.kubectl.rss_mib "$kubectl_rss"
result audit.runs "$runs"

report() {
	echo "relabel audit benchmark, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "machine: $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) memory, $(uname -sr)"
	echo "relabel $(git describe --tags --always --dirty 2>/dev/null || echo dev), $(go version | awk '{ print $3 }'), kubectl $("$kubectl" version --client -o json | jq -r .clientVersion.gitVersion)"
	echo "cluster $cluster ($kubeconfig): $objects_deploy Deployments, $objects_sts StatefulSets, $objects_ds DaemonSets, $objects_ro Rollouts; a Deployment is $size bytes as JSON"
	echo "relabel audited $audited objects, $lacking lack the label"
	echo
	echo "load average during the runs: $load (at the end)"
	echo
	printf '%-16s %14s %14s %18s   %s\n' COMMAND "WALL s (median)" "CPU s (median)" "PEAK RSS MiB (med)" "RUNS (wall/CPU/peak RSS)"
	printf '%-16s %14s %14s %18s   %s\n' "wire floor" "$floor_wall" "$floor_cpu" "$floor_rss" "$(runs_of floor)"
	printf '%-16s %14s %14s %18s   %s\n' "floor, protobuf" "$floor_pb_wall" "$floor_pb_cpu" "$floor_pb_rss" "$(runs_of floor_pb)"
	printf '%-16s %14s %14s %18s   %s\n' "same requests" "$split_wall" "$split_cpu" "$split_rss" "$(runs_of split)"
	printf '%-16s %14s %14s %18s   %s\n' "relabel audit" "$relabel_wall" "$relabel_cpu" "$relabel_rss" "$(runs_of relabel)"
	printf '%-16s %14s %14s %18s   %s\n' "kubectl get" "$kubectl_wall" "$(cpu kubectl)" "$kubectl_rss" "$(runs_of kubectl)"
	printf '%-16s %14s %14s\n' "relabel/floor" "$floor_wall_ratio" "$floor_cpu_ratio"
	printf '%-16s %14s %14s\n' "relabel/protobuf" "$floor_pb_wall_ratio" "$floor_pb_cpu_ratio"
	printf '%-16s %14s %14s\n' "relabel/same" "$split_wall_ratio" "$split_cpu_ratio"
	printf '%-16s %14s %14s %18s\n' "relabel/kubectl" "$wall_ratio" "" "$rss_ratio"
	echo
	echo "  wire floor:    ${floor_cmd[*]/#$work\//} >/dev/null"
	echo "  protobuf:      ${floor_pb_cmd[*]/#$work\//} >/dev/null"
	echo "  same requests: wirefloor --protobuf --kubeconfig $kubeconfig, ${#split_paths[@]} lists: $(printf '%s\n' "${split_paths[@]}" | awk 'NR <= 3 { printf "%s ", $0 } END { if (NR > 3) printf "... (%d more)", NR - 3 }')"
	echo "  relabel audit: ${relabel_cmd[*]/#$work\//} >/dev/null"
	echo "  kubectl get:   ${kubectl_cmd[*]/#$bin\//} >/dev/null"
	echo "relabel faster than kubectl: $faster; relabel peak RSS under half of kubectl's: $lighter"
}
if [[ -n ${BENCH_OUT:-} ]]; then
	report | tee "$BENCH_OUT"
else
	report
fi
