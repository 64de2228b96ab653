package cli

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"relabel.dev/relabel/engine"
	"relabel.dev/relabel/rules"
	workload "relabel.dev/relabel/unstructured"
)

const hostile = "<script>alert(1)</script>"

// auditFixture has two namespaces, an owner, a managed-by, a cluster-scoped
// object and hostile text where a user or cluster can put it.
func auditFixture() (AuditReport, auditScope) {
	missing := workload.Report{Selector: workload.Missing, Template: workload.Missing, Metadata: workload.Missing}
	metaOnly := workload.Report{Selector: workload.Missing, Template: workload.Missing, Metadata: workload.Present}
	done := workload.Report{Selector: workload.Present, Template: workload.Present, Metadata: workload.Present}
	other := workload.Report{Selector: workload.Different, Template: workload.Present, Metadata: workload.Present}
	deploy, sts, ro := "apps/v1/deployments", "apps/v1/statefulsets", "demo.relabel.dev/v1alpha1/rollouts"
	findings := []engine.Finding{
		{GVR: ro, Kind: "Rollout", Name: "global", Report: missing},
		{GVR: deploy, Kind: "Deployment", Namespace: "billing", Name: hostile, Report: missing},
		{GVR: deploy, Kind: "Deployment", Namespace: "billing", Name: "ledger", Report: done, Complete: true},
		{GVR: deploy, Kind: "Deployment", Namespace: "shop", Name: "api", Report: metaOnly, ManagedBy: "Helm"},
		{GVR: deploy, Kind: "Deployment", Namespace: "shop", Name: "cart", Report: done, Complete: true},
		{GVR: deploy, Kind: "Deployment", Namespace: "shop", Name: "web", Report: done, Complete: true},
		{GVR: sts, Kind: "StatefulSet", Namespace: "shop", Name: "db", Report: other, Owner: "Database/" + hostile},
	}
	label := rules.Label{Key: "stage", Value: "</style>" + hostile}
	scope := auditScope{Host: "https://cluster.example:6443", Context: "prod-" + hostile, Time: time.Date(2026, 11, 22, 23, 31, 20, 0, time.UTC)}
	return newAuditReport(label, findings), scope
}

func renderAudit(t *testing.T, r AuditReport, scope auditScope) string {
	t.Helper()
	var buf bytes.Buffer
	if err := printAuditHTML(&buf, r, scope); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func renderFixture(t *testing.T) string {
	t.Helper()
	r, scope := auditFixture()
	return renderAudit(t, r, scope)
}

func TestAuditHTMLGolden(t *testing.T) {
	got := renderFixture(t)
	golden := filepath.Join("testdata", "audit.html.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestAuditHTMLGolden -update ./internal/cli to write it)", err)
	}
	if got != string(want) {
		t.Errorf("the page differs from %s; if the change is intended, run go test -run TestAuditHTMLGolden -update ./internal/cli and review the diff", golden)
	}
}

// The page loads nothing: no attribute points anywhere, CSS imports nothing,
// and its Content-Security-Policy refuses anything not inline.
func TestAuditHTMLSelfContained(t *testing.T) {
	page := renderFixture(t)
	z := html.NewTokenizer(strings.NewReader(page))
	csp := false
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			if !errors.Is(z.Err(), io.EOF) {
				t.Fatal(z.Err())
			}
			break
		}
		tok := z.Token()
		switch tt {
		case html.StartTagToken, html.SelfClosingTagToken:
			switch tok.Data {
			case "link", "img", "iframe", "object", "embed", "base", "audio", "video", "source", "image", "use":
				t.Errorf("<%s> in a self-contained page", tok.Data)
			}
			for _, a := range tok.Attr {
				switch strings.TrimPrefix(a.Key, "xlink:") {
				case "src", "href", "srcset", "action", "formaction", "poster", "data", "background":
					t.Errorf("<%s %s=%q> loads something", tok.Data, a.Key, a.Val)
				}
				if a.Key == "http-equiv" && strings.EqualFold(a.Val, "Content-Security-Policy") {
					csp = true
				}
			}
		case html.TextToken:
			if text := strings.ToLower(tok.Data); strings.Contains(text, "url(") || strings.Contains(text, "@import") || strings.Contains(text, "fetch(") {
				t.Errorf("inline text loads something: %q", tok.Data)
			}
		}
	}
	if !csp || !strings.Contains(page, "default-src 'none'") {
		t.Error("no Content-Security-Policy with default-src 'none'")
	}
	for _, external := range []string{`src="http`, `href="http`, `src="//`, `href="//`} {
		if strings.Contains(page, external) {
			t.Errorf("page contains %s", external)
		}
	}
}

func TestAuditHTMLEscapes(t *testing.T) {
	page := renderFixture(t)
	if n := strings.Count(page, "<script>"); n != 1 {
		t.Errorf("%d <script> tags, want only the page's own", n)
	}
	if strings.Count(page, "</style>") != 1 {
		t.Error("the label value closed the style element")
	}
	for _, want := range []string{
		"&lt;script&gt;alert(1)&lt;/script&gt;",                     // the name
		"stage=&lt;/style&gt;&lt;script&gt;alert(1)&lt;/script&gt;", // the label
		"Database/&lt;script&gt;",                                   // the owner
		"prod-&lt;script&gt;",                                       // the context
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks the escaped %s", want)
		}
	}
}

func TestAuditHTMLCounts(t *testing.T) {
	page := auditPageDOM(t, renderFixture(t))
	for _, tc := range []struct {
		id   string
		want string
	}{
		{"total-objects", "7"},
		{"total-labelled", "3"},
		{"total-lacking", "4"},
	} {
		if got := textOf(page.byID[tc.id]); got != tc.want {
			t.Errorf("#%s = %q, want %q", tc.id, got, tc.want)
		}
	}
	wantRows := map[string][][]string{
		// name, bar, labelled, lacking, workloads
		"namespaces": {{"cluster-scoped", "", "0", "1", "1"}, {"billing", "", "1", "1", "2"}, {"shop", "", "2", "2", "4"}},
		"kinds":      {{"Deployment", "apps/v1/deployments", "3", "2", "5"}, {"StatefulSet", "apps/v1/statefulsets", "0", "1", "1"}, {"Rollout", "demo.relabel.dev/v1alpha1/rollouts", "0", "1", "1"}},
		"lacking": {
			{"", "Rollout", "global", "missing", "missing", "missing", "", ""},
			{"billing", "Deployment", hostile, "missing", "missing", "missing", "", ""},
			{"shop", "Deployment", "api", "missing", "missing", "present", "", "Helm"},
			{"shop", "StatefulSet", "db", "different", "present", "present", "Database/" + hostile, ""},
		},
	}
	for id, want := range wantRows {
		got := rowsOf(page.byID[id])
		if len(got) != len(want) {
			t.Errorf("#%s has %d rows, want %d: %q", id, len(got), len(want), got)
			continue
		}
		for i := range want {
			if strings.Join(got[i], "|") != strings.Join(want[i], "|") {
				t.Errorf("#%s row %d = %q, want %q", id, i, got[i], want[i])
			}
		}
	}
	// shop, the largest namespace, fills the scale: 2 labelled and 2 lacking of 4.
	bars := page.all("rect")
	if len(bars) != 6 || attr(bars[4], "width") != "50.00" || attr(bars[5], "x") != "50.00" || attr(bars[5], "width") != "50.00" {
		t.Errorf("bars of shop: %v", bars)
	}
}

func TestAuditHTMLEmpty(t *testing.T) {
	r := newAuditReport(rules.Label{Key: "stage", AnyValue: true}, nil)
	page := renderAudit(t, r, auditScope{Host: "https://h", Namespace: "shop", Time: time.Unix(0, 0)})
	for _, want := range []string{"No workloads found.", "<dd>shop</dd>"} {
		if !strings.Contains(page, want) {
			t.Errorf("empty report lacks %q", want)
		}
	}
	r = newAuditReport(rules.Label{Key: "stage", AnyValue: true}, []engine.Finding{{GVR: "apps/v1/deployments", Kind: "Deployment", Namespace: "shop", Name: "web", Complete: true}})
	if page := renderAudit(t, r, auditScope{}); !strings.Contains(page, "Every workload carries the label.") || strings.Contains(page, `id="lacking"`) {
		t.Error("a report without findings shows a table of findings")
	}
}

func TestOutputFormatPerCommand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"kinds", "-o", "html"}, `--output "html": want table, wide, json or yaml`},
		{[]string{"--label", "stage=x", "-o", "html"}, `--output "html": want table, wide, json or yaml`},
		{[]string{"audit", "--label", "stage", "-o", "xml"}, `--output "xml": want table, wide, json, yaml or html`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			app := NewApp("relabel", BuildInfo{}, strings.NewReader(""), &stdout, &stderr)
			err := app.Run(slices.Concat([]string{"relabel"}, tc.args, []string{"--kubeconfig", "/nonexistent"}))
			var usage UsageError
			if !errors.As(err, &usage) || err.Error() != tc.want {
				t.Errorf("error %v, want the usage error %q", err, tc.want)
			}
			if stdout.Len() > 0 {
				t.Errorf("wrote %q", stdout.String())
			}
		})
	}
}

// dom is a parsed page, with its elements by id.
type dom struct {
	root *html.Node
	byID map[string]*html.Node
}

func auditPageDOM(t *testing.T, page string) dom {
	t.Helper()
	root, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	d := dom{root: root, byID: map[string]*html.Node{}}
	for n := range root.Descendants() {
		if id := attr(n, "id"); id != "" {
			d.byID[id] = n
		}
	}
	return d
}

func (d dom) all(tag string) []*html.Node {
	var found []*html.Node
	for n := range d.root.Descendants() {
		if n.Type == html.ElementNode && n.Data == tag {
			found = append(found, n)
		}
	}
	return found
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func textOf(n *html.Node) string {
	if n == nil {
		return ""
	}
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
		}
	}
	return strings.TrimSpace(b.String())
}

// rowsOf returns the text of each cell of each row of a table's body.
func rowsOf(table *html.Node) [][]string {
	var rows [][]string
	if table == nil {
		return nil
	}
	for n := range table.Descendants() {
		if n.Type != html.ElementNode || n.Data != "tr" || n.Parent.Data != "tbody" {
			continue
		}
		var cells []string
		for c := range n.ChildNodes() {
			if c.Type == html.ElementNode {
				cells = append(cells, textOf(c))
			}
		}
		rows = append(rows, cells)
	}
	return rows
}
