#!/usr/bin/env bash
# `make bench`: every benchmark on the local cluster relabel-bench, then one
# markdown table of all figures on stdout (the scripts' own reports go to
# stderr).
#
#   make bench
#   BENCH_OUT=bench.md make bench        # also write the table to bench.md
#   BENCH_NAMESPACES=2 BENCH_DEPLOYMENTS_PER_NS=10 BENCH_ROLLOUTS_PER_NS=2 \
#     BENCH_MIGRATE_SIZES="1 5" BENCH_LOOP_SIZE=5 make bench   # smoke run
#
# It runs bench/audit.sh, bench/migrate.sh and bench/kubectl-loop.sh; their
# environment variables apply (see each script's header). The kubectl loop is
# compared with relabel's large-flags run of the same size, when there is one;
# each migration size with its floor (bench/migratefloor), and the two
# strategies by their time and the pods they leave running (bench/podwatch).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh

out=${BENCH_OUT:-}
unset BENCH_OUT
need_tools
BENCH_RESULTS=$(mktemp -d "${TMPDIR:-/tmp}/relabel-bench-results.XXXXXX")
export BENCH_RESULTS
trap 'rm -rf "$BENCH_RESULTS"' EXIT

started=$(date -u '+%Y-%m-%d %H:%M UTC')
bash bench/audit.sh >&2
bash bench/migrate.sh >&2
bash bench/kubectl-loop.sh >&2
# What the informers keep, and the audit's decoder against json.Valid: Go
# benchmarks, no cluster.
log "go benchmarks: BenchmarkWatchedMemory, BenchmarkDecodeList, BenchmarkAuditHeap"
go test -run '^$' -bench 'BenchmarkWatchedMemory|BenchmarkDecodeList|BenchmarkAuditHeap' -benchtime 1x -count 1 ./engine >"$BENCH_RESULTS/gobench.txt"
awk '/^BenchmarkWatchedMemory\/planned=/ { split($1, a, "="); sub(/-[0-9]+$/, "", a[2]); for (i = 2; i < NF; i++) if ($(i + 1) == "MiB/1000objects") print "memory.planned." a[2] "\t" $i }
	/^BenchmarkAuditHeap/ { for (i = 2; i < NF; i++) { if ($(i + 1) == "heap-B/finding") print "audit.heap.finding\t" $i; if ($(i + 1) == "struct-B") print "audit.heap.struct\t" $i } }
	/^BenchmarkDecodeList\// { n = $1; sub(/^BenchmarkDecodeList\//, "", n); sub(/-[0-9]+$/, "", n); for (i = 2; i < NF; i++) if ($(i + 1) == "cpu-ns/op") print "decode." n "\t" $i }' \
	"$BENCH_RESULTS/gobench.txt" >>"$BENCH_RESULTS/results.tsv"

# The figures, by key; a key recorded several times keeps every value.
declare -A r
while IFS=$'\t' read -r key value; do
	r[$key]=${r[$key]:+${r[$key]}; }$value
done <"$BENCH_RESULTS/results.tsv"

get() { echo "${r[$1]:-?}"; }
per() { awk -v a="$1" -v n="$2" 'BEGIN { printf "%.2f", a / n }'; }
row() { printf '| %s | %s |\n' "$1" "$2"; }

# Sizes and modes that were measured, from keys migrate.N.MODE.wall.
mapfile -t sizes < <(printf '%s\n' "${!r[@]}" | sed -n 's/^migrate\.\([0-9]*\)\.default\.wall$/\1/p' | sort -n)
loop_size=$(printf '%s\n' "${!r[@]}" | sed -n 's/^loop\.\([0-9]*\)\.wall$/\1/p')
memory_size=$(printf '%s\n' "${!r[@]}" | sed -n 's/^migrate\.\([0-9]*\)\.all\.wall$/\1/p')
n1=${sizes[0]}

# requests_by_verb prints, per verb, "VERB TOTAL RESOURCE:COUNT ..." for the counted run.
requests_by_verb() {
	printf '%s\n' "${!r[@]}" | sed -n "s/^requests\.$memory_size\.//p" | while IFS=. read -r verb resource; do
		echo "$verb $resource ${r[requests.$memory_size.$verb.$resource]}"
	done | sort | awk '{ total[$1] += $3; parts[$1] = parts[$1] " " $2 ":" $3 } END { for (v in total) print v, total[v], parts[v] }' | sort
}

table() {
	echo "| figure | value |"
	echo "|---|---|"
	row date "$started"
	row machine "$(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) memory, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end (shared machine)"
	row Kubernetes "$(get kubernetes) (kube-apiserver, kube-controller-manager, kube-scheduler; kwok nodes: $(get nodes))"
	row relabel "$(git describe --tags --always --dirty 2>/dev/null || echo dev), $(go version | awk '{ print $3 }')"
	row "audit: \`relabel audit -A -o json\`, $(get audit.objects) objects ($(get audit.deployments) Deployments, $(get audit.rollouts) Rollouts)" \
		"$(get audit.relabel.wall) s, $(get audit.relabel.cpu) s CPU, $(get audit.relabel.rss_mib) MiB (median of $(get audit.runs), alternating with the floor)"
	row "audit: wire floor (bench/wirefloor: the four lists whole, 500 a page, four at once, bytes discarded)" "$(get audit.floor.wall) s, $(get audit.floor.cpu) s CPU, $(get audit.floor.rss_mib) MiB"
	row "audit: relabel / floor" "wall $(ratio "$(get audit.relabel.wall)" "$(get audit.floor.wall)"), CPU $(ratio "$(get audit.relabel.cpu)" "$(get audit.floor.cpu)"); load average $(get audit.load)"
	row "audit: wire floor in protobuf (the same lists; JSON for the custom resources, as relabel reads them)" "$(get audit.floor_pb.wall) s, $(get audit.floor_pb.cpu) s CPU, $(get audit.floor_pb.rss_mib) MiB"
	row "audit: relabel / protobuf floor" "wall $(ratio "$(get audit.relabel.wall)" "$(get audit.floor_pb.wall)"), CPU $(ratio "$(get audit.relabel.cpu)" "$(get audit.floor_pb.cpu)")"
	row "audit: the same requests as relabel, bytes discarded ($(get audit.split.lists) lists)" "$(get audit.split.wall) s, $(get audit.split.cpu) s CPU, $(get audit.split.rss_mib) MiB"
	row "audit: relabel / the same requests" "wall $(ratio "$(get audit.relabel.wall)" "$(get audit.split.wall)"), CPU $(ratio "$(get audit.relabel.cpu)" "$(get audit.split.cpu)")"
	row "audit: decoding one page of 500 Deployments (BenchmarkDecodeList, CPU)" "$(awk -v n="$(get decode.decodeList)" 'BEGIN { printf "%.1f", n / 1e6 }') ms; json.Valid over the same bytes $(awk -v n="$(get decode.floor=json.Valid)" 'BEGIN { printf "%.1f", n / 1e6 }') ms; ratio $(ratio "$(get decode.decodeList)" "$(get decode.floor=json.Valid)")"
	row "audit: heap held per object until the report is written (BenchmarkAuditHeap, 10,000 Deployments)" "$(get audit.heap.finding) bytes, of which the finding itself $(get audit.heap.struct); the rest its name, its selector and the slice's headroom"
	row "audit: \`kubectl get … -A -o json\`" "$(get audit.kubectl.wall) s, $(get audit.kubectl.rss_mib) MiB"
	row "audit: relabel / kubectl" "wall $(ratio "$(get audit.relabel.wall)" "$(get audit.kubectl.wall)"), peak RSS $(ratio "$(get audit.relabel.rss_mib)" "$(get audit.kubectl.rss_mib)")"
	local n mode wall runs flags ready=""
	[[ $(get migrate.min_ready_seconds) == 0 ]] || ready=", minReadySeconds $(get migrate.min_ready_seconds)"
	for mode in default large; do
		flags="default flags$ready"
		[[ $mode == large ]] && flags="\`$(get migrate.large_flags)\`$ready"
		for n in "${sizes[@]}"; do
			wall=$(get "migrate.$n.$mode.wall") runs=$(get "migrate.$n.$mode.runs")
			if [[ $runs == *,* ]]; then runs=" (median of $runs)"; else runs=""; fi
			row "migrate N=$n, $flags" "T = $wall s$runs, T(N)/T($n1) = $(ratio "$wall" "$(get "migrate.$n1.$mode.wall")"), $(per "$wall" "$n") s per object, peak RSS $(mib "$(get "migrate.$n.$mode.rss")") MiB"
		done
	done
	for n in "${sizes[@]}"; do
		[[ -n ${r[floor.$n.wall]:-} ]] || continue
		runs=$(get "floor.$n.runs")
		if [[ $runs == *,* ]]; then runs=" (median of $runs)"; else runs=""; fi
		row "migrate N=$n: relabel / floor (bench/migratefloor: the same 2 × N rollouts without relabel)" \
			"$(ratio "$(get "migrate.$n.default.wall")" "$(get "floor.$n.wall")")× (default flags), $(ratio "$(get "migrate.$n.large.wall")" "$(get "floor.$n.wall")")× (large flags); floor $(get "floor.$n.wall") s$runs: copies available $(get "floor.$n.copy") s, originals gone $(get "floor.$n.delete") s, recreated available $(get "floor.$n.recreate") s, copies gone $(get "floor.$n.cleanup") s"
	done
	local a=${r[migrate.adopt_size]:-} want strategy
	if [[ -n $a ]]; then
		want=$((a * $(get migrate.replicas)))
		for mode in tempcopy adopt; do
			strategy=temp-copy
			[[ $mode == adopt ]] && strategy=adopt
			wall=$(get "migrate.$a.$mode.wall") runs=$(get "migrate.$a.$mode.runs")
			if [[ $runs == *,* ]]; then runs=" (median of $runs)"; else runs=""; fi
			row "migrate N=$a, \`--strategy $strategy\`, default flags$ready: time, pod surge, fewest ready pods (bench/podwatch)" \
				"T = $wall s$runs, pods last changed $(get "pods.$a.$mode.last_change") s after podwatch started (just before relabel); at most $(get "pods.$a.$mode.max_pods") pods at once = $(ratio "$(get "pods.$a.$mode.max_pods")" "$want") × N × replicas ($want); at least $(get "pods.$a.$mode.min_ready") ready = $(ratio "$(get "pods.$a.$mode.min_ready")" "$want") × $want; $(get "pods.$a.$mode.samples") samples"
		done
		row "migrate N=$a: adopt / temp-copy" "time $(ratio "$(get "migrate.$a.adopt.wall")" "$(get "migrate.$a.tempcopy.wall")"), until the pods last changed $(ratio "$(get "pods.$a.adopt.last_change")" "$(get "pods.$a.tempcopy.last_change")"), most pods $(ratio "$(get "pods.$a.adopt.max_pods")" "$(get "pods.$a.tempcopy.max_pods")")"
	fi
	if [[ -n $loop_size ]]; then
		wall=$(get "loop.$loop_size.wall")
		row "kubectl loop N=$loop_size (one Deployment after another)" "$wall s, $(per "$wall" "$loop_size") s per object, peak RSS $(mib "$(get "loop.$loop_size.rss")") MiB (one kubectl)"
		if [[ -n ${r[migrate.$loop_size.large.wall]:-} ]]; then
			row "kubectl loop / relabel, N=$loop_size" "$(ratio "$wall" "$(get "migrate.$loop_size.default.wall")")× (default flags), $(ratio "$wall" "$(get "migrate.$loop_size.large.wall")")× (large flags)"
		fi
	fi
	if [[ -n $memory_size ]]; then
		local verb total parts all=0
		while read -r verb total parts; do
			row "API requests per object, N=$memory_size, large flags: $verb" "$(per "$total" "$memory_size") ($(for p in $parts; do printf '%s %s, ' "${p%%:*}" "$(per "${p#*:}" "$memory_size")"; done | sed 's/, $//'))"
			all=$((all + total))
		done < <(requests_by_verb)
		row "API requests per object, N=$memory_size, all verbs" "$(per "$all" "$memory_size") ($all requests; the temp-copy minimum is 4 writes to Deployments plus 1 event)"
		row "GETs and Events per object, N=$memory_size (goal ≤ 1 each)" "GET deployments $(per "${r[requests.$memory_size.get.deployments]:-0}" "$memory_size"), create events $(per "${r[requests.$memory_size.create.events]:-0}" "$memory_size")"
		local ns_rss all_rss watched
		ns_rss=$(get "migrate.$memory_size.large.rss")
		all_rss=$(get "migrate.$memory_size.all.rss")
		watched=$(get deployments_in_cluster)
		row "peak RSS, N=$memory_size, \`-n NS\`, $watched Deployments in the cluster" "$(mib "$ns_rss") MiB"
		row "peak RSS, N=$memory_size, \`-A -l bench=migrate\`" "$(mib "$all_rss") MiB, $(get "migrate.$memory_size.all.wall") s; $(awk -v a="$all_rss" -v b="$ns_rss" -v w="$watched" 'BEGIN { printf "%.1f", (a - b) / 1024 / (w / 1000) }') MiB more per 1,000 Deployments in the cluster"
		row "informer cache per 1,000 Deployments, cluster-wide (BenchmarkWatchedMemory, goal ≤ 10 MiB)" "$(get memory.planned.17) MiB for objects outside the plan (stubs), $(get memory.planned.5000) MiB for planned ones (slim)"
		for mode in default large all; do
			if [[ -n ${r[kcm.$memory_size.$mode]:-} ]]; then
				row "kube-controller-manager during N=$memory_size ($mode)" "$(get "kcm.$memory_size.$mode")"
				row "CPU during N=$memory_size ($mode)" "$(get "cpu.$memory_size.$mode")"
			fi
		done
	fi
}

table >"$BENCH_RESULTS/table.md"
cat "$BENCH_RESULTS/table.md"
[[ -z $out ]] || cp "$BENCH_RESULTS/table.md" "$out"
