package main

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func pod(uid string, ready bool, terminating bool) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid)}}
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}, {Type: corev1.PodReady, Status: status}}
	if terminating {
		now := metav1.Now()
		p.DeletionTimestamp = &now
	}
	return p
}

func TestIsReady(t *testing.T) {
	tests := []struct {
		name string
		pod  *corev1.Pod
		want bool
	}{
		{"ready", pod("a", true, false), true},
		{"not ready", pod("a", false, false), false},
		{"ready but terminating", pod("a", true, true), false},
		{"no conditions", &corev1.Pod{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isReady(tt.pod); got != tt.want {
				t.Errorf("isReady = %v, want %v", got, tt.want)
			}
		})
	}
}

// A rollout in miniature: two ready pods, a surge pod, one old pod
// terminating and gone. Events before the start only fill the cache.
func TestCounts(t *testing.T) {
	c := &counts{ready: map[types.UID]bool{}}
	c.set(pod("a", false, false)) // the first list, still filling: no sample
	c.set(pod("a", true, false))
	c.set(pod("b", true, false))
	if pods, ready := c.start(); pods != 2 || ready != 2 {
		t.Fatalf("start: %d pods, %d ready; want 2, 2", pods, ready)
	}
	c.set(pod("c", false, false)) // surge: 3 pods, 2 ready
	c.set(pod("a", true, true))   // a terminating: 1 ready
	c.set(pod("c", true, false))  // 2 ready
	c.remove("a")                 // 2 pods
	c.remove("x")                 // unknown: no change
	if c.maxPods != 3 || c.minRdy != 1 || c.samples != 6 || len(c.ready) != 2 || c.nready != 2 {
		t.Errorf("max %d pods, min %d ready, %d samples, end %d pods %d ready; want 3, 1, 6, 2, 2",
			c.maxPods, c.minRdy, c.samples, len(c.ready), c.nready)
	}
}
