package isolate

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-run/trellis/host/jsvm"
)

var _ jsvm.Executor = (*Pool)(nil)

const (
	// failuresBeforeUnavailable is how many starts in a row may fail before executions that find
	// no worker are answered "unavailable" instead of waiting for one.
	failuresBeforeUnavailable = 3
	// firstBackoff and maxBackoff space out starts after a failed one, so a broken worker binary
	// costs one process start every few seconds, not a fork storm.
	firstBackoff = 50 * time.Millisecond
	maxBackoff   = 5 * time.Second
	// stopGrace is how long Close waits for workers to exit on their own before killing them.
	stopGrace = 200 * time.Millisecond
)

// Pool is a jsvm.Executor that runs each execution in one of a set of worker processes and
// kills a worker whose execution breaks a limit the in-process VM cannot enforce, replacing it
// without holding up any other execution. It is safe for concurrent use.
type Pool struct {
	opts    Options
	target  int           // processes to keep: Workers + Spares
	slots   chan struct{} // one token per execution taken at once: Workers × queueDepth
	done    chan struct{} // closed by Close
	wake    chan struct{} // tells the keeper to look at the process count
	kept    chan struct{} // closed when the keeper has stopped
	loadMu  sync.Mutex    // one Load at a time
	execSeq atomic.Uint64
	closing sync.Once

	mu          sync.Mutex
	closed      bool
	src         *jsvm.Source
	version     uint64
	lastVersion uint64 // version numbers are never reused, even for a Load that failed
	procs       map[*proc]struct{}
	open        []*proc       // workers that can take an execution (taken < queueDepth): idle ones most recently used last (the warmest runtimes), busy ones first
	changed     chan struct{} // closed and replaced when open or startErr changes
	startErr    error         // set while starts keep failing

	deltaMu            sync.Mutex
	deltaFrom, deltaTo *jsvm.Source
	deltaFromVersion   uint64
	deltaMsg           *loadMsg
}

// New starts a pool of worker processes and waits until they are ready. It fails, with the
// worker's stderr in the message, when not a single worker starts.
func New(opts Options) (*Pool, error) {
	opts, err := opts.WithDefaults()
	if err != nil {
		return nil, err
	}
	p := &Pool{
		opts: opts, target: opts.Workers + opts.Spares,
		slots: make(chan struct{}, opts.Workers*queueDepth), done: make(chan struct{}),
		wake: make(chan struct{}, 1), kept: make(chan struct{}),
		procs: make(map[*proc]struct{}), changed: make(chan struct{}),
	}
	var (
		wg       sync.WaitGroup
		firstErr error
		errMu    sync.Mutex
	)
	for range p.target {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := p.start()
			if err != nil {
				errMu.Lock()
				firstErr = err
				errMu.Unlock()
				return
			}
			p.add(w)
		}()
	}
	wg.Wait()
	p.mu.Lock()
	n := len(p.procs)
	p.mu.Unlock()
	if n == 0 {
		close(p.done)
		close(p.kept)
		return nil, firstErr
	}
	go p.keep()
	p.kick()
	return p, nil
}

// Load makes src the version new executions run. It is first loaded into one idle worker, whose
// VM's verdict (a compile error, say) is Load's; the other workers get it right after, each
// once its running execution has finished on the version it started with.
func (p *Pool) Load(src *jsvm.Source) error {
	if src == nil {
		return ErrNilSource
	}
	src = sanitize(src)
	p.loadMu.Lock()
	defer p.loadMu.Unlock()
	w, err := p.take(context.Background(), takeForLoad)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.lastVersion++
	version := p.lastVersion
	p.mu.Unlock()
	err = w.load(src, version, p.opts.StartTimeout)
	if err == nil {
		p.mu.Lock()
		p.src, p.version = src, version
		p.mu.Unlock()
	}
	p.release(w, !w.isDead())
	if err != nil {
		return fmt.Errorf("isolate: load: %w", err)
	}
	p.mu.Lock()
	others := make([]*proc, 0, len(p.procs))
	for o := range p.procs {
		if o != w {
			others = append(others, o)
		}
	}
	p.mu.Unlock()
	for _, o := range others {
		go p.sync(o)
	}
	return nil
}

// sync sends the current source version to a worker that does not have it yet.
func (p *Pool) sync(w *proc) {
	p.mu.Lock()
	src, version := p.src, p.version
	p.mu.Unlock()
	w.sendMu.Lock()
	defer w.sendMu.Unlock()
	if w.sentVersion != version && src != nil {
		if err := w.sendLoadLocked(src, version); err != nil {
			w.kill(nil)
		}
	}
}

// Execute runs call in a worker. It waits for a free worker (or ctx, or Close), and returns the
// worker's answer, or the error of the limit the execution broke if the worker had to be killed.
func (p *Pool) Execute(ctx context.Context, call jsvm.Call) (jsvm.Result, error) {
	if p.isClosed() {
		return jsvm.Result{}, jsvm.ErrClosed
	}
	if ctx.Err() != nil {
		return jsvm.Result{}, cancelled(ctx)
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return jsvm.Result{}, cancelled(ctx)
	case <-p.done:
		return jsvm.Result{}, jsvm.ErrClosed
	}
	defer func() { <-p.slots }()
	how := takeOrQueue
	for attempt := 0; ; attempt++ {
		w, err := p.take(ctx, how)
		if err != nil {
			return jsvm.Result{}, err
		}
		p.mu.Lock()
		src, version := p.src, p.version
		p.mu.Unlock()
		res, err, healthy := w.execute(ctx, src, version, call)
		p.release(w, healthy)
		if err == errWithdrawn {
			how, attempt = takeFree, attempt-1 // nothing ran: wait for a free worker this time
			continue
		}
		if u, ok := err.(*unreachedError); ok {
			if attempt < 2 {
				continue // the worker was gone before it got the call: nothing ran, so try another
			}
			return res, u.err
		}
		return res, err
	}
}

// Close stops every worker; executions still running end with jsvm.ErrClosed. It is safe to call
// more than once.
func (p *Pool) Close() error {
	p.closing.Do(func() {
		p.mu.Lock()
		p.closed = true
		procs := make([]*proc, 0, len(p.procs))
		for w := range p.procs {
			procs = append(procs, w)
		}
		p.open = nil
		p.notifyLocked()
		p.mu.Unlock()
		close(p.done)
		var wg sync.WaitGroup
		for _, w := range procs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.stop(&jsvm.Error{Code: jsvm.CodeUnavailable, Message: "isolate: the pool was closed"}, stopGrace)
				<-w.dead
			}()
		}
		wg.Wait()
		<-p.kept
	})
	return nil
}

func (p *Pool) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// queueDepth is how many executions a worker is given at once: the one it runs and up to
// queueDepth-1 queued behind it. Their frames are already in the worker's pipe when the running
// one ends, so the worker starts the next at once instead of idling while its answer travels to
// the host and the next caller is woken, encoded and sent (docs/performance.md: with one at a
// time the workers of a busy host were idle four fifths of the time). A queued execution has not
// started, so a kill of the worker for the running one costs it nothing: it is sent to another
// worker (unreachedError); one still waiting after withdrawAfter is taken back for the next free
// worker, so nothing waits long behind slow or hostile code.
const queueDepth = 8

// takeMode says which workers take may give out.
type takeMode int

const (
	takeOrQueue takeMode = iota // an execution: a free worker, else a place in a busy one's queue
	takeFree                    // an execution withdrawn from a queue: a free worker only
	takeForLoad                 // a Load: any idle worker, spares too (a load takes no slot), never a busy one
)

// take takes a worker for one execution (or a Load), waiting for one if need be: see
// pickLocked.
func (p *Pool) take(ctx context.Context, how takeMode) (*proc, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, jsvm.ErrClosed
		}
		if w := p.pickLocked(how); w != nil {
			w.taken++
			if w.taken >= queueDepth {
				p.dropIdleLocked(w)
			}
			p.mu.Unlock()
			return w, nil
		}
		if p.startErr != nil && len(p.procs) == 0 {
			err := p.startErr
			p.mu.Unlock()
			return nil, &jsvm.Error{Code: jsvm.CodeUnavailable, Message: fmt.Sprintf("isolate: no worker process is running and new ones fail to start: %v", err)}
		}
		ch := p.changed
		p.mu.Unlock()
		p.kick()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, cancelled(ctx)
		case <-p.done:
			return nil, jsvm.ErrClosed
		}
	}
}

// pickLocked is the worker take gives out: the most recently used idle one, while fewer than
// Workers run executions (the spares are there to replace a killed worker at once, not to run
// more at a time); else, for an execution that may queue, the busy one (not retiring, its
// running execution younger than withdrawAfter) with the shortest queue, of those the one whose
// running execution began last.
func (p *Pool) pickLocked(how takeMode) *proc {
	busy := 0
	for w := range p.procs {
		if w.taken > 0 {
			busy++
		}
	}
	var behind *proc
	var behindSince time.Time
	for i := len(p.open) - 1; i >= 0; i-- {
		w := p.open[i]
		if w.taken == 0 {
			if how == takeForLoad || busy < p.opts.Workers {
				return w
			}
			continue
		}
		if how == takeOrQueue && !w.retiring() {
			// Behind the shortest queue; of those, the execution that began last (the likeliest
			// to end soon). Never behind one that has run for withdrawAfter already: what queued
			// there would only be withdrawn.
			since := w.since()
			if time.Since(since) > withdrawAfter {
				continue
			}
			if behind == nil || w.taken < behind.taken || w.taken == behind.taken && since.After(behindSince) {
				behind, behindSince = w, since
			}
		}
	}
	return behind
}

func (p *Pool) dropIdleLocked(w *proc) {
	for i, o := range p.open {
		if o == w {
			p.open = append(p.open[:i], p.open[i+1:]...)
			return
		}
	}
}

// release gives back a worker's execution: the worker returns to the open list, or leaves the
// pool (to be replaced) if it was killed, died or is due to retire — a retiring worker once its
// last execution has ended.
func (p *Pool) release(w *proc, healthy bool) {
	retire := w.retiring()
	p.mu.Lock()
	w.taken--
	if healthy && !retire && !p.closed && !w.removed && !w.isDead() {
		p.dropIdleLocked(w)
		if w.taken == 0 {
			p.open = append(p.open, w) // most recently used last
		} else {
			p.open = append([]*proc{w}, p.open...) // busy: taken only when no idle one is left
		}
		p.notifyLocked()
		p.mu.Unlock()
		return
	}
	if healthy && retire && w.taken > 0 {
		// The executions still on it finish first; it is stopped when the last is released.
		p.dropIdleLocked(w)
		p.mu.Unlock()
		return
	}
	p.removeLocked(w)
	p.mu.Unlock()
	p.kick()
	if retire && healthy {
		go w.stop(nil, stopGrace)
	} else {
		w.kill(nil)
	}
}

// add puts a started worker in the pool.
func (p *Pool) add(w *proc) {
	p.mu.Lock()
	if p.closed || w.removed || w.isDead() {
		p.mu.Unlock()
		w.kill(nil)
		return
	}
	p.procs[w] = struct{}{}
	p.open = append(p.open, w)
	p.startErr = nil
	p.notifyLocked()
	p.mu.Unlock()
}

// procGone is called once a worker has been reaped.
func (p *Pool) procGone(w *proc) {
	p.mu.Lock()
	_, served := p.procs[w] // a worker that failed its start never served: no restart
	served = served || w.removed
	p.removeLocked(w)
	closed := p.closed
	p.mu.Unlock()
	p.kick()
	if served && !closed && p.opts.OnWorkerExit != nil {
		p.opts.OnWorkerExit(w.exit())
	}
}

func (p *Pool) removeLocked(w *proc) {
	if w.removed {
		return
	}
	w.removed = true
	delete(p.procs, w)
	for i, o := range p.open {
		if o == w {
			p.open = append(p.open[:i], p.open[i+1:]...)
			break
		}
	}
	p.notifyLocked()
}

func (p *Pool) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// kick tells the keeper to check the number of workers.
func (p *Pool) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// keep replaces workers that are gone, one start at a time and with a growing pause after
// failed starts. It is the only place workers are started after New.
func (p *Pool) keep() {
	defer close(p.kept)
	failures := 0
	for {
		select {
		case <-p.done:
			return
		case <-p.wake:
		}
		for {
			p.mu.Lock()
			need := !p.closed && len(p.procs) < p.target
			p.mu.Unlock()
			if !need {
				break
			}
			w, err := p.start()
			if err != nil {
				failures++
				if failures >= failuresBeforeUnavailable {
					p.mu.Lock()
					p.startErr = err
					p.notifyLocked()
					p.mu.Unlock()
				}
				pause := time.NewTimer(min(firstBackoff<<min(failures-1, 10), maxBackoff))
				select {
				case <-p.done:
					pause.Stop()
					return
				case <-pause.C:
				}
				continue
			}
			failures = 0
			p.add(w)
		}
	}
}

// limitsFor resolves an execution's limits: the call's own, then its element's timeout, then
// the pool's defaults.
func (p *Pool) limitsFor(call jsvm.Call, src *jsvm.Source) jsvm.Limits {
	l := call.Limits
	if l.Timeout <= 0 && src != nil {
		if el := src.Elements[call.Element]; el != nil && el.Timeout > 0 {
			l.Timeout = el.Timeout
		}
	}
	return l.Inherit(p.opts.Limits)
}

// delta returns the load message from (from, fromVersion) to to, computed once for all the
// workers that make the same step.
func (p *Pool) delta(from *jsvm.Source, fromVersion uint64, to *jsvm.Source) *loadMsg {
	p.deltaMu.Lock()
	defer p.deltaMu.Unlock()
	if p.deltaFrom != from || p.deltaFromVersion != fromVersion || p.deltaTo != to {
		p.deltaFrom, p.deltaFromVersion, p.deltaTo = from, fromVersion, to
		p.deltaMsg = delta(from, fromVersion, to)
	}
	return p.deltaMsg
}
