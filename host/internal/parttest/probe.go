package parttest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/vocab"
)

// ProbeElement is the host element app code calls to tell the test it runs, and to be held.
const ProbeElement = "services.Probe"

// Probe serves ProbeElement as the sandbox's host: hit(name) reports that the code got there;
// gate(name) does the same and then holds the code until the test opens the gate, or until its
// run ends (then it reports "ended:"+name). Calls to any other host element fail as not found.
type Probe struct {
	who   string
	mu    sync.Mutex
	gates map[string]chan struct{}
	hits  chan string
}

// NewProbe returns a probe with every gate shut. who names the code that calls it ("handler",
// "task function") in the test's failure messages.
func NewProbe(who string) *Probe {
	return &Probe{who: who, gates: map[string]chan struct{}{}, hits: make(chan string, 1024)}
}

func (p *Probe) gate(name string) chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	g, ok := p.gates[name]
	if !ok {
		g = make(chan struct{})
		p.gates[name] = g
	}
	return g
}

// Open lets all code held at gate name go on, now and later.
func (p *Probe) Open(name string) {
	g := p.gate(name)
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-g:
	default:
		close(g)
	}
}

// ReleaseAll opens every gate used so far, so that no held code keeps a part from stopping.
func (p *Probe) ReleaseAll() {
	p.mu.Lock()
	names := make([]string, 0, len(p.gates))
	for n := range p.gates {
		names = append(names, n)
	}
	p.mu.Unlock()
	for _, n := range names {
		p.Open(n)
	}
}

func (p *Probe) report(name string) {
	select {
	case p.hits <- name:
	default: // nobody is listening for hits: do not hold the code for it
	}
}

// CallHost serves the sandbox's calls to ProbeElement (jsvm.HostCaller).
func (p *Probe) CallHost(ctx context.Context, call jsvm.HostCall) (any, error) {
	if call.FullName != ProbeElement {
		return nil, vocab.Errorf(vocab.CodeNotFound, "these tests serve no host element %s", call.FullName)
	}
	name := fmt.Sprint(call.Args...)
	p.report(name)
	if call.Method == "gate" {
		select {
		case <-p.gate(name):
		case <-ctx.Done():
			p.report("ended:" + name)
			return nil, ctx.Err()
		}
	}
	return name, nil
}

// AwaitHit waits until code called the probe with name (hits of other names are dropped), and
// fails the test after WaitLimit.
func (p *Probe) AwaitHit(t testing.TB, name string) {
	t.Helper()
	timeout := time.After(WaitLimit)
	for {
		select {
		case got := <-p.hits:
			if got == name {
				return
			}
		case <-timeout:
			t.Fatalf("no %s reached the probe with %q", p.who, name)
		}
	}
}
