package engine

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
)

func TestShows(t *testing.T) {
	obj := func(uid, rv string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{}}
		u.SetUID(types.UID(uid))
		u.SetResourceVersion(rv)
		return u
	}
	created := write{uid: "a", resourceVersion: "20"}
	deleted := write{uid: "a", resourceVersion: "20", deleted: true}
	for _, tc := range []struct {
		name    string
		w       write
		cached  *unstructured.Unstructured
		want    bool
		wantErr bool
	}{
		{"create not seen yet", created, nil, false, false},
		{"create seen", created, obj("a", "20"), true, false},
		{"create seen, changed since", created, obj("a", "31"), true, false},
		{"cache still has the version before the update", created, obj("a", "19"), false, false},
		{"replaced since by another object", created, obj("b", "5"), true, false},
		{"9 before 10: not a string comparison", write{uid: "a", resourceVersion: "10"}, obj("a", "9"), false, false},
		{"delete seen: gone", deleted, nil, true, false},
		{"delete not seen: the version deleted", deleted, obj("a", "20"), false, false},
		{"delete seen: terminating", deleted, obj("a", "21"), true, false},
		{"delete seen: another object", deleted, obj("b", "21"), true, false},
		{"not comparable", created, obj("a", "x1"), false, true},
		{"empty version", created, obj("a", ""), false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := shows(tc.w, tc.cached)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("shows = %v, %v; want %v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
