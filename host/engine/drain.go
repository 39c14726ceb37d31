package engine

import (
	"context"
	"fmt"
	"sync"
)

// Drain is the first half of a graceful stop (SIGTERM in `trellis serve`): the engine takes no
// more deliveries — its subscriptions close, and what they had prefetched stays pending on the
// bus for the next host — while the runs already under way go on to their end, rows and
// acknowledgement included, until ctx ends. Stop follows and cancels whatever has not finished:
// those deliveries stay pending too, and their next host records the cut-off attempt. Without
// Drain, Stop cut every run off at once, so a host stopped by a deploy left its nodes "running"
// until another host took them over.
//
// A draining engine still sends events and serves node operations; Reload subscribes nothing.
func (e *Engine) Drain(ctx context.Context) error {
	e.mu.Lock()
	if !e.started {
		e.mu.Unlock()
		return nil
	}
	idle := e.inflight.drain()
	for name, sub := range e.subs {
		sub.close()
		delete(e.subs, name)
	}
	e.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("engine: drain: %d deliveries still running: %w", e.inflight.running(), ctx.Err())
	}
}

// runGate counts the runs under way and, once drain is called, lets no new one in.
type runGate struct {
	mu       sync.Mutex
	n        int
	closed   bool
	idle     chan struct{} // closed when n reaches 0 after drain
	idleDone bool
}

// open lets runs in again (Start after a Stop).
func (g *runGate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed, g.idle, g.idleDone = false, nil, false
}

// enter admits one run, or reports false while draining.
func (g *runGate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.n++
	return true
}

func (g *runGate) exit() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n--
	if g.n == 0 && g.idle != nil && !g.idleDone {
		close(g.idle)
		g.idleDone = true
	}
}

// drain lets no new run in and answers a channel closed once none is running.
func (g *runGate) drain() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	if g.idle == nil {
		g.idle = make(chan struct{})
		if g.n == 0 {
			close(g.idle)
			g.idleDone = true
		}
	}
	return g.idle
}

func (g *runGate) draining() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

func (g *runGate) running() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}
