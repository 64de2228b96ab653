package engine

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// manifestDiff shows, as unified-diff lines with a little context, how "to"
// differs from "from" once both are rendered as YAML.
func manifestDiff(fromName, toName string, from, to *unstructured.Unstructured) (string, error) {
	a, err := yaml.Marshal(from.Object)
	if err != nil {
		return "", fmt.Errorf("rendering %s: %w", fromName, err)
	}
	b, err := yaml.Marshal(to.Object)
	if err != nil {
		return "", fmt.Errorf("rendering %s: %w", toName, err)
	}
	return fmt.Sprintf("--- %s\n+++ %s\n%s", fromName, toName, diffLines(strings.Split(string(a), "\n"), strings.Split(string(b), "\n"), 2)), nil
}

// diffLines is a longest-common-subsequence line diff; manifests are small.
func diffLines(a, b []string, context int) string {
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type line struct {
		op   byte
		text string
	}
	var lines []line
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			lines = append(lines, line{' ', a[i]})
			i++
			j++
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			lines = append(lines, line{'+', b[j]})
			j++
		default:
			lines = append(lines, line{'-', a[i]})
			i++
		}
	}
	var out strings.Builder
	lastShown := -1
	for k, l := range lines {
		near := false
		for d := -context; d <= context; d++ {
			if k+d >= 0 && k+d < len(lines) && lines[k+d].op != ' ' {
				near = true
				break
			}
		}
		if !near {
			continue
		}
		if lastShown >= 0 && k > lastShown+1 {
			out.WriteString("@@\n")
		}
		out.WriteByte(l.op)
		out.WriteString(l.text)
		out.WriteByte('\n')
		lastShown = k
	}
	return out.String()
}
