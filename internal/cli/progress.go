package cli

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
	"k8s.io/klog/v2"

	"relabel.dev/relabel/engine"
)

// progressPrinter reports a migration as it goes. On a terminal a status line
// (done, in flight, failed, elapsed, time left) updates in place under a line
// per finished object. Elsewhere, in logs and CI, it prints plain lines: one
// per finished object and the status every statusEvery. A line per step of
// every object only with -v 1 or more: at 500 objects that is 3,500 lines.
type progressPrinter struct {
	mu          sync.Mutex
	w           io.Writer
	terminal    bool
	colour      bool
	steps       bool
	statusEvery time.Duration
	crash       crashPoint
	total       int
	start       time.Time
	lastStatus  time.Time
	started     map[string]bool
	outcomes    map[engine.Outcome]int
	done        chan struct{}
	wg          sync.WaitGroup
}

func newProgressPrinter(w io.Writer, total int, crash crashPoint) *progressPrinter {
	f, ok := w.(*os.File)
	terminal := ok && term.IsTerminal(int(f.Fd()))
	now := time.Now()
	p := &progressPrinter{
		w: w, terminal: terminal, colour: terminal && colourWanted(), steps: klog.V(1).Enabled(),
		statusEvery: 10 * time.Second, crash: crash, total: total, start: now, lastStatus: now,
		started: map[string]bool{}, outcomes: map[engine.Outcome]int{}, done: make(chan struct{}),
	}
	if terminal {
		// The clock on the status line moves even while every object waits.
		p.wg.Go(func() {
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-p.done:
					return
				case <-tick.C:
					p.mu.Lock()
					p.redrawStatus()
					p.mu.Unlock()
				}
			}
		})
	}
	return p
}

// colourWanted honours https://no-color.org and dumb terminals.
func colourWanted() bool {
	_, noColour := os.LookupEnv("NO_COLOR")
	return !noColour && os.Getenv("TERM") != "dumb"
}

func (p *progressPrinter) print(pr engine.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.started[pr.Item.Key()] = true
	switch {
	case pr.Step == engine.StepFinished:
		p.outcomes[pr.Outcome]++
		p.line(fmt.Sprintf("%s %s %s %s (%s)", pr.Time.Format("15:04:05"), pr.Item.Kind.Kind, pr.Item.Ref(),
			p.paint(pr.Outcome), pr.Elapsed.Round(100*time.Millisecond)), pr.Message)
	case p.steps:
		p.line(fmt.Sprintf("%s %s %s %s (%s)", pr.Time.Format("15:04:05"), pr.Item.Kind.Kind, pr.Item.Ref(),
			pr.Step, pr.Elapsed.Round(100*time.Millisecond)), pr.Message)
	}
	if p.terminal {
		p.redrawStatus()
	} else if time.Since(p.lastStatus) >= p.statusEvery {
		p.lastStatus = time.Now()
		fmt.Fprintln(p.w, p.status())
	}
	p.crash.after(pr.Step) // only in a binary built with -tags relabeltest
}

// notice prints lines that are not about one object, such as what Ctrl-C
// does, above the status line.
func (p *progressPrinter) notice(lines ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range lines {
		p.line(l, "")
	}
	if p.terminal {
		p.redrawStatus()
	}
}

// line prints one line above the status line.
func (p *progressPrinter) line(text, message string) {
	if message != "" {
		text += " " + message
	}
	if p.terminal {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintln(p.w, text)
}

func (p *progressPrinter) redrawStatus() {
	fmt.Fprint(p.w, "\r\033[K"+p.status())
}

// status is "12/500 done, 40 in flight, 1 failed, 2m10s elapsed, about 8m left".
func (p *progressPrinter) status() string {
	migrated, failed := p.outcomes[engine.Migrated], p.outcomes[engine.Failed]
	finished := migrated + failed + p.outcomes[engine.Interrupted] + p.outcomes[engine.Skipped]
	elapsed := time.Since(p.start)
	s := fmt.Sprintf("%d/%d done, %d in flight, %d failed, %s elapsed", migrated, p.total,
		len(p.started)-finished, failed, elapsed.Round(time.Second))
	if finished > 0 && finished < p.total {
		// Objects run in parallel, so the rate so far is the best guess.
		left := time.Duration(float64(elapsed) / float64(finished) * float64(p.total-finished))
		s += ", about " + left.Round(time.Second).String() + " left"
	}
	return s
}

func (p *progressPrinter) paint(o engine.Outcome) string {
	if !p.colour {
		return string(o)
	}
	code := map[engine.Outcome]string{engine.Migrated: "32", engine.Failed: "31", engine.Interrupted: "33"}[o]
	if code == "" {
		return string(o)
	}
	return "\033[" + code + "m" + string(o) + "\033[0m"
}

// close ends the status line; off a terminal it prints the last status.
func (p *progressPrinter) close() {
	close(p.done)
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.terminal {
		p.redrawStatus()
		fmt.Fprintln(p.w)
	} else if len(p.started) > 0 {
		fmt.Fprintln(p.w, p.status())
	}
}
