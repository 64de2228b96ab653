package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/klog/v2"
)

// Events records Kubernetes Events on migrated objects, so that kubectl
// describe tells what happened and when. Unlike client-go's recorder, Wait
// makes sure every event was sent before the process exits.
type Events struct {
	Client typedcorev1.EventsGetter
	wg     sync.WaitGroup
}

// Eventf sends one Normal event about obj in the background.
func (e *Events) Eventf(obj *unstructured.Unstructured, reason, format string, args ...any) {
	if e == nil || e.Client == nil {
		return
	}
	now := metav1.NewTime(time.Now())
	event := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: obj.GetName() + ".", Namespace: obj.GetNamespace()},
		InvolvedObject: corev1.ObjectReference{
			APIVersion: obj.GetAPIVersion(), Kind: obj.GetKind(), Namespace: obj.GetNamespace(), Name: obj.GetName(),
			UID: obj.GetUID(), ResourceVersion: obj.GetResourceVersion(),
		},
		Reason: reason, Message: fmt.Sprintf(format, args...), Type: corev1.EventTypeNormal,
		Source: corev1.EventSource{Component: "relabel"}, FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: "relabel.dev/relabel", ReportingInstance: "relabel",
	}
	namespace := obj.GetNamespace()
	if namespace == "" {
		namespace = metav1.NamespaceDefault
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// Events are a record, not a step: a failure is logged, never fatal.
		if _, err := e.Client.Events(namespace).Create(ctx, event, metav1.CreateOptions{}); err != nil {
			klog.V(2).InfoS("recording an event failed", "object", namespace+"/"+obj.GetName(), "reason", reason, "err", err)
		}
	}()
}

// Wait blocks until every event was sent or given up.
func (e *Events) Wait() {
	if e != nil {
		e.wg.Wait()
	}
}
