package engine

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"relabel.dev/relabel/rules"
	workload "relabel.dev/relabel/unstructured"
)

// The adopt strategy's record in the cluster. Before the orphan delete,
// every object relabel labels for adoption (pods, a Deployment's
// ReplicaSets) also gets these: which object it was adopted from, that
// object's UID, the label being added, and the object's manifest. A rerun
// from any machine, or a Job pod with a fresh volume, finds there that an
// absent original must come back, and what to bring back. The manifest sits
// next to the pod specs it describes: whoever can read the pods can read it.
const (
	// AdoptUIDLabel holds the orphan-deleted original's UID; it makes the
	// records findable by a label selector.
	AdoptUIDLabel = "relabel.dev/adopt-uid"
	// AdoptOfAnnotation names the original: GROUP/KIND/NAME.
	AdoptOfAnnotation = "relabel.dev/adopt-of"
	// AdoptOriginalAnnotation is the original's manifest, gzipped JSON in base64.
	AdoptOriginalAnnotation = "relabel.dev/adopt-original"
)

// adoptRecord is what a rerun reads back.
type adoptRecord struct {
	uid      string
	label    workload.Label
	original *unstructured.Unstructured
}

func adoptOf(kind rules.Kind, name string) string {
	return kind.Group + "/" + kind.Kind + "/" + name
}

// recordMetadata is the labels and annotations that record the adoption of
// original's dependents.
func recordMetadata(kind rules.Kind, original *unstructured.Unstructured, uid string, label workload.Label) (map[string]any, map[string]any, error) {
	manifest, err := json.Marshal(original.Object)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding the record of %s/%s: %w", original.GetNamespace(), original.GetName(), err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(manifest); err != nil {
		return nil, nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, nil, err
	}
	labels := map[string]any{AdoptUIDLabel: uid}
	annotations := map[string]any{
		AdoptOfAnnotation:         adoptOf(kind, original.GetName()),
		workload.TargetAnnotation: label.String(),
		AdoptOriginalAnnotation:   base64.StdEncoding.EncodeToString(buf.Bytes()),
	}
	return labels, annotations, nil
}

// readRecord decodes the record on obj, if it is one of kind/name's.
func readRecord(obj *unstructured.Unstructured, kind rules.Kind, name string) (*adoptRecord, error) {
	ann := obj.GetAnnotations()
	uid := obj.GetLabels()[AdoptUIDLabel]
	if uid == "" || ann[AdoptOfAnnotation] != adoptOf(kind, name) {
		return nil, nil
	}
	label, err := workload.ParseLabel(ann[workload.TargetAnnotation], false)
	if err != nil {
		return nil, fmt.Errorf("the adopt record on %s records an unusable label: %w", obj.GetName(), err)
	}
	raw, err := base64.StdEncoding.DecodeString(ann[AdoptOriginalAnnotation])
	if err != nil {
		return nil, fmt.Errorf("decoding the adopt record on %s: %w", obj.GetName(), err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("decoding the adopt record on %s: %w", obj.GetName(), err)
	}
	manifest, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("decoding the adopt record on %s: %w", obj.GetName(), err)
	}
	original := &unstructured.Unstructured{}
	if err := original.UnmarshalJSON(manifest); err != nil {
		return nil, fmt.Errorf("decoding the adopt record on %s: %w", obj.GetName(), err)
	}
	return &adoptRecord{uid: uid, label: label, original: original}, nil
}

// recordedResources are where a kind's adopt records are: what adopt labels.
func recordedResources(kind rules.Kind) []rules.Owned {
	var out []rules.Owned
	for _, o := range kind.Owned {
		if o.Action == rules.Relabel {
			out = append(out, o)
		}
	}
	return out
}

// findRecords lists the adopt records of kind in namespace ("" for all),
// keyed by namespace/name of the original.
func findRecords(ctx context.Context, client dynamic.Interface, kind rules.Kind, namespace string) (map[string]*adoptRecord, error) {
	return findRecordsOf(ctx, client, kind, namespace, "")
}

// findRecordsOf is findRecords of one owner's name, or of all when name is
// "": a record carries a whole manifest, and an object in flight reads only
// its own, however many others of the namespace are in flight too.
func findRecordsOf(ctx context.Context, client dynamic.Interface, kind rules.Kind, namespace, name string) (map[string]*adoptRecord, error) {
	out := map[string]*adoptRecord{}
	for _, o := range recordedResources(kind) {
		list, err := client.Resource(o.GVR()).Namespace(namespace).List(ctx, metav1.ListOptions{LabelSelector: AdoptUIDLabel})
		if err != nil {
			return nil, fmt.Errorf("listing %s with adopt records: %w", o.Resource, err)
		}
		for i := range list.Items {
			obj := &list.Items[i]
			of := obj.GetAnnotations()[AdoptOfAnnotation]
			prefix := kind.Group + "/" + kind.Kind + "/"
			if len(of) <= len(prefix) || of[:len(prefix)] != prefix {
				continue
			}
			if name != "" && of[len(prefix):] != name {
				continue
			}
			key := obj.GetNamespace() + "/" + of[len(prefix):]
			if _, seen := out[key]; seen {
				continue
			}
			rec, err := readRecord(obj, kind, of[len(prefix):])
			if err != nil {
				return nil, err
			}
			if rec != nil {
				out[key] = rec
			}
		}
	}
	return out, nil
}

// findRecord is the adopt record of this object, or nil.
func (om objectMigration) findRecord(ctx context.Context) (*adoptRecord, error) {
	records, err := findRecordsOf(ctx, om.Dynamic, om.item.Kind, om.item.Namespace, om.item.Name)
	if err != nil {
		return nil, errorf(om.item, "%w", err)
	}
	return records[om.item.Namespace+"/"+om.item.Name], nil
}
