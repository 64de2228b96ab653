package cli

import (
	"errors"
	"testing"
)

func TestParseConcurrency(t *testing.T) {
	for _, tc := range []struct {
		in           string
		start, limit int
		bad          bool
	}{
		{in: "auto", start: autoConcurrency, limit: maxAutoConcurrency},
		{in: "1", start: 1, limit: 1},
		{in: "200", start: 200, limit: 200},
		{in: "0", bad: true},
		{in: "-3", bad: true},
		{in: "fast", bad: true},
		{in: "", bad: true},
	} {
		start, limit, err := parseConcurrency(tc.in)
		if tc.bad {
			if _, ok := errors.AsType[UsageError](err); !ok {
				t.Errorf("%q: error %v, want a usage error", tc.in, err)
			}
			continue
		}
		if err != nil || start != tc.start || limit != tc.limit {
			t.Errorf("%q: %d, %d, %v; want %d, %d", tc.in, start, limit, err, tc.start, tc.limit)
		}
	}
}
