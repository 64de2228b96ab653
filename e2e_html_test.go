package main

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"relabel.dev/relabel/internal/testcluster"
)

// Two Deployments carry team=payments everywhere, three lack it somewhere.
const htmlObjects = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: ledger, labels: {app: ledger, team: payments}}
spec:
  replicas: 0
  selector: {matchLabels: {app: ledger, team: payments}}
  template:
    metadata: {labels: {app: ledger, team: payments}}
    spec: {containers: [{name: c, image: example.com/c:1}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: wallet, labels: {app: wallet, team: payments}}
spec:
  replicas: 0
  selector: {matchLabels: {app: wallet, team: payments}}
  template:
    metadata: {labels: {app: wallet, team: payments}}
    spec: {containers: [{name: c, image: example.com/c:1}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: alpha, labels: {app: alpha}}
spec:
  replicas: 0
  selector: {matchLabels: {app: alpha}}
  template:
    metadata: {labels: {app: alpha}}
    spec: {containers: [{name: c, image: example.com/c:1}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: bravo, labels: {app: bravo, team: payments}}
spec:
  replicas: 0
  selector: {matchLabels: {app: bravo}}
  template:
    metadata: {labels: {app: bravo}}
    spec: {containers: [{name: c, image: example.com/c:1}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: charlie, labels: {app: charlie, team: checkout}}
spec:
  replicas: 0
  selector: {matchLabels: {app: charlie, team: checkout}}
  template:
    metadata: {labels: {app: charlie, team: checkout}}
    spec: {containers: [{name: c, image: example.com/c:1}]}
`

// The bar colours of the page's stylesheet.
var (
	labelledColour = color.RGBA{0x00, 0x72, 0xb2, 0xff}
	lackingColour  = color.RGBA{0xd5, 0x5e, 0x00, 0xff}
)

// TestAuditHTMLInBrowser audits a namespace on the cluster into an HTML page
// and has Chromium render it: the bars are drawn and the table's script runs.
func TestAuditHTMLInBrowser(t *testing.T) {
	c := testcluster.Get(t)
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("the HTML report is checked in Chromium (.ci/run installs it: apt-get install chromium): %v", err)
	}
	ns := c.Namespace(t)
	c.ApplyYAML(t, ns, []byte(htmlObjects))

	r := relabel(t, c, nil, "audit", "--label", "team=payments", "-n", ns, "--gvr", "deploy", "-o", "html")
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	for _, want := range []string{`id="total-objects">5<`, `id="total-labelled">2<`, `id="total-lacking">3<`, "<dd>" + ns + "</dd>", "team=payments"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	page := filepath.Join(t.TempDir(), "report.html")
	if err := os.WriteFile(page, []byte(r.stdout), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("screenshot", func(t *testing.T) {
		shot := filepath.Join(t.TempDir(), "report.png")
		runChromium(t, chromium, "--screenshot="+shot, "--window-size=1200,900", "file://"+page)
		f, err := os.Open(shot)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		img, err := png.Decode(f)
		if err != nil {
			t.Fatalf("%s: %v", shot, err)
		}
		if b := img.Bounds(); b.Dx() != 1200 || b.Dy() != 900 {
			t.Errorf("screenshot is %dx%d, want 1200x900", b.Dx(), b.Dy())
		}
		labelled, lacking, ok := stackedBar(img)
		if !ok {
			t.Fatalf("no bar of labelled (%v) then lacking (%v) pixels in %s", labelledColour, lackingColour, shot)
		}
		// 2 labelled and 3 lacking: the bar is 40% labelled.
		if share := float64(labelled) / float64(labelled+lacking); share < 0.38 || share > 0.42 {
			t.Errorf("bar is %d px labelled and %d px lacking: %.2f labelled, want 0.40", labelled, lacking, share)
		}
	})

	t.Run("sorted by the script", func(t *testing.T) {
		// #sort=-name asks the script to sort by name, descending, on load;
		// the page itself lists the rows by name ascending.
		dom := runChromium(t, chromium, "--virtual-time-budget=5000", "--dump-dom", "file://"+page+"#sort=-name")
		doc, err := html.Parse(bytes.NewReader(dom))
		if err != nil {
			t.Fatal(err)
		}
		table := elementByID(doc, "lacking")
		if table == nil {
			t.Fatalf("no table of findings in the DOM:\n%s", dom)
		}
		if attrOf(table, "data-sortable") != "ready" {
			t.Errorf("the script did not run: the table is not marked sortable")
		}
		var names, sortedBy []string
		for n := range table.Descendants() {
			if n.Type != html.ElementNode {
				continue
			}
			if n.Data == "th" && attrOf(n, "aria-sort") != "" {
				sortedBy = append(sortedBy, attrOf(n, "data-key")+" "+attrOf(n, "aria-sort"))
			}
			if n.Data == "tr" && n.Parent.Data == "tbody" {
				names = append(names, textOfNode(nthElement(n, 2)))
			}
		}
		if got := strings.Join(names, ","); got != "charlie,bravo,alpha" {
			t.Errorf("rows in order %s, want charlie,bravo,alpha", got)
		}
		if got := strings.Join(sortedBy, ","); got != "name descending" {
			t.Errorf("sorted columns %q, want name descending", got)
		}
	})
}

// runChromium runs headless Chromium with its own profile and returns stdout.
func runChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + t.TempDir(),
		"--no-first-run", "--disable-background-networking", "--disable-component-update"}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

// stackedBar finds a row of pixels with a run of the labelled colour followed
// at once by a run of the lacking colour (at least 20 px each), and returns
// their lengths.
func stackedBar(img image.Image) (labelled, lacking int, ok bool) {
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; {
			start := x
			for x < b.Max.X && near(img.At(x, y), labelledColour) {
				x++
			}
			blue := x - start
			mid := x
			for x < b.Max.X && near(img.At(x, y), lackingColour) {
				x++
			}
			if blue >= 20 && x-mid >= 20 {
				return blue, x - mid, true
			}
			if x == start {
				x++
			}
		}
	}
	return 0, 0, false
}

// near allows for a colour profile's rounding.
func near(c color.Color, want color.RGBA) bool {
	r, g, b, _ := c.RGBA()
	within := func(got uint32, want uint8) bool {
		d := int(got>>8) - int(want)
		return d >= -4 && d <= 4
	}
	return within(r, want.R) && within(g, want.G) && within(b, want.B)
}

func elementByID(root *html.Node, id string) *html.Node {
	for n := range root.Descendants() {
		if n.Type == html.ElementNode && attrOf(n, "id") == id {
			return n
		}
	}
	return nil
}

func attrOf(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// nthElement returns the nth (0-based) element child of n.
func nthElement(n *html.Node, i int) *html.Node {
	for c := range n.ChildNodes() {
		if c.Type != html.ElementNode {
			continue
		}
		if i == 0 {
			return c
		}
		i--
	}
	return nil
}

func textOfNode(n *html.Node) string {
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
