package manifests

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
)

// edit adds text to the original bytes, never removes any: whole lines
// before line (0-based), or, with col >= 0, text at byte col of that line.
type edit struct {
	line int
	col  int // -1: whole lines inserted before line
	text string
}

// splitLines keeps each line's newline.
func splitLines(data []byte) []string {
	var out []string
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			out = append(out, string(data))
			break
		}
		out = append(out, string(data[:i+1]))
		data = data[i+1:]
	}
	return out
}

// diffLine is one line of the result: kept, added, or (for a line that
// gained inline text) removed and added again.
type diffLine struct {
	op   byte
	text string
}

// apply returns the new content and the line-by-line changes.
func apply(lines []string, edits []edit) ([]byte, []diffLine) {
	sort.SliceStable(edits, func(i, j int) bool { return edits[i].line < edits[j].line })
	// New lines end as the file's first line does.
	if len(lines) > 0 && strings.HasSuffix(lines[0], "\r\n") {
		for i := range edits {
			edits[i].text = strings.ReplaceAll(edits[i].text, "\n", "\r\n")
		}
	}
	var out strings.Builder
	var diff []diffLine
	k := 0
	for i := 0; i <= len(lines); i++ {
		var inline []edit
		for ; k < len(edits) && edits[k].line == i; k++ {
			if edits[k].col >= 0 {
				inline = append(inline, edits[k])
				continue
			}
			if i == len(lines) && i > 0 && !strings.HasSuffix(lines[i-1], "\n") {
				out.WriteString("\n")
			}
			for _, l := range splitLines([]byte(edits[k].text)) {
				out.WriteString(l)
				diff = append(diff, diffLine{'+', l})
			}
		}
		if i == len(lines) {
			break
		}
		line := lines[i]
		if len(inline) == 0 {
			out.WriteString(line)
			diff = append(diff, diffLine{' ', line})
			continue
		}
		// Right to left, so that earlier columns stay valid.
		sort.SliceStable(inline, func(a, b int) bool { return inline[a].col > inline[b].col })
		changed := line
		for _, e := range inline {
			changed = changed[:e.col] + e.text + changed[e.col:]
		}
		out.WriteString(changed)
		diff = append(diff, diffLine{'-', line}, diffLine{'+', changed})
	}
	return []byte(out.String()), diff
}

// unifiedDiff renders the changes as a unified diff with three lines of context.
func unifiedDiff(path string, diff []diffLine) string {
	const context = 3
	var b strings.Builder
	name := strings.TrimPrefix(path, "/")
	fmt.Fprintf(&b, "--- a/%s\n+++ b/%s\n", name, name)
	oldNo := make([]int, len(diff)+1) // original lines before diff[i]
	newNo := make([]int, len(diff)+1)
	for i, d := range diff {
		oldNo[i+1], newNo[i+1] = oldNo[i], newNo[i]
		if d.op != '+' {
			oldNo[i+1]++
		}
		if d.op != '-' {
			newNo[i+1]++
		}
	}
	for i := 0; i < len(diff); {
		if diff[i].op == ' ' {
			i++
			continue
		}
		start := max(i-context, 0)
		end := i // one past the last change of the hunk
		for j := i; j < len(diff); j++ {
			if diff[j].op != ' ' {
				end = j + 1
			} else if j-end >= 2*context {
				break
			}
		}
		stop := min(end+context, len(diff))
		oldLen, newLen := oldNo[stop]-oldNo[start], newNo[stop]-newNo[start]
		fmt.Fprintf(&b, "@@ -%s +%s @@\n", hunkRange(oldNo[start], oldLen), hunkRange(newNo[start], newLen))
		for _, d := range diff[start:stop] {
			b.WriteByte(d.op)
			b.WriteString(d.text)
			if !strings.HasSuffix(d.text, "\n") {
				b.WriteString("\n\\ No newline at end of file\n")
			}
		}
		i = stop
	}
	return b.String()
}

func hunkRange(before, n int) string {
	if n == 0 {
		return fmt.Sprintf("%d,0", before)
	}
	if n == 1 {
		return fmt.Sprintf("%d", before+1)
	}
	return fmt.Sprintf("%d,%d", before+1, n)
}
