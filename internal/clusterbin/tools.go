//go:build tools

// Package clusterbin pins the Kubernetes components that the local test
// cluster runs. It is its own module so that relabel's go.mod stays small.
package clusterbin

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
