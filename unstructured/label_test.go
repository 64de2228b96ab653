package unstructured

import (
	"errors"
	"strings"
	"testing"
)

func TestParseLabel(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	long64 := strings.Repeat("a", 64)
	tests := []struct {
		name     string
		in       string
		optional bool
		want     Label
		// wantErr is a part of the error message; empty when no error is expected.
		wantErr string
	}{
		{name: "key and value", in: "stage=production", want: Label{Key: "stage", Value: "production"}},
		{name: "prefixed key", in: "example.com/stage=prod", want: Label{Key: "example.com/stage", Value: "prod"}},
		{name: "empty value", in: "stage=", want: Label{Key: "stage"}},
		{name: "key of 63 characters", in: long63 + "=x", want: Label{Key: long63, Value: "x"}},
		{name: "value of 63 characters", in: "stage=" + long63, want: Label{Key: "stage", Value: long63}},
		{name: "value with dots dashes and underscores", in: "stage=a.b-c_d", want: Label{Key: "stage", Value: "a.b-c_d"}},
		{name: "key only when optional", in: "stage", optional: true, want: Label{Key: "stage", AnyValue: true}},
		{name: "key and value when optional", in: "stage=prod", optional: true, want: Label{Key: "stage", Value: "prod"}},
		{name: "app.kubernetes.io allowed", in: "app.kubernetes.io/name=web", want: Label{Key: "app.kubernetes.io/name", Value: "web"}},
		{name: "domain ending like kubernetes.io allowed", in: "notkubernetes.io/x=y", want: Label{Key: "notkubernetes.io/x", Value: "y"}},
		{name: "kubernetes.io as an unprefixed name allowed", in: "kubernetes.io=y", want: Label{Key: "kubernetes.io", Value: "y"}},

		{name: "missing value", in: "stage", wantErr: "want KEY=VALUE"},
		{name: "empty", in: "", wantErr: "want KEY=VALUE"},
		{name: "empty when optional", in: "", optional: true, wantErr: `key ""`},
		{name: "empty key", in: "=prod", wantErr: `key ""`},
		{name: "key too long", in: long64 + "=x", wantErr: "63"},
		{name: "prefix too long", in: strings.Repeat("a", 254) + "/x=y", wantErr: "253"},
		{name: "value too long", in: "stage=" + long64, wantErr: "value"},
		{name: "space in key", in: "st age=prod", wantErr: "key"},
		{name: "slash in value", in: "stage=prod/1", wantErr: "value"},
		{name: "second equals sign", in: "a=b=c", wantErr: "value"},
		{name: "value ending in a dash", in: "stage=prod-", wantErr: "value"},
		{name: "key ending in a dash", in: "stage-=prod", wantErr: "key"},
		{name: "upper-case prefix", in: "Example.com/stage=prod", wantErr: "key"},
		{name: "two slashes", in: "a/b/c=d", wantErr: "key"},
		{name: "kubernetes.io reserved", in: "kubernetes.io/stage=prod", wantErr: "reserved"},
		{name: "k8s.io reserved", in: "k8s.io/stage=prod", wantErr: "reserved"},
		{name: "node.kubernetes.io reserved", in: "node.kubernetes.io/stage=prod", wantErr: "reserved"},
		{name: "subdomain of k8s.io reserved", in: "x.k8s.io/stage=prod", wantErr: "reserved"},
		{name: "subdomain of app.kubernetes.io reserved", in: "a.app.kubernetes.io/stage=prod", wantErr: "reserved"},
		{name: "reserved when optional", in: "kubernetes.io/stage", optional: true, wantErr: "reserved"},
		{name: "relabel's own temp key", in: TempLabelKey + "=x", wantErr: "relabel"},
		{name: "relabel's own temp key when optional", in: TempLabelKey, optional: true, wantErr: "relabel"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseLabel(tc.in, tc.optional)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseLabel(%q) = %+v, want an error containing %q", tc.in, got, tc.wantErr)
				}
				if !errors.Is(err, ErrInvalidLabel) {
					t.Errorf("error %v does not wrap ErrInvalidLabel", err)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %q does not contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseLabel(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("ParseLabel(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestLabelString(t *testing.T) {
	tests := []struct {
		name string
		l    Label
		want string
	}{
		{"key and value", Label{Key: "stage", Value: "prod"}, "stage=prod"},
		{"empty value", Label{Key: "stage"}, "stage="},
		{"any value", Label{Key: "stage", AnyValue: true}, "stage"},
		{"any value ignores a value", Label{Key: "stage", Value: "x", AnyValue: true}, "stage"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.l.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
			back, err := ParseLabel(tc.want, true)
			if err != nil {
				t.Fatalf("ParseLabel(%q): %v", tc.want, err)
			}
			if back.String() != tc.want {
				t.Errorf("round trip: %q became %q", tc.want, back.String())
			}
		})
	}
}
