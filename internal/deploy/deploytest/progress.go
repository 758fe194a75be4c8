package deploytest

import (
	"fmt"
	"strings"
	"sync"

	"github.com/shipbot/shipbot/internal/deploy"
)

// Progress records what a driver reports, safe for concurrent use.
type Progress struct {
	mu    sync.Mutex
	lines []string
}

var _ deploy.Progress = (*Progress)(nil)

// Step implements deploy.Progress; it records "step NAME STATE DETAIL".
func (p *Progress) Step(name string, s deploy.StepState, detail string) {
	p.add(fmt.Sprintf("step %s %s %s", name, s, detail))
}

// Output implements deploy.Progress.
func (p *Progress) Output(line string) { p.add(line) }

func (p *Progress) add(l string) {
	p.mu.Lock()
	p.lines = append(p.lines, l)
	p.mu.Unlock()
}

// Text is everything reported so far, one line each, in order.
func (p *Progress) Text() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}
