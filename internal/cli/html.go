package cli

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"sort"
	"time"

	"relabel.dev/relabel/engine"
)

// The page is one file with inline CSS and JS: it must open anywhere, offline,
// and its Content-Security-Policy forbids loading anything else.
//
//go:embed audit.html.tmpl
var auditHTMLSource string

var auditHTMLTemplate = template.Must(template.New("audit").Parse(auditHTMLSource))

// auditScope is what the HTML report says about where and when it was made.
type auditScope struct {
	Host      string
	Context   string
	Namespace string // empty: every namespace
	Time      time.Time
}

// namespaceCount counts the objects of one namespace.
type namespaceCount struct {
	Namespace string
	Objects   int
	Complete  int
	Lacking   int
	// Bar lengths in percent of the largest namespace, so bars compare.
	CompleteWidth, LackingWidth string
}

type auditPage struct {
	Report       AuditReport
	Scope        auditScope
	Namespaces   []namespaceCount
	Lacking      []engine.Finding
	HasOwner     bool
	HasManagedBy bool
}

func newAuditPage(r AuditReport, scope auditScope) auditPage {
	p := auditPage{Report: r, Scope: scope}
	perNamespace := map[string]*namespaceCount{}
	for _, f := range r.Items {
		n := perNamespace[f.Namespace]
		if n == nil {
			n = &namespaceCount{Namespace: f.Namespace}
			perNamespace[f.Namespace] = n
		}
		n.Objects++
		if f.Complete {
			n.Complete++
			continue
		}
		n.Lacking++
		p.Lacking = append(p.Lacking, f)
		p.HasOwner = p.HasOwner || f.Owner != ""
		p.HasManagedBy = p.HasManagedBy || f.ManagedBy != ""
	}
	most := 0
	for _, n := range perNamespace {
		most = max(most, n.Objects)
	}
	for _, n := range perNamespace {
		n.CompleteWidth = percent(n.Complete, most)
		n.LackingWidth = percent(n.Lacking, most)
		p.Namespaces = append(p.Namespaces, *n)
	}
	sort.Slice(p.Namespaces, func(i, j int) bool { return p.Namespaces[i].Namespace < p.Namespaces[j].Namespace })
	return p
}

func percent(part, whole int) string {
	return fmt.Sprintf("%.2f", 100*float64(part)/float64(whole))
}

// printAuditHTML writes the report as a self-contained HTML page.
func printAuditHTML(w io.Writer, r AuditReport, scope auditScope) error {
	if err := auditHTMLTemplate.Execute(w, newAuditPage(r, scope)); err != nil {
		return fmt.Errorf("writing the HTML report: %w", err)
	}
	return nil
}
