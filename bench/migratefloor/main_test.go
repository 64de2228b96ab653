package main

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func deployment() *appsv1.Deployment {
	replicas := int32(2)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name: "app-0", Namespace: "ns", UID: "u", ResourceVersion: "7", Generation: 3,
			Labels:      map[string]string{"app": "app-0"},
			Annotations: map[string]string{"deployment.kubernetes.io/revision": "1", "keep": "me"},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "app-0"}},
		},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2},
	}
}

func TestForCreate(t *testing.T) {
	tests := []struct {
		name       string
		inMetadata bool
	}{
		{"copy: selector and template only", false},
		{"recreated: metadata too", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := deployment()
			d.Spec.Template.Labels = map[string]string{"app": "app-0"}
			out := forCreate(d, "new", "k", "v", tt.inMetadata)
			if out.Name != "new" || out.Namespace != "ns" || out.UID != "" || out.ResourceVersion != "" {
				t.Errorf("metadata %+v: want name new in ns, no UID or resourceVersion", out.ObjectMeta)
			}
			if out.Spec.Selector.MatchLabels["k"] != "v" || out.Spec.Template.Labels["k"] != "v" {
				t.Errorf("selector %v, template %v: want k=v in both", out.Spec.Selector.MatchLabels, out.Spec.Template.Labels)
			}
			if _, ok := out.Labels["k"]; ok != tt.inMetadata {
				t.Errorf("labels %v: k present %v, want %v", out.Labels, ok, tt.inMetadata)
			}
			if _, ok := out.Annotations["deployment.kubernetes.io/revision"]; ok || out.Annotations["keep"] != "me" {
				t.Errorf("annotations %v: want the revision dropped, the rest kept", out.Annotations)
			}
			if _, ok := d.Spec.Selector.MatchLabels["k"]; ok || len(d.Labels) != 1 || len(d.Annotations) != 2 || d.Spec.Template.Labels["k"] != "" {
				t.Errorf("the original changed: %+v", d)
			}
		})
	}
}

func TestAvailable(t *testing.T) {
	now := metav1.Now()
	tests := []struct {
		name   string
		mutate func(*appsv1.Deployment)
		want   bool
	}{
		{"rolled out", func(*appsv1.Deployment) {}, true},
		{"spec not observed yet", func(d *appsv1.Deployment) { d.Generation = 4 }, false},
		{"no status yet", func(d *appsv1.Deployment) { d.Status = appsv1.DeploymentStatus{} }, false},
		{"one not available", func(d *appsv1.Deployment) { d.Status.AvailableReplicas = 1 }, false},
		{"one not updated", func(d *appsv1.Deployment) { d.Status.UpdatedReplicas = 1 }, false},
		{"an old pod left", func(d *appsv1.Deployment) { d.Status.Replicas = 3 }, false},
		{"terminating", func(d *appsv1.Deployment) { d.DeletionTimestamp = &now }, false},
		{"replicas defaulted to 1", func(d *appsv1.Deployment) {
			d.Spec.Replicas = nil
			d.Status = appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := deployment()
			tt.mutate(d)
			if got := available(d); got != tt.want {
				t.Errorf("available = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr bool
	}{
		{"namespace and label", []string{"--namespace", "ns", "--label", "a=b"}, false},
		{"no namespace", []string{"--label", "a=b"}, true},
		{"label without value separator", []string{"--namespace", "ns", "--label", "ab"}, true},
		{"empty key", []string{"--namespace", "ns", "--label", "=b"}, true},
		{"zero concurrency", []string{"--namespace", "ns", "--concurrency", "0"}, true},
		{"an argument", []string{"--namespace", "ns", "extra"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseFlags(tt.args)
			if (err != nil) != tt.wantErr {
				t.Errorf("parseFlags(%q) error %v, want error %v", tt.args, err, tt.wantErr)
			}
		})
	}
}
