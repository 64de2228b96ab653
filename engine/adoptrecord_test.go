package engine

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"relabel.dev/relabel/rules"
)

func TestAdoptRecordRoundTrip(t *testing.T) {
	sts, _ := rules.Builtin(schema.GroupKind{Group: "apps", Kind: "StatefulSet"})
	original := deployment("db", 2)
	labels, annotations, err := recordMetadata(sts, original, "uid-db", testLabel)
	if err != nil {
		t.Fatal(err)
	}
	pod := &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{"name": "db-0", "labels": labels, "annotations": annotations}}}
	rec, err := readRecord(pod, sts, "db")
	if err != nil || rec == nil {
		t.Fatalf("readRecord = %v, %v", rec, err)
	}
	if rec.uid != "uid-db" || rec.label != testLabel || !reflect.DeepEqual(rec.original.Object, original.Object) {
		t.Errorf("record %+v, want the original's UID, label and manifest", rec)
	}
	if other, err := readRecord(pod, sts, "web"); err != nil || other != nil {
		t.Errorf("a record of db read as web's: %v, %v", other, err)
	}
	deploy, _ := rules.Builtin(schema.GroupKind{Group: "apps", Kind: "Deployment"})
	if other, err := readRecord(pod, deploy, "db"); err != nil || other != nil {
		t.Errorf("a StatefulSet's record read as a Deployment's: %v, %v", other, err)
	}
}
