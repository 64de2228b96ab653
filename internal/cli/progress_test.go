package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"relabel.dev/relabel/engine"
	"relabel.dev/relabel/rules"
)

func TestProgressOffTerminal(t *testing.T) {
	item := func(name string) engine.Item {
		return engine.Item{Kind: rules.Kind{Kind: "Deployment", Group: "apps", Version: "v1", Resource: "deployments"}, Namespace: "shop", Name: name}
	}
	for _, tc := range []struct {
		name      string
		steps     bool
		wantLines []string
		notWant   []string
	}{
		{"default: finished objects and the status", false,
			[]string{"Deployment shop/web migrated", "Deployment shop/api failed (1s) copy never ready", "1/3 done, 1 in flight, 1 failed"},
			[]string{"copy-created", "\033["}},
		{"-v 1: every step too", true,
			[]string{"Deployment shop/web copy-created", "Deployment shop/web migrated"},
			[]string{"\033["}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			p := newProgressPrinter(&out, 3, crashPoint{})
			p.steps, p.statusEvery = tc.steps, 0
			now := time.Now()
			p.print(engine.Progress{Time: now, Item: item("web"), Step: engine.StepCopyCreated})
			p.print(engine.Progress{Time: now, Item: item("web"), Step: engine.StepFinished, Outcome: engine.Migrated})
			p.print(engine.Progress{Time: now, Item: item("db"), Step: engine.StepCopyCreated})
			p.print(engine.Progress{Time: now, Item: item("api"), Step: engine.StepFinished, Outcome: engine.Failed, Elapsed: time.Second, Message: "copy never ready"})
			p.close()
			for _, want := range tc.wantLines {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
			for _, not := range tc.notWant {
				if strings.Contains(out.String(), not) {
					t.Errorf("output has %q:\n%s", not, out.String())
				}
			}
		})
	}
}

func TestProgressTimeLeft(t *testing.T) {
	p := newProgressPrinter(&bytes.Buffer{}, 100, crashPoint{})
	defer p.close()
	p.start = time.Now().Add(-time.Minute)
	p.outcomes[engine.Migrated] = 25
	if got := p.status(); !strings.Contains(got, "about 3m0s left") {
		t.Errorf("status %q: 25 of 100 in a minute leaves about 3m", got)
	}
}
