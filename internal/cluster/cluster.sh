#!/usr/bin/env bash
# The local Kubernetes cluster for relabel's demo, tests and benchmarks:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kubectl
# built from the pinned Kubernetes Go module, with kwok simulating nodes and pods.
#
#   cluster.sh bin                  build (once per version) and print the binaries' directory
#   cluster.sh up [NAME]            start cluster NAME (default "relabel") and print its kubeconfig
#   cluster.sh down [NAME]          delete it
#   cluster.sh kubeconfig [NAME]    print the kubeconfig path
#   cluster.sh audit-log [NAME]     print the path of the API server's audit log
#   cluster.sh restart-apiserver [NAME]  stop kube-apiserver and start it again (the rest keeps running)
#   cluster.sh scale [NAME]         add nodes up to RELABEL_CLUSTER_NODES to a running cluster
#   cluster.sh controller-metrics [NAME]  print kube-controller-manager's /metrics
#   cluster.sh cpu [NAME]           print each component's CPU seconds so far
#   cluster.sh rollouts-bin         build (once per version) Argo Rollouts' controller and print its path
#   cluster.sh helm-bin             build (once per version) Helm and print its path
#   cluster.sh rollouts [NAME]      start cluster NAME if needed, install Argo Rollouts' CRDs, run its
#                                   controller (restarted when dead) and print the kubeconfig
#
# Pods take kwok's fast stages unless their template asks for realistic timing
# with kwok's stage annotations, e.g. pod-ready.stage.kwok.x-k8s.io/delay: 3s
# (see kwok-stages.yaml).
#
# Everything lives under the user's cache directory (RELABEL_CACHE_DIR), never
# in ~/.kube/config.
set -euo pipefail

K8S_VERSION=v1.37.2
KWOK_VERSION=v0.8.0
ROLLOUTS_VERSION=v1.10.1
HELM_VERSION=v3.22.0
NODES=${RELABEL_CLUSTER_NODES:-3}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
module="$here/../clusterbin"
cache=${RELABEL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/relabel}
export KWOK_WORKDIR="$cache/kwok"
export KWOK_KUBE_VERSION=$K8S_VERSION

log() { echo "cluster: $*" >&2; }

bindir() {
	local sum dir
	sum=$(cat "$module/go.mod" "$module/go.sum" "$module/etcd/main.go" | sha256sum | cut -c1-12)
	dir="$cache/bin-$K8S_VERSION-kwok-$KWOK_VERSION-$sum"
	if [[ -f "$dir/complete" ]]; then
		echo "$dir"
		return
	fi
	# One build at a time: a concurrent caller waits for it, then reuses it.
	mkdir -p "$cache"
	exec 7>"$cache/bin.lock"
	flock 7
	if [[ -f "$dir/complete" ]]; then
		echo "$dir"
		return
	fi
	mkdir -p "$dir"
	local major minor pkg ldflags
	major=${K8S_VERSION#v}; major=${major%%.*}
	minor=${K8S_VERSION#v*.}; minor=${minor%%.*}
	pkg=k8s.io/component-base/version
	# Without the version the server reports v0.0.0-master and kubectl cannot parse it.
	ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
	log "building Kubernetes $K8S_VERSION and kwok $KWOK_VERSION into $dir (about 15 minutes on a cold cache)"
	(
		cd "$module"
		go build -trimpath -ldflags "$ldflags" -o "$dir/" \
			./etcd \
			k8s.io/kubernetes/cmd/kube-apiserver \
			k8s.io/kubernetes/cmd/kube-controller-manager \
			k8s.io/kubernetes/cmd/kube-scheduler \
			k8s.io/kubernetes/cmd/kubectl
	)
	GOBIN="$dir" GOFLAGS=-trimpath go install \
		"sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" \
		"sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
	touch "$dir/complete"
	echo "$dir"
}

kubeconfig() { echo "$KWOK_WORKDIR/$1.kubeconfig"; }

# lock takes the cluster's lock for the rest of the script: test processes of
# several packages may ask at once; one starts, the others reuse.
lock() {
	mkdir -p "$KWOK_WORKDIR"
	exec 9>"$KWOK_WORKDIR/$1.lock"
	flock 9
}

up() {
	lock "$1"
	start "$1"
}

# start starts cluster $1 unless it runs already; the caller holds the lock.
start() {
	local name=$1 bin kc log
	bin=$(bindir)
	kc=$(kubeconfig "$name")
	log="$KWOK_WORKDIR/$name.up.log"
	# A cluster started with other arguments (an older version of this script) is replaced.
	local -a args=(
		--runtime binary
		--etcd-binary "$bin/etcd"
		--kube-apiserver-binary "$bin/kube-apiserver"
		--kube-controller-manager-binary "$bin/kube-controller-manager"
		--kube-scheduler-binary "$bin/kube-scheduler"
		--kwok-controller-binary "$bin/kwok"
		--kube-audit-policy "$here/audit-policy.yaml"
		# kwok's stages, with realistic pod timing for pods that ask for it.
		--config "$here/kwok-stages.yaml"
		--disable-qps-limits
		# Nothing restarts a controller that loses its lease while the API
		# server is down (kubelet would, in a real cluster); without leader
		# election they ride out an API server restart.
		--extra-args kube-controller-manager=leader-elect=false
		--extra-args kube-scheduler=leader-elect=false
	)
	# Inside the cluster's own directory, so that whoever deletes the cluster deletes it too.
	local stamp="$KWOK_WORKDIR/clusters/$name/relabel-args"
	# Paths differ between checkouts; what matters is the flags and the policy.
	local want
	want="${args[*]//$here/} $(cat "$here/audit-policy.yaml" "$here/kwok-stages.yaml" | sha256sum | cut -c1-12)"
	if [[ -f "$kc" && "$(cat "$stamp" 2>/dev/null)" == "$want" ]] &&
		"$bin/kubectl" --kubeconfig "$kc" get --raw /readyz >/dev/null 2>&1; then
		echo "$kc"
		return
	fi
	# A cluster left behind by a killed run or a rebooted machine: start afresh.
	stop_rollouts "$name"
	"$bin/kwokctl" delete cluster --name "$name" --kubeconfig "$kc" >/dev/null 2>&1 || true
	rm -f "$kc"
	log "starting cluster $name"
	# 9>&-: the cluster's daemons must not inherit (and hold) the lock.
	"$bin/kwokctl" create cluster --name "$name" "${args[@]}" 9>&- \
		--kubeconfig "$kc" --wait 2m >"$log" 2>&1 || { cat "$log" >&2; return 1; }
	"$bin/kwokctl" scale node --name "$name" --replicas "$NODES" >>"$log" 2>&1 9>&- || { cat "$log" >&2; return 1; }
	"$bin/kubectl" --kubeconfig "$kc" wait --for=condition=Ready node --all --timeout=2m >>"$log" 2>&1 || { cat "$log" >&2; return 1; }
	echo "$want" >"$stamp"
	log "cluster $name is up with $NODES nodes"
	echo "$kc"
}

restart_apiserver() {
	local name=$1 dir pidfile pid bin kc
	local -a cmd
	bin=$(bindir)
	kc=$(kubeconfig "$name")
	dir="$KWOK_WORKDIR/clusters/$name"
	pidfile="$dir/pids/kube-apiserver.pid"
	# Under the lock of up: a concurrent up must not take the restart for a dead cluster.
	lock "$name"
	pid=$(cat "$pidfile")
	mapfile -d '' cmd <"/proc/$pid/cmdline"
	# A graceful stop waits 60 s for open watches; after 5 s it is a crash.
	kill "$pid"
	for _ in $(seq 1 25); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
	kill -KILL "$pid" 2>/dev/null || true
	while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
	# The same command line, its pid where kwokctl looks for it.
	(cd "$dir" && exec "${cmd[@]}" >>"$dir/logs/kube-apiserver.log" 2>&1 </dev/null 9>&-) &
	echo $! >"$pidfile"
	for _ in $(seq 1 240); do
		"$bin/kubectl" --kubeconfig "$kc" get --raw /readyz >/dev/null 2>&1 && return 0
		sleep 0.5
	done
	log "the API server of cluster $name did not come back"
	return 1
}

# scale adds nodes to a running cluster (kwok nodes hold 110 pods each).
scale() {
	local name=$1 bin kc
	bin=$(bindir)
	kc=$(kubeconfig "$name")
	"$bin/kwokctl" scale node --name "$name" --replicas "$NODES" >>"$KWOK_WORKDIR/$name.up.log" 2>&1 ||
		{ log "scaling cluster $name to $NODES nodes failed, see $KWOK_WORKDIR/$name.up.log"; return 1; }
	"$bin/kubectl" --kubeconfig "$kc" wait --for=condition=Ready node --all --timeout=2m >/dev/null
}

# controller_metrics prints kube-controller-manager's metrics (its workqueues
# tell whether the controllers keep up); /metrics needs no credentials there.
controller_metrics() {
	local name=$1 pid port
	pid=$(cat "$KWOK_WORKDIR/clusters/$name/pids/kube-controller-manager.pid")
	port=$(tr '\0' '\n' <"/proc/$pid/cmdline" | sed -n 's/^--secure-port=//p')
	curl -sSfk "https://127.0.0.1:$port/metrics"
}

# cpu prints "COMPONENT SECONDS" for each process of the cluster: user and
# system CPU time from /proc, to see where a run's CPU went.
cpu() {
	local name=$1 pidfile tick
	tick=$(getconf CLK_TCK)
	for pidfile in "$KWOK_WORKDIR/clusters/$name"/pids/*.pid; do
		[[ -r "/proc/$(cat "$pidfile")/stat" ]] || continue
		awk -v c="$(basename "$pidfile" .pid)" -v t="$tick" '{ sub(/^.*\) /, ""); printf "%s %.2f\n", c, ($12 + $13) / t }' \
			"/proc/$(cat "$pidfile")/stat"
	done
}

# rollouts_src prints the directory of Argo Rollouts' module, downloading it
# into the Go module cache if needed (outside any module: nothing of ours changes).
rollouts_src() {
	(cd / && GOFLAGS='' GOWORK=off go mod download -json "github.com/argoproj/argo-rollouts@$ROLLOUTS_VERSION") |
		sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'
}

# Argo Rollouts' CRDs, from the module's manifests/crds.
ROLLOUTS_CRDS=(rollout analysis-run analysis-template cluster-analysis-template experiment)

# rollouts_bin builds Argo Rollouts' controller once per version and prints its
# path; its CRDs are copied beside it, in crds/. go install refuses the module
# (it has replace directives), so it is built from the module's own directory,
# read-only in the module cache, with its go.sum.
rollouts_bin() {
	local dir="$cache/argo-rollouts-$ROLLOUTS_VERSION" src pkg ldflags crd
	if [[ ! -f "$dir/complete" ]]; then
		mkdir -p "$dir"
		# Test processes may ask at once: one builds, the others wait for it.
		exec 8>"$dir/build.lock"
		flock 8
	fi
	if [[ -f "$dir/complete" ]]; then
		echo "$dir/rollouts-controller"
		return
	fi
	src=$(rollouts_src)
	[[ -d "$src" ]] || { log "downloading github.com/argoproj/argo-rollouts@$ROLLOUTS_VERSION failed"; return 1; }
	pkg=github.com/argoproj/argo-rollouts/utils/version
	ldflags="-s -w -X $pkg.version=${ROLLOUTS_VERSION#v} -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
	log "building Argo Rollouts $ROLLOUTS_VERSION's controller into $dir (about 10 minutes on a cold cache)"
	(
		cd "$src"
		CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" GOWORK=off \
			go build -trimpath -ldflags "$ldflags" -o "$dir/rollouts-controller.tmp" ./cmd/rollouts-controller
	)
	mv "$dir/rollouts-controller.tmp" "$dir/rollouts-controller"
	rm -rf "$dir/crds"
	mkdir "$dir/crds"
	for crd in "${ROLLOUTS_CRDS[@]}"; do
		cp "$src/manifests/crds/$crd-crd.yaml" "$dir/crds/"
	done
	chmod u+w "$dir"/crds/*
	touch "$dir/complete"
	echo "$dir/rollouts-controller"
}

# helm_bin builds Helm once per version and prints its path. Its module has no
# replace directives, so go install builds it, outside any module (nothing of
# ours changes); the version is stamped as Helm's own Makefile does.
helm_bin() {
	local dir="$cache/helm-$HELM_VERSION"
	if [[ ! -f "$dir/complete" ]]; then
		mkdir -p "$dir"
		# Test processes may ask at once: one builds, the others wait for it.
		exec 8>"$dir/build.lock"
		flock 8
	fi
	if [[ -f "$dir/complete" ]]; then
		echo "$dir/helm"
		return
	fi
	log "building Helm $HELM_VERSION into $dir (about 11 CPU-minutes on a cold cache)"
	(
		cd /
		CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOWORK=off GOBIN="$dir" \
			go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
			"helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
	)
	touch "$dir/complete"
	echo "$dir/helm"
}

# rollouts_pids prints the pids of Argo Rollouts controllers started for
# kubeconfig $1 (the current one and any left by a cluster deleted behind our back).
rollouts_pids() {
	local p
	local -a cmd
	for p in /proc/[0-9]*; do
		{ mapfile -d '' cmd <"$p/cmdline"; } 2>/dev/null || continue
		[[ ${cmd[0]:-} == */rollouts-controller && " ${cmd[*]} " == *" --kubeconfig $1 "* ]] && echo "${p#/proc/}"
	done
	return 0
}

# stop_rollouts stops cluster $1's Argo Rollouts controller, if any.
stop_rollouts() {
	local kc pid alive
	local -a pids
	kc=$(kubeconfig "$1")
	rm -f "$KWOK_WORKDIR/clusters/$1/pids/rollouts-controller.pid"
	mapfile -t pids < <(rollouts_pids "$kc")
	((${#pids[@]})) || return 0
	kill "${pids[@]}" 2>/dev/null || true
	# It exits at once on SIGTERM; after 10 s it is killed.
	for _ in $(seq 1 50); do
		alive=0
		for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
		((alive)) || break
		sleep 0.2
	done
	kill -KILL "${pids[@]}" 2>/dev/null || true
}

# rollouts starts cluster $1 if needed, installs Argo Rollouts' CRDs and runs
# its controller out of cluster: no leader election (nothing would restart it),
# metrics and healthz on ports the kernel picks (several clusters, one machine).
# Its pid and log live in the cluster's directory, so that deleting the cluster
# deletes them too; up (when it replaces the cluster) and down stop it.
rollouts() {
	local name=$1 bin ctl kc dir pidfile logfile pid off crd
	local -a files
	bin=$(bindir)
	ctl=$(rollouts_bin)
	lock "$name"
	start "$name" >/dev/null
	kc=$(kubeconfig "$name")
	for crd in "${ROLLOUTS_CRDS[@]}"; do files+=(-f "$(dirname "$ctl")/crds/$crd-crd.yaml"); done
	"$bin/kubectl" --kubeconfig "$kc" apply --server-side --force-conflicts --field-manager=relabel-cluster "${files[@]}" >/dev/null
	"$bin/kubectl" --kubeconfig "$kc" wait --for=condition=Established --timeout=1m "${files[@]}" >/dev/null
	dir="$KWOK_WORKDIR/clusters/$name"
	pidfile="$dir/pids/rollouts-controller.pid"
	logfile="$dir/logs/rollouts-controller.log"
	pid=$(cat "$pidfile" 2>/dev/null || true)
	if [[ -n "$pid" ]] && grep -qx "$pid" < <(rollouts_pids "$kc"); then
		echo "$kc"
		return
	fi
	# Dead, or never started; one left without a pid file is not ours to keep.
	stop_rollouts "$name"
	off=$(stat -c %s "$logfile" 2>/dev/null || echo 0)
	log "starting Argo Rollouts $ROLLOUTS_VERSION's controller for cluster $name (log: $logfile)"
	# setsid: a daemon like kwokctl's, out of the caller's session; 8>&- 9>&-: it must not hold the locks.
	# shellcheck disable=SC2016 # $$ and $@ are the inner shell's.
	(
		cd "$dir"
		POD_NAMESPACE=argo-rollouts exec setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" \
			"$ctl" --kubeconfig "$kc" --leader-elect=false --metricsPort 0 --healthzPort 0 --logformat text
	) </dev/null >>"$logfile" 2>&1 8>&- 9>&- &
	for _ in $(seq 1 600); do
		pid=$(cat "$pidfile" 2>/dev/null || true)
		if grep -q "Started controller" < <(tail -c +$((off + 1)) "$logfile"); then
			echo "$kc"
			return
		fi
		if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
			break
		fi
		sleep 0.2
	done
	log "Argo Rollouts' controller for cluster $name did not start; the end of $logfile:"
	tail -c +$((off + 1)) "$logfile" | tail -n 30 >&2
	stop_rollouts "$name"
	return 1
}

down() {
	local name=$1 bin
	bin=$(bindir)
	lock "$name"
	stop_rollouts "$name"
	"$bin/kwokctl" delete cluster --name "$name" --kubeconfig "$(kubeconfig "$name")" >/dev/null 2>&1 || true
	log "cluster $name is down"
	rm -f "$(kubeconfig "$name")"
}

action=${1:-}
name=${2:-relabel}
case "$action" in
bin) bindir ;;
up) up "$name" ;;
down) down "$name" ;;
kubeconfig) kubeconfig "$name" ;;
restart-apiserver) restart_apiserver "$name" ;;
scale) scale "$name" ;;
controller-metrics) controller_metrics "$name" ;;
cpu) cpu "$name" ;;
rollouts-bin) rollouts_bin ;;
helm-bin) helm_bin ;;
rollouts) rollouts "$name" ;;
audit-log) echo "$KWOK_WORKDIR/clusters/$name/logs/audit.log" ;;
*)
	echo "usage: $0 bin|up|down|restart-apiserver|scale|controller-metrics|cpu|kubeconfig|audit-log|rollouts-bin|helm-bin|rollouts [NAME]" >&2
	exit 2
	;;
esac
