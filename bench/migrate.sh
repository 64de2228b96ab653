#!/usr/bin/env bash
# The migration benchmark: how long `relabel --label stage=production -n NS
# --yes` takes for N Deployments (2 replicas each) on the local cluster
# relabel-bench, how many API requests it sends per object, and how much
# memory it needs next to the audit data set's 10,000 Deployments.
#
#   bash bench/migrate.sh
#   BENCH_MIGRATE_SIZES="1 5" bash bench/migrate.sh      # smoke run
#   BENCH_MIGRATE_SIZES=200 BENCH_LARGE_FLAGS="--concurrency 50" bash bench/migrate.sh
#
# For each N, a fresh namespace migrate-N-<random> gets N Deployments; once
# they are rolled out, relabel migrates them, timed with GNU time (wall
# seconds, peak RSS); every object must then carry the label in its selector,
# template and metadata, with no copy left. Each N runs with the default
# flags and with BENCH_LARGE_FLAGS, BENCH_MIGRATE_RUNS times each (the report
# gives the median). The first large run at BENCH_MEMORY_SIZE is counted in the API server's audit log (requests by
# relabel's user agent in its namespace or cluster-scoped, within the run's
# time window) and watched through kube-controller-manager's workqueue
# metrics; a third run there migrates with -A -l bench=migrate instead of -n.
#
# The floor: for each N, bench/migratefloor does in another fresh namespace
# what the cluster's controllers have to do for the same 2 x N rollouts
# without relabel (N copies created at once and available, the originals
# deleted and gone, recreated with the label and available, the copies gone),
# with an informer for its waits and a client that is not the bound; its
# seconds are what relabel's are compared with.
#
# Strategies: at BENCH_ADOPT_SIZE, relabel migrates once with --strategy
# temp-copy and once with --strategy adopt (default flags otherwise), while
# bench/podwatch counts the namespace's pods from before relabel starts until
# the Deployments are rolled out after it: the most pods at once (the surge)
# and the fewest ready ones, each against N x replicas, and when the pods
# last changed.
#
# Environment:
#   BENCH_MIGRATE_SIZES  Deployments per run (default "1 50 200")
#   BENCH_LARGE_FLAGS    relabel flags for large runs (default "--concurrency 50 --qps 100 --burst 200")
#   BENCH_MIGRATE_RUNS   timed runs of each size and flag set (default 1; 3 on a busy machine)
#   BENCH_MEMORY_SIZE    the N counted in the audit log and migrated with -A too (default: the largest size)
#   BENCH_ADOPT_SIZE     the N migrated with each strategy under podwatch (default 50, at most the
#                        largest size; 0: none)
#   BENCH_MIN_READY_SECONDS  the Deployments' minReadySeconds (default 0): kwok
#                        pods are ready at once, real ones take a while
#   BENCH_OUT            also write the report to this file
#   BENCH_RESULTS        directory for machine-readable figures (bench/run.sh)
#
# The audit data set (bench/audit.sh) need not be loaded; the report says how
# many Deployments the cluster held.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh

read -r -a sizes <<<"${BENCH_MIGRATE_SIZES:-1 50 200}"
read -r -a large_flags <<<"${BENCH_LARGE_FLAGS:---concurrency 50 --qps 100 --burst 200}"
label=stage=production
((${#sizes[@]} > 0)) || die "BENCH_MIGRATE_SIZES is empty"
largest=0
for n in "${sizes[@]}"; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || die "BENCH_MIGRATE_SIZES: '$n' is not a positive integer"
	((n > largest)) && largest=$n
done
memory_size=${BENCH_MEMORY_SIZE:-$largest}
[[ $memory_size =~ ^[1-9][0-9]*$ ]] || die "BENCH_MEMORY_SIZE must be a positive integer, not '$memory_size'"
adopt_size=${BENCH_ADOPT_SIZE:-$((largest < 50 ? largest : 50))}
[[ $adopt_size =~ ^[0-9]+$ ]] || die "BENCH_ADOPT_SIZE must be a non-negative integer, not '$adopt_size'"
min_ready=${BENCH_MIN_READY_SECONDS:-0}
runs=${BENCH_MIGRATE_RUNS:-1}
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "BENCH_MIGRATE_RUNS must be a positive integer, not '$runs'"
[[ $min_ready =~ ^[0-9]+$ ]] || die "BENCH_MIN_READY_SECONDS must be a non-negative integer, not '$min_ready'"

need_tools
work=$(mktemp -d "${TMPDIR:-/tmp}/relabel-bench.XXXXXX")
# The pid of a running bench/podwatch, stopped on the way out.
podwatch_pid=
trap '[[ -z $podwatch_pid ]] || kill "$podwatch_pid" 2>/dev/null; rm -rf "$work"' EXIT

cluster_up
# Each migrating Deployment has its copy's pods next to its own: up to
# 2 x replicas pods per Deployment at once; kwok nodes hold 110 pods each.
nodes=$(((2 * replicas * largest + 109) / 110 + 1))
have_nodes=$(k get nodes -o name | wc -l)
if ((have_nodes < nodes)); then
	log "adding nodes: $have_nodes -> $nodes"
	RELABEL_CLUSTER_NODES=$nodes bash internal/cluster/cluster.sh scale "$cluster"
fi
build_relabel "$work"
log "building bench/migratefloor and bench/podwatch"
go build -trimpath -o "$work/" ./bench/migratefloor ./bench/podwatch
migratefloor=$work/migratefloor
podwatch=$work/podwatch
# A failed run leaves its namespace for a look; this run starts afresh.
delete_namespaces
audit_log=$(bash internal/cluster/cluster.sh audit-log "$cluster")

# kcm_queues prints "METRIC VALUE" for kube-controller-manager's deployment
# and replicaset workqueues, the ReplicaSet syncs it skipped because its
# cache lagged its own writes, and its client's rate-limiter wait.
kcm_queues() {
	bash internal/cluster/cluster.sh controller-metrics "$cluster" | awk '
		/^workqueue_((queue|work)_duration_seconds_(sum|count)|retries_total)\{name="(deployment|replicaset)"\}/ {
			match($1, /name="[a-z]+"/); q = substr($1, RSTART + 6, RLENGTH - 7)
			m = $1; sub(/\{.*/, "", m); sub(/^workqueue_/, "", m); print q "_" m, $2 }
		/^(replicaset_controller_stale_sync_skips_total|rest_client_rate_limiter_duration_seconds_(sum|count))\{/ {
			m = $1; sub(/\{.*/, "", m); v[m] += $2 }
		END { for (m in v) print m, v[m] }'
}

# kcm_delta BEFORE AFTER WALL prints, per queue, the syncs during the run,
# the retries (failed syncs, requeued through the controller's rate limiter:
# 10 per second once a burst of 100 is spent), the mean wait in the queue and
# how busy the controller's 5 workers (its default) were.
kcm_delta() {
	awk -v wall="$3" -v workers=5 '
		FNR == NR { before[$1] = $2; next }
		{ d[$1] = $2 - before[$1] }
		END {
			split("deployment replicaset", qs, " ")
			for (i = 1; i <= 2; i++) {
				q = qs[i]; n = d[q "_work_duration_seconds_count"]
				printf "%s: %d syncs, %d retries, mean queue wait %.2f s, mean sync %.3f s, workers busy %.0f%%", q, n,
					d[q "_retries_total"],
					(n > 0 ? d[q "_queue_duration_seconds_sum"] / n : 0),
					(n > 0 ? d[q "_work_duration_seconds_sum"] / n : 0),
					(wall > 0 ? 100 * d[q "_work_duration_seconds_sum"] / (wall * workers) : 0)
				if (q == "replicaset") printf " (%d syncs skipped: cache behind its own writes)", d["replicaset_controller_stale_sync_skips_total"]
				print ""
			}
			n = d["rest_client_rate_limiter_duration_seconds_count"]
			printf "client rate limiter: %d requests, mean wait %.4f s\n", n,
				(n > 0 ? d["rest_client_rate_limiter_duration_seconds_sum"] / n : 0)
		}' "$1" "$2"
}

# cpu_delta BEFORE AFTER WALL RELABEL_CPU prints the CPU seconds each
# component of the cluster and relabel used during the run, and their share
# of the machine's cores.
cpu_delta() {
	awk -v wall="$3" -v own="$4" -v cores="$(nproc)" '
		FNR == NR { before[$1] = $2; next }
		{ d = $2 - before[$1]; total += d; printf "%s%s %.1f s", sep, $1, d; sep = ", " }
		END { printf ", relabel %.1f s; together %.0f%% of %d cores\n", own, 100 * (total + own) / (wall * cores), cores }' "$1" "$2"
}

# requests SINCE NS FROM TO prints "COUNT VERB RESOURCE" for relabel's
# requests in namespace NS or cluster-scoped whose stages fall between FROM
# and TO, from the audit log files written after the file SINCE was (the API
# server rotates its log at 100 MB). A watch logs two stages; its audit ID
# counts it once.
requests() {
	local -a files
	mapfile -t files < <(find "$(dirname "$audit_log")" -maxdepth 1 -name 'audit*.log' -newer "$1")
	((${#files[@]} > 0)) || die "no audit log written since the run began in $(dirname "$audit_log")"
	cat "${files[@]}" | { grep -F '"userAgent":"relabel' || true; } | jq -r --arg ns "$2" --arg from "$3" --arg to "$4" '
		select((.userAgent | startswith("relabel")) and (.userAgent | startswith("relabel-bench") | not))
		| select(.stageTimestamp >= $from and .stageTimestamp <= $to)
		| select((.objectRef.namespace // $ns) == $ns)
		| [.auditID, .verb, (if .objectRef.resource then .objectRef.resource + (if .objectRef.subresource then "/" + .objectRef.subresource else "" end) else "discovery" end)]
		| @tsv' | sort -u | cut -f2,3 | sort | uniq -c | sort -k2,2 -k1,1nr
}

# start_podwatch NS OUT starts bench/podwatch on the namespace, its figures
# to OUT, and returns once it watches.
start_podwatch() {
	local ns=$1 out=$2 deadline=$((SECONDS + 120))
	"$podwatch" --kubeconfig "$kubeconfig" --namespace "$ns" >"$out" 2>"$out.err" &
	podwatch_pid=$!
	until grep -q '^podwatch: watching' "$out.err"; do
		kill -0 "$podwatch_pid" 2>/dev/null || die "$ns: podwatch failed: $(cat "$out.err")"
		((SECONDS < deadline)) || die "$ns: podwatch did not sync within 120 s"
		sleep 0.2
	done
}

# stop_podwatch stops it; its figures are then in OUT.
stop_podwatch() {
	kill -TERM "$podwatch_pid"
	local rc=0
	wait "$podwatch_pid" || rc=$?
	podwatch_pid=
	((rc == 0)) || die "podwatch failed ($rc)"
}

# migrate N MODE RUN FLAGS...: one timed run in a fresh namespace; MODE is
# default, large or all (large flags, -A -l bench=migrate), or tempcopy or
# adopt (the strategies, under podwatch until the Deployments are rolled out).
# The first run of each also records the controllers' work, the CPU used and
# (large, at BENCH_MEMORY_SIZE) the API requests.
migrate() {
	local n=$1 mode=$2 run=$3 ns wall rss cpu from to
	shift 3
	ns=migrate-$n-$(random_suffix)
	create_namespace "$ns" "$n"
	wait_controllers_idle 1800
	local -a scope=(-n "$ns")
	[[ $mode == all ]] && scope=(-A -l bench=migrate)
	local times=$work/times.$n.$mode
	kcm_queues >"$times.kcm.before"
	bash internal/cluster/cluster.sh cpu "$cluster" >"$times.cpu.before"
	[[ $mode == tempcopy || $mode == adopt ]] && start_podwatch "$ns" "$times.pods.$run"
	touch "$times.start"
	from=$(now)
	log "$ns: relabel ${scope[*]} $*"
	measure "$times" "$relabel" --kubeconfig "$kubeconfig" --label "$label" "${scope[@]}" --yes \
		--backup-dir "$work/backups.$ns" -o json "$@"
	to=$(now)
	kcm_queues >"$times.kcm.after"
	bash internal/cluster/cluster.sh cpu "$cluster" >"$times.cpu.after"
	read -r wall rss cpu < <(tail -n1 "$times")
	local migrated
	migrated=$(jq '.summary.migrated' "$times.out")
	((migrated == n)) || die "$ns: relabel migrated $migrated of $n objects"
	verify_labelled "$ns" "$n" "$label"
	if [[ -n $podwatch_pid ]]; then
		stop_podwatch
		log "$ns: pods: $(tr '\n' ' ' <"$times.pods.$run")"
		if ((run == 1)); then
			while read -r key value; do result "pods.$n.$mode.$key" "$value"; done <"$times.pods.$run"
		fi
	fi
	log "$ns: $n migrated in $wall s, peak RSS $(mib "$rss") MiB"
	if ((run > 1)); then
		delete_namespace "$ns"
		return
	fi
	kcm_delta "$times.kcm.before" "$times.kcm.after" "$wall" >"$times.kcm"
	cpu_delta "$times.cpu.before" "$times.cpu.after" "$wall" "$cpu" >"$times.cpu"
	result "cpu.$n.$mode" "$(cat "$times.cpu")"
	if [[ $mode == large && $n == "$memory_size" ]]; then
		requests "$times.start" "$ns" "$from" "$to" >"$work/requests"
		[[ -s $work/requests ]] || die "$ns: no request by relabel in the audit log"
		while read -r count verb resource; do
			result "requests.$n.$verb.$resource" "$count"
		done <"$work/requests"
	fi
	if [[ $n == "$memory_size" ]]; then
		while IFS= read -r line; do result "kcm.$n.$mode" "$line"; done <"$times.kcm"
	fi
	delete_namespace "$ns"
}

# floor N: bench/migratefloor in a fresh namespace of N rolled-out
# Deployments; its phases' seconds go to $work/floor.N, one run a line:
# copy delete recreate cleanup wall.
floor() {
	local n=$1 ns out
	ns=floor-$n-$(random_suffix)
	out=$work/floor.$n.out
	create_namespace "$ns" "$n"
	wait_controllers_idle 1800
	log "$ns: the floor: $n copies, the originals deleted and recreated, the copies deleted"
	"$migratefloor" --kubeconfig "$kubeconfig" --namespace "$ns" --label "$label" --expect "$n" >"$out" ||
		die "$ns: migratefloor failed"
	awk '{ v[$1] = $2 } END { print v["copy"], v["delete"], v["recreate"], v["cleanup"], v["wall"] }' "$out" >>"$work/floor.$n"
	verify_labelled "$ns" "$n" "$label"
	log "$ns: the floor: $(tr '\n' ' ' <"$out")"
	delete_namespace "$ns"
}

kube_version=$(k version -o json | jq -r .serverVersion.gitVersion)
result kubernetes "$kube_version"
result nodes "$(k get nodes -o name | wc -l)"
result migrate.large_flags "${large_flags[*]}"
result migrate.min_ready_seconds "$min_ready"
result migrate.replicas "$replicas"
for n in "${sizes[@]}"; do
	for ((run = 1; run <= runs; run++)); do
		migrate "$n" default "$run"
		migrate "$n" large "$run" "${large_flags[@]}"
		floor "$n"
	done
done
if ((adopt_size > 0)); then
	result migrate.adopt_size "$adopt_size"
	for ((run = 1; run <= runs; run++)); do
		migrate "$adopt_size" tempcopy "$run" --strategy temp-copy
		migrate "$adopt_size" adopt "$run" --strategy adopt
	done
fi
# -A: the plan lists every namespace; the informers may watch them all.
migrate "$memory_size" all 1 "${large_flags[@]}"

# wall TIMES and rss TIMES: the median of the runs.
wall() { awk '{ print $1 }' "$1" | median; }
rss() { awk '{ print $2 }' "$1" | median; }
for times in "$work"/times.*.*; do
	[[ $times =~ times\.([0-9]+)\.([a-z]+)$ ]] || continue
	key=migrate.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}
	result "$key.wall" "$(wall "$times")"
	result "$key.rss" "$(rss "$times")"
	result "$key.runs" "$(awk '{ printf "%s%s", (NR > 1 ? ", " : ""), $1 }' "$times")"
done
# floor_median N COLUMN: the median of the floor's runs, COLUMN of
# copy delete recreate cleanup wall.
floor_median() {
	local -A col=([copy]=1 [delete]=2 [recreate]=3 [cleanup]=4 [wall]=5)
	awk -v c="${col[$2]}" '{ print $c }' "$work/floor.$1" | median
}
for n in "${sizes[@]}"; do
	for phase in copy delete recreate cleanup wall; do
		result "floor.$n.$phase" "$(floor_median "$n" "$phase")"
	done
	result "floor.$n.runs" "$(awk '{ printf "%s%s", (NR > 1 ? ", " : ""), $5 }' "$work/floor.$n")"
done
deployments_in_cluster=$(k get --raw '/apis/apps/v1/deployments?limit=1' | jq '(.items | length) + (.metadata.remainingItemCount // 0)')
result deployments_in_cluster "$deployments_in_cluster"

t1() { wall "$work/times.${sizes[0]}.$1"; }
report() {
	echo "relabel migration benchmark, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo); Kubernetes $kube_version (kwok), $(k get nodes -o name | wc -l) nodes, $deployments_in_cluster Deployments in the cluster"
	echo "large flags: ${large_flags[*]}; the Deployments' minReadySeconds: $min_ready"
	echo
	printf '%-6s %-8s %10s %10s %14s   %s\n' N FLAGS "WALL s" "T(N)/T(${sizes[0]})" "PEAK RSS MiB" "RUNS (wall s)"
	local n mode times w
	for n in "${sizes[@]}"; do
		for mode in default large; do
			times=$work/times.$n.$mode w=$(wall "$times")
			printf '%-6s %-8s %10s %10s %14s   %s\n' "$n" "$mode" "$w" "$(ratio "$w" "$(t1 "$mode")")" "$(mib "$(rss "$times")")" \
				"$(awk '{ printf "%s%s", (NR > 1 ? ", " : ""), $1 }' "$times")"
		done
	done
	times=$work/times.$memory_size.all
	printf '%-6s %-8s %10s %10s %14s   (-A -l bench=migrate)\n' "$memory_size" all "$(wall "$times")" - "$(mib "$(rss "$times")")"
	echo
	echo "the floor (bench/migratefloor: the same 2 x N rollouts without relabel; median seconds):"
	printf '%-6s %8s %8s %8s %8s %8s   %s\n' N COPY DELETE RECREATE CLEANUP WALL "RELABEL/FLOOR default, large"
	for n in "${sizes[@]}"; do
		printf '%-6s %8s %8s %8s %8s %8s   %s, %s\n' "$n" "$(floor_median "$n" copy)" "$(floor_median "$n" delete)" \
			"$(floor_median "$n" recreate)" "$(floor_median "$n" cleanup)" "$(floor_median "$n" wall)" \
			"$(ratio "$(wall "$work/times.$n.default")" "$(floor_median "$n" wall)")" "$(ratio "$(wall "$work/times.$n.large")" "$(floor_median "$n" wall)")"
	done
	echo
	if ((adopt_size > 0)); then
		echo "strategies, N=$adopt_size, default flags ($((adopt_size * replicas)) pods wanted; podwatch's first run):"
		for mode in tempcopy adopt; do
			times=$work/times.$adopt_size.$mode
			printf '  %-9s relabel %s s; %s\n' "$mode" "$(wall "$times")" \
				"$(awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2 }' "$times.pods.1")"
		done
		echo
	fi
	echo "API requests by relabel, N=$memory_size, large flags (count, verb, resource; per object):"
	awk -v n="$memory_size" '{ printf "  %6d %-7s %-40s %.2f\n", $1, $2, $3, $1 / n }' "$work/requests"
	echo
	echo "kube-controller-manager during the N=$memory_size runs (5 workers per queue, its default):"
	for mode in default large all; do
		sed "s/^/  $mode: /" "$work/times.$memory_size.$mode.kcm"
	done
	echo
	echo "CPU during the N=$memory_size runs:"
	for mode in default large all; do
		sed "s/^/  $mode: /" "$work/times.$memory_size.$mode.cpu"
	done
}
if [[ -n ${BENCH_OUT:-} ]]; then
	report | tee "$BENCH_OUT"
else
	report
fi
