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
#
# Everything lives under the user's cache directory (RELABEL_CACHE_DIR), never
# in ~/.kube/config.
set -euo pipefail

K8S_VERSION=v1.37.2
KWOK_VERSION=v0.8.0
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

up() {
	local name=$1 bin kc log
	bin=$(bindir)
	kc=$(kubeconfig "$name")
	log="$KWOK_WORKDIR/$name.up.log"
	# Test processes of several packages may ask at once: one starts, the others reuse.
	mkdir -p "$KWOK_WORKDIR"
	exec 9>"$KWOK_WORKDIR/$name.lock"
	flock 9
	# A cluster started with other arguments (an older version of this script) is replaced.
	local -a args=(
		--runtime binary
		--etcd-binary "$bin/etcd"
		--kube-apiserver-binary "$bin/kube-apiserver"
		--kube-controller-manager-binary "$bin/kube-controller-manager"
		--kube-scheduler-binary "$bin/kube-scheduler"
		--kwok-controller-binary "$bin/kwok"
		--kube-audit-policy "$here/audit-policy.yaml"
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
	want="${args[*]//$here/} $(sha256sum <"$here/audit-policy.yaml" | cut -c1-12)"
	if [[ -f "$kc" && "$(cat "$stamp" 2>/dev/null)" == "$want" ]] &&
		"$bin/kubectl" --kubeconfig "$kc" get --raw /readyz >/dev/null 2>&1; then
		echo "$kc"
		return
	fi
	# A cluster left behind by a killed run or a rebooted machine: start afresh.
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
	exec 9>"$KWOK_WORKDIR/$name.lock"
	flock 9
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
		awk -v c="$(basename "$pidfile" .pid)" -v t="$tick" '{ sub(/^.*\) /, ""); printf "%s %.2f\n", c, ($12 + $13) / t }' \
			"/proc/$(cat "$pidfile")/stat"
	done
}

down() {
	local name=$1 bin
	bin=$(bindir)
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
audit-log) echo "$KWOK_WORKDIR/clusters/$name/logs/audit.log" ;;
*)
	echo "usage: $0 bin|up|down|restart-apiserver|scale|controller-metrics|cpu|kubeconfig|audit-log [NAME]" >&2
	exit 2
	;;
esac
