#!/usr/bin/env bash
# The demo: a local cluster with sample workloads that lack a "stage" label,
# then relabel's kinds, audit and migration on them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

kubeconfig=$(bash internal/cluster/cluster.sh up)
bin=$(bash internal/cluster/cluster.sh bin)
export KUBECONFIG=$kubeconfig
kubectl() { "$bin/kubectl" "$@"; }
relabel() { echo; echo "\$ relabel $*"; bin/relabel "$@"; }

echo "Loading sample workloads into namespace demo (kubeconfig: $kubeconfig)"
kubectl delete namespace demo --ignore-not-found --wait >/dev/null
kubectl apply -f testdata/crd-rollout.yaml -f testdata/crd-widget.yaml >/dev/null
kubectl wait --for condition=established crd/rollouts.demo.relabel.dev >/dev/null
kubectl create namespace demo >/dev/null
kubectl -n demo apply -f testdata/demo/workloads.yaml >/dev/null
kubectl -n demo rollout status deployment/web deployment/api statefulset/db daemonset/agent --timeout 2m >/dev/null

# The demo's Rollout kind has no controller here: nothing reports its status,
# so relabel would never take a copy of it for ready. The migration takes the
# apps/v1 kinds; relabel ready shows why the Rollout is left alone.
apps=(--gvr deployments --gvr statefulsets --gvr daemonsets)
relabel kinds
relabel audit --label stage=production -n demo
echo
echo "\$ kubectl -n demo get rollouts -o yaml | relabel ready -f - --rules testdata/demo/rules.yaml"
kubectl -n demo get rollouts -o yaml | bin/relabel ready -f - --rules testdata/demo/rules.yaml || true
relabel --label stage=production -n demo "${apps[@]}" --backup-dir "${TMPDIR:-/tmp}/relabel-demo-backups" --yes
relabel audit --label stage=production -n demo "${apps[@]}" --exit-code
echo
echo "\$ kubectl -n demo get deployments,statefulsets,daemonsets,rollouts -o wide"
kubectl -n demo get deployments,statefulsets,daemonsets,rollouts -o wide
echo
echo "The cluster keeps running; 'make cluster-down' removes it."
