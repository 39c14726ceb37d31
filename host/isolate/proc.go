package isolate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/vocab"
)

// rssEvery is how often the supervisor samples a busy worker's resident set. A fast allocator
// touches a few GB a second, so a few milliseconds keeps the overshoot to tens of MiB; RLIMIT_AS
// stops single allocations that are bigger still.
const rssEvery = 2 * time.Millisecond

// proc is the supervisor's handle on one worker process.
type proc struct {
	pool   *Pool
	cmd    *exec.Cmd
	pid    int
	c      *conn
	stdin  io.Closer
	statm  *statmFile
	stderr *stderrLog
	hello  chan *frame
	dead   chan struct{} // closed once the process has exited and been reaped
	waited error         // cmd.Wait's answer, set before dead is closed

	// kmu guards the kill decision; it is never held while writing to the pipe, so a kill is
	// never stuck behind a write to a worker that does not read.
	kmu       sync.Mutex
	killedFor *jsvm.Error
	killed    bool // the pool sent SIGKILL

	// sendMu orders the loads and executions sent to the worker and guards what it was sent.
	// It may be held while a write blocks; nothing the read loop needs is behind it.
	sendMu      sync.Mutex
	sentVersion uint64
	sentSrc     *jsvm.Source

	mu sync.Mutex // guards the fields below; held only briefly, never across I/O
	// running is the execution the worker runs (the first sent and not answered); queued, those
	// sent behind it in order (at most queueDepth-1), the first of which starts when running's
	// answer arrives.
	running  *execution
	queued   []*execution
	loadAcks map[uint64]chan error
	startRSS uint64 // resident set after its start and first load
	scale    uint64 // RSS per byte JavaScript allocates, relative to a normal build (memStats.Scale)
	retire   bool   // remove instead of returning to the open list

	removed bool // guarded by pool.mu
	taken   int  // executions taken and not released (at most queueDepth); guarded by pool.mu
}

// since is when the worker's running execution began (zero when it runs none).
func (w *proc) since() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running == nil {
		return time.Time{}
	}
	return w.running.began
}

// retiring reports whether the worker is to leave the pool once its executions end.
func (w *proc) retiring() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.retire
}

// execution is one Execute on a worker.
type execution struct {
	id      uint64
	caller  context.Context
	timeout time.Duration
	done    chan *frame
	// started is closed by begin, when the worker starts the execution: at once for one sent to
	// an idle worker, when the answer of the one ahead of it arrives for a queued one. began,
	// ctx, deadline and stop are set by begin (under the worker's mu), before started is closed.
	started  chan struct{}
	began    time.Time       // when it started, as this side saw it
	ctx      context.Context // for the host calls it makes; ends at its deadline
	deadline time.Time
	stop     context.CancelFunc
}

// begin marks the execution started now: its deadline is its timeout from now, or its caller's
// deadline if that comes first. For a queued execution the worker starts its own clock a little
// earlier (as soon as it has sent the answer ahead of it, before that answer has reached this
// side), so the supervisor's kill timer never runs ahead of the worker's deadline. It runs under
// the worker's mu.
func (ex *execution) begin() {
	ex.began = time.Now()
	ex.deadline = ex.began.Add(ex.timeout)
	if d, ok := ex.caller.Deadline(); ok && d.Before(ex.deadline) {
		ex.deadline = d
	}
	ex.ctx, ex.stop = context.WithDeadline(ex.caller, ex.deadline)
	close(ex.started)
}

// endCode is the code the execution must end with because its ctx has ended (the caller's
// cancel or deadline, or its own deadline), or "" while it may run. It reads the clock too, so
// it is right even before the ctx's timer has fired, as the VM's check is.
func (ex *execution) endCode() string {
	if code := endCode(ex.ctx); code != "" {
		return code
	}
	if !time.Now().Before(ex.deadline) {
		return jsvm.CodeTimeout
	}
	return ""
}

// workerEnvKeep are the variables of the host's environment a worker inherits: the Go runtime's
// knobs, where local time comes from, and where to write a CPU profile. Nothing else: the host's environment holds its secrets
// (TRELLIS_ADMIN_TOKEN, DSNs with passwords), and a worker runs the app's code, which must not
// be one bug away from reading them (/proc/self/environ).
var workerEnvKeep = map[string]bool{"GOGC": true, "GOMEMLIMIT": true, "GOMAXPROCS": true, "GODEBUG": true,
	"GOTRACEBACK": true, "GORACE": true, "GOCOVERDIR": true, "TZ": true, "ZONEINFO": true, EnvWorkerProfile: true}

// workerEnv is a worker's whole environment: EnvWorker, what it keeps of host's (workerEnvKeep),
// then extra (Options.Env), which wins over both.
func workerEnv(host, extra []string) []string {
	env := []string{EnvWorker + "=1"}
	for _, kv := range host {
		if k, _, _ := strings.Cut(kv, "="); workerEnvKeep[k] {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// start launches a worker, waits for its handshake and loads the pool's current source in it.
func (p *Pool) start() (*proc, error) {
	argv := p.opts.Command
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = workerEnv(os.Environ(), p.opts.Env)
	cmd.SysProcAttr = workerSysProcAttr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrWorkerStart, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrWorkerStart, err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrWorkerStart, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v (set Options.Command to a binary that calls isolate.WorkerMain)", ErrWorkerStart, strings.Join(argv, " "), err)
	}
	w := &proc{
		pool: p, cmd: cmd, pid: cmd.Process.Pid, c: newLimitedConn(stdout, stdin, p.maxFrame()), stdin: stdin,
		stderr: newStderrLog(), hello: make(chan *frame, 1), dead: make(chan struct{}),
		loadAcks: make(map[uint64]chan error),
	}
	w.statm, _ = openStatm(w.pid)
	go w.stderr.consume(stderr)
	go w.readLoop()

	fail := func(why string) (*proc, error) {
		w.kill(nil)
		<-w.dead
		return nil, fmt.Errorf("%w: %s: %s; its stderr: %s", ErrWorkerStart, strings.Join(argv, " "), why, orNothing(w.stderr.summary()))
	}
	limits := p.opts.Limits
	if err := w.c.send(&frame{Kind: kindInit, Limits: &limits}); err != nil {
		return fail(fmt.Sprintf("send the init frame: %v", err))
	}
	timer := time.NewTimer(p.opts.StartTimeout)
	defer timer.Stop()
	select {
	case h := <-w.hello:
		w.scale = max(h.Stats.Scale, 1)
	case <-w.dead:
		return fail("it exited before its handshake (" + exitText(w.waited) + "); is it a binary that calls isolate.WorkerMain when isolate.IsWorker()?")
	case <-timer.C:
		return fail(fmt.Sprintf("no handshake within %v", p.opts.StartTimeout))
	case <-p.done:
		return fail("the pool was closed")
	}
	p.mu.Lock()
	src, version := p.src, p.version
	p.mu.Unlock()
	if src != nil {
		if err := w.load(src, version, p.opts.StartTimeout); err != nil {
			return fail("load the current source: " + err.Error())
		}
	}
	w.startRSS = w.statm.read().RSS
	return w, nil
}

func orNothing(s string) string {
	if s == "" {
		return "(nothing)"
	}
	return s
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// readLoop dispatches the worker's frames until its stdout ends, then reaps it.
func (w *proc) readLoop() {
	for {
		f, err := w.c.recv()
		if err != nil {
			if errors.Is(err, errFrameTooLarge) {
				w.kill(&jsvm.Error{Code: jsvm.CodeMemoryLimit, Message: fmt.Sprintf("isolate: the worker sent a frame larger than the host accepts (%v); it was replaced", err)})
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, os.ErrClosed) {
				w.kill(&jsvm.Error{Code: jsvm.CodeJSError, Message: fmt.Sprintf("isolate: the worker sent an unreadable frame (%v); it was replaced", err)})
			}
			break
		}
		w.dispatch(f)
	}
	<-w.stderr.done
	w.waited = w.cmd.Wait()
	w.statm.close()
	close(w.dead)
	w.pool.procGone(w)
}

func (w *proc) dispatch(f *frame) {
	switch f.Kind {
	case kindHello:
		if f.Stats == nil {
			f.Stats = &memStats{Scale: 1}
		}
		select {
		case w.hello <- f:
		default:
		}
	case kindLoaded:
		err := loadError(f)
		w.mu.Lock()
		ch, ok := w.loadAcks[f.Version]
		delete(w.loadAcks, f.Version)
		if !ok && err != nil {
			// A version sent ahead of an execution failed here although it loaded elsewhere:
			// this worker is out of step; its next execution reports it, then it is replaced.
			w.retire = true
		}
		w.mu.Unlock()
		if ch != nil {
			ch <- err
		}
	case kindResult:
		var ex *execution
		w.mu.Lock()
		switch {
		case w.running != nil && w.running.id == f.ID:
			ex = w.running
			// The worker starts the first queued execution as soon as it has sent this answer.
			w.running = nil
			if len(w.queued) > 0 {
				w.running, w.queued = w.queued[0], w.queued[1:]
				w.running.begin()
			}
		default:
			for i, q := range w.queued {
				if q.id == f.ID { // answered before it started: cancelled or withdrawn
					ex, w.queued = q, append(w.queued[:i:i], w.queued[i+1:]...)
					break
				}
			}
		}
		w.mu.Unlock()
		if ex != nil {
			ex.done <- f
		}
	case kindHostCall:
		w.mu.Lock()
		ex := w.running
		w.mu.Unlock()
		go w.serveHostCall(ex, f)
	default:
		w.kill(&jsvm.Error{Code: jsvm.CodeJSError, Message: fmt.Sprintf("isolate: the worker sent an unexpected frame (kind %d); it was replaced", f.Kind)})
	}
}

// serveHostCall answers one host call with the pool's HostCaller, in the context of the
// execution that made it. A call made, or answered, after that context ended (the caller
// canceled, or the deadline passed) is answered with the context's code in Ended, and with
// that code on the error the host gave (its ctx's error, typically), so the worker ends the
// execution as the in-process VM does: uncatchably, with canceled or timeout.
func (w *proc) serveHostCall(ex *execution, f *frame) {
	reply := &frame{Kind: kindHostReply, ID: f.ID}
	host := w.pool.opts.Host
	switch {
	case f.HostCall == nil:
		reply.Err = &wireError{Coded: true, Error: jsvm.Error{Code: jsvm.CodeInvalidArg, Message: "isolate: empty host call"}}
	case ex == nil || (f.Version != 0 && f.Version != ex.id):
		reply.Err = &wireError{Coded: true, Error: jsvm.Error{Code: jsvm.CodeUnavailable, Message: "isolate: host call from an execution that has ended"}}
	case host == nil:
		reply.Err = &wireError{Coded: true, Error: jsvm.Error{Code: jsvm.CodeUnavailable, Message: fmt.Sprintf("isolate: no host to call %s.%s: the pool was made without Options.Host", f.HostCall.FullName, f.HostCall.Method)}}
	case ex.endCode() != "":
		// An execution that has ended makes no more host calls.
		code := ex.endCode()
		reply.Ended = code
		reply.Err = &wireError{Coded: true, Error: jsvm.Error{Code: code, Message: fmt.Sprintf("isolate: %s.%s was not called: the execution has ended (%s)", f.HostCall.FullName, f.HostCall.Method, code)}}
	default:
		restoreEmptyArgs(f.HostCall.Args)
		v, err := callHost(ex.ctx, host, *f.HostCall)
		if err != nil {
			reply.Err = toWireError(err)
		} else if reply.Value = normalize(v); vocab.DeeperThan(reply.Value, maxReplyDepth) {
			reply.Value = nil
			reply.Err = &wireError{Coded: true, Error: jsvm.Error{Code: jsvm.CodeInvalidArg, Message: fmt.Sprintf(
				"%s.%s answered a value nested deeper than %d levels, which cannot cross into JavaScript", f.HostCall.FullName, f.HostCall.Method, maxReplyDepth)}}
		}
		if code := ex.endCode(); code != "" && (reply.Err == nil || !reply.Err.Panic) {
			reply.Ended = code
			if reply.Err != nil {
				reply.Err.Coded, reply.Err.Code = true, code
			}
		}
	}
	_ = w.c.send(reply) // a worker that is gone has no one waiting
}

// maxFrame is the largest frame the supervisor reads from a worker: room, twice over for their
// encoding, for all that the pool's caps let one execution hand back at once (a result, console
// output, an error, one host call's arguments; and for the two hooks of a Call.Around, each
// their arguments, console and error), and 16 MiB for a load's report of problems. A frame past
// it kills the worker before the host allocates it (memory_limit).
func (p *Pool) maxFrame() int64 {
	l := p.opts.Limits
	hooks := 2 * (l.MaxMessageBytes + l.MaxConsoleBytes + 2*l.MaxErrorBytes)
	return 2*(l.MaxResultBytes+l.MaxMessageBytes+2*l.MaxConsoleBytes+4*l.MaxErrorBytes+hooks) + 16<<20
}

// maxReplyDepth is the deepest host answer the supervisor sends a worker: the VM refuses deeper
// values as they enter JavaScript, so sending them would only cost the host.
const maxReplyDepth = 512

// endCode is the code of an execution whose context ctx has ended: timeout for a deadline
// (context.DeadlineExceeded as its error or its cause), canceled otherwise; "" while ctx is live.
// It is what the in-process VM decides for the same context.
func endCode(ctx context.Context) string {
	err := ctx.Err()
	switch {
	case err == nil:
		return ""
	case errors.Is(err, context.DeadlineExceeded), errors.Is(context.Cause(ctx), context.DeadlineExceeded):
		return jsvm.CodeTimeout
	}
	return jsvm.CodeCanceled
}

// hostPanic is a panic of the host's CallHost, recovered so that a bug in one host service
// cannot take the whole host down; the worker re-raises it in its VM (see wireError.Panic).
type hostPanic struct {
	value string
	stack string
}

func (h *hostPanic) Error() string { return h.value }

// callHost calls the host, turning a panic into a *hostPanic error.
func callHost(ctx context.Context, host jsvm.HostCaller, call jsvm.HostCall) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, &hostPanic{value: fmt.Sprint(r), stack: string(debug.Stack())}
		}
	}()
	return host.CallHost(ctx, call)
}

// toWireError keeps what the VM needs to throw err as the host gave it: a *jsvm.Error whole,
// another coded error's code, text and details, a plain error's text and details, or a panic.
func toWireError(err error) *wireError {
	var hp *hostPanic
	if errors.As(err, &hp) {
		return &wireError{Coded: true, Panic: true, Error: jsvm.Error{Code: jsvm.CodeInternal, Message: hp.value,
			Details: map[string]any{"goStack": hp.stack}}}
	}
	var we *wireError
	var je *jsvm.Error
	var ce jsvm.CodedError
	switch {
	case errors.As(err, &je):
		e := *je
		we = &wireError{Coded: true, Error: e}
	case errors.As(err, &ce):
		we = &wireError{Coded: true, Error: jsvm.Error{Code: ce.ErrorCode(), Message: err.Error()}}
	default:
		we = &wireError{Error: jsvm.Error{Message: err.Error()}}
	}
	// As the VM does in-process (throwHostError): details an error gives with ErrorDetails() any
	// win when they are a map (a *jsvm.Error's own ErrorDetails is the error, not a map).
	var d interface{ ErrorDetails() any }
	if errors.As(err, &d) {
		if m, ok := d.ErrorDetails().(map[string]any); ok {
			we.Details = m
		}
	}
	we.Details = normalizeMap(we.Details)
	return we
}

// loadError rebuilds what the worker's VM.Load returned: one *jsvm.Error, or several joined
// (the VM reports every problem of a source at once).
func loadError(f *frame) error {
	if len(f.Errs) > 0 {
		errs := make([]error, len(f.Errs))
		for i := range f.Errs {
			e := f.Errs[i].Error
			errs[i] = &e
		}
		return errors.Join(errs...)
	}
	if f.Err != nil {
		e := f.Err.Error
		return &e
	}
	return nil
}

// kill ends the worker at once. why, when set, is what its running execution ends with; the
// first reason given wins.
func (w *proc) kill(why *jsvm.Error) {
	w.kmu.Lock()
	if w.killedFor == nil && why != nil {
		w.killedFor = why
	}
	w.killed = true
	w.kmu.Unlock()
	_ = w.cmd.Process.Kill()
}

// exit says why the reaped worker ended, for Options.OnWorkerExit.
func (w *proc) exit() WorkerExit {
	e := WorkerExit{PID: w.pid}
	w.kmu.Lock()
	why, killed := w.killedFor, w.killed
	w.kmu.Unlock()
	var ee *exec.ExitError
	if w.waited == nil {
		return e // it exited on its own: retired, or asked to stop
	}
	if errors.As(w.waited, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			e.Killed = true
		}
	}
	if why == nil && killed && e.Killed {
		return e // killed by the pool with nothing running: a worker already broken
	}
	d := w.deathError()
	e.Code, e.Reason = d.Code, d.Message
	return e
}

// stop asks the worker to exit by closing its stdin, and kills it if it has not within grace.
func (w *proc) stop(why *jsvm.Error, grace time.Duration) {
	w.kmu.Lock()
	if w.killedFor == nil {
		w.killedFor = why
	}
	w.kmu.Unlock()
	_ = w.stdin.Close()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-w.dead:
	case <-t.C:
		_ = w.cmd.Process.Kill()
	}
}

// deathError says why the worker died, for the execution it was running.
func (w *proc) deathError() *jsvm.Error {
	w.kmu.Lock()
	why := w.killedFor
	w.kmu.Unlock()
	if why != nil {
		e := *why
		return &e
	}
	w.stderr.mu.Lock()
	stack, oom := w.stderr.stack, w.stderr.oom
	w.stderr.mu.Unlock()
	switch {
	case stack:
		return &jsvm.Error{Code: jsvm.CodeStackOverflow, Message: "isolate: the execution overflowed its worker's Go stack (a built-in recursed too deep, e.g. converting deeply nested arrays to a string); the worker was replaced"}
	case oom:
		return &jsvm.Error{Code: jsvm.CodeMemoryLimit, Message: "isolate: the execution allocated past its worker's address-space cap and the worker ran out of memory; the worker was replaced"}
	}
	var ee *exec.ExitError
	if errors.As(w.waited, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return &jsvm.Error{Code: jsvm.CodeMemoryLimit, Message: "isolate: the worker was killed by SIGKILL from outside the pool (most likely the kernel's out-of-memory killer); the worker was replaced"}
		}
	}
	return &jsvm.Error{Code: jsvm.CodeJSError, Message: fmt.Sprintf("isolate: the worker process crashed (%s): %s; the worker was replaced", exitText(w.waited), orNothing(w.stderr.summary()))}
}

// deathErrorFor is deathError naming the element whose execution ended, as the VM's errors do.
func (w *proc) deathErrorFor(element string) *jsvm.Error {
	e := w.deathError()
	if e.Element == "" {
		e.Element = element
	}
	return e
}

// isDead reports whether the process has been reaped.
func (w *proc) isDead() bool {
	select {
	case <-w.dead:
		return true
	default:
		return false
	}
}

// sendLoadLocked sends version of src, as a delta from what the worker was last sent when it
// can. w.sendMu must be held.
func (w *proc) sendLoadLocked(src *jsvm.Source, version uint64) error {
	msg := &loadMsg{Full: src}
	if w.sentSrc != nil {
		msg = w.pool.delta(w.sentSrc, w.sentVersion, src)
	}
	if err := w.c.send(&frame{Kind: kindLoad, Version: version, Load: msg}); err != nil {
		return err
	}
	w.sentVersion, w.sentSrc = version, src
	return nil
}

// load sends a source version and waits for the worker to apply it. On failure the worker is
// back on its previous version, and so is what the supervisor believes it has.
func (w *proc) load(src *jsvm.Source, version uint64, timeout time.Duration) error {
	ch := make(chan error, 1)
	w.mu.Lock()
	w.loadAcks[version] = ch
	w.mu.Unlock()
	w.sendMu.Lock()
	prevVersion, prevSrc := w.sentVersion, w.sentSrc
	err := w.sendLoadLocked(src, version)
	w.sendMu.Unlock()
	if err == nil {
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case err = <-ch:
		case <-w.dead:
			err = w.deathError()
		case <-t.C:
			err = &jsvm.Error{Code: jsvm.CodeUnavailable, Message: fmt.Sprintf("isolate: a worker took more than %v to load the source", timeout)}
			w.kill(nil)
		}
	}
	if err != nil {
		w.mu.Lock()
		delete(w.loadAcks, version)
		w.mu.Unlock()
		w.sendMu.Lock()
		if w.sentVersion == version {
			w.sentVersion, w.sentSrc = prevVersion, prevSrc
		}
		w.sendMu.Unlock()
	}
	return err
}

// execute runs call on the worker, which the caller holds exclusively, and supervises it: a
// kill at deadline + KillGrace, the RSS safeguard, the caller's ctx. healthy is false when the
// worker must not be reused.
func (w *proc) execute(ctx context.Context, src *jsvm.Source, version uint64, call jsvm.Call) (res jsvm.Result, err error, healthy bool) {
	p := w.pool
	call.Limits = p.limitsFor(call, src)
	if d, ok := ctx.Deadline(); ok && d.Before(time.Now().Add(call.Limits.Timeout)) {
		call.Limits.Timeout = max(time.Until(d), time.Millisecond)
	}
	call.Args = normalizeArgs(call.Args)
	if a := call.Around; a != nil {
		around := *a
		for _, h := range []**jsvm.HookStep{&around.Before, &around.After} {
			if *h != nil {
				step := **h
				step.Args = normalizeArgs(step.Args)
				*h = &step
			}
		}
		call.Around = &around
	}
	if call.Ctx != nil && call.Ctx.Extra != nil {
		hc := *call.Ctx
		hc.Extra = normalizeMap(hc.Extra)
		call.Ctx = &hc
	}
	// The nesting cap is checked here, before the frame is encoded: the worker's VM would refuse
	// the value too, but only after the host had paid for sending it.
	if depth := call.Limits.MaxValueDepth; vocab.DeeperThan(any(call.Args), depth+1) || (call.Ctx != nil && vocab.DeeperThan(call.Ctx.Extra, depth+1)) || aroundDeeperThan(call.Around, depth+1) {
		return jsvm.Result{}, &jsvm.Error{Code: jsvm.CodeInvalidArg, Element: call.Element, Message: fmt.Sprintf(
			"the arguments are nested deeper than %d levels (the nesting cap, --max-depth); flatten them", depth)}, true
	}
	ex := &execution{id: p.execSeq.Add(1), caller: ctx, timeout: call.Budget(call.Limits.Timeout), done: make(chan *frame, 1), started: make(chan struct{})}
	var queued bool
	w.sendMu.Lock()
	w.mu.Lock()
	if w.running == nil {
		w.running = ex
		ex.begin()
	} else {
		w.queued, queued = append(w.queued, ex), true
	}
	scale := max(w.scale, 1)
	w.mu.Unlock()
	if w.sentVersion != version {
		err = w.sendLoadLocked(src, version)
	}
	if err == nil {
		// A queued execution's deadline is counted by the worker from when it starts it; only
		// the caller's own deadline, if it has one, is absolute.
		var deadline time.Time
		if !queued {
			deadline = ex.deadline
		} else if d, ok := ctx.Deadline(); ok {
			deadline = d
		}
		err = w.c.send(&frame{Kind: kindExec, ID: ex.id, Version: version, Call: &call, Deadline: deadline})
	}
	w.sendMu.Unlock()
	defer func() {
		// Out of the worker's books if it ended unstarted (so no answer can begin it later), and
		// its deadline's timer stopped if it began.
		w.mu.Lock()
		for i, q := range w.queued {
			if q == ex {
				w.queued = append(w.queued[:i:i], w.queued[i+1:]...)
				break
			}
		}
		stop := ex.stop
		w.mu.Unlock()
		if stop != nil {
			stop()
		}
	}()
	if err != nil {
		w.kill(nil)
		return jsvm.Result{}, &unreachedError{err: &jsvm.Error{Code: jsvm.CodeUnavailable, Message: fmt.Sprintf("isolate: could not reach a worker (%v); try again", err)}}, false
	}
	if queued {
		switch f, how := w.awaitStart(ex); how {
		case answeredFirst:
			if ex.ctx == nil {
				// Answered unstarted: withdrawn (another worker will run it), dropped at its
				// caller's request (a cancel), or refused.
				switch {
				case f.Err != nil && f.Err.Code == codeWithdrawn:
					return jsvm.Result{}, errWithdrawn, true
				case ctx.Err() != nil || f.Err == nil:
					return jsvm.Result{}, cancelled(ctx), true
				}
				return jsvm.Result{}, &f.Err.Error, true
			}
			return w.answer(ex, f, ctx, call)
		case diedFirst:
			return jsvm.Result{}, &unreachedError{err: w.deathErrorFor(call.Element)}, false
		case closedFirst:
			return jsvm.Result{}, jsvm.ErrClosed, false
		}
	}

	// The RSS safeguard measures from what the worker holds now, not from what earlier
	// executions left behind. It is read after the frame is sent, while the worker works.
	base := w.statm.read()
	if base.RSS > w.startRSS+2*scale*uint64(p.opts.Limits.MemoryBytes) {
		w.mu.Lock()
		w.retire = true // module-level state has piled up: replace the worker after this run
		w.mu.Unlock()
	}
	rssLimit := base.RSS + scale*uint64(call.Limits.MemoryBytes+call.Limits.MemoryBytes/2)
	killAt := time.NewTimer(time.Until(ex.deadline) + p.opts.KillGrace)
	defer killAt.Stop()
	tick := time.NewTicker(rssEvery)
	defer tick.Stop()
	ctxDone := ctx.Done()
	for {
		select {
		case f := <-ex.done:
			return w.answer(ex, f, ctx, call)
		case <-w.dead:
			return jsvm.Result{}, w.deathErrorFor(call.Element), false
		case <-tick.C:
			if rss := w.statm.read().RSS; rss > rssLimit {
				w.kill(&jsvm.Error{Code: jsvm.CodeMemoryLimit, Message: fmt.Sprintf(
					"isolate: the execution grew its worker's resident memory past the cap (%d MiB over a %d MiB cap); the worker was killed and replaced",
					(rss-base.RSS)>>20/scale, call.Limits.MemoryBytes>>20)})
				return jsvm.Result{}, w.deathErrorFor(call.Element), false
			}
		case <-killAt.C:
			if errors.Is(ctx.Err(), context.Canceled) {
				w.kill(cancelled(ctx))
			} else {
				w.kill(&jsvm.Error{Code: jsvm.CodeTimeout, Message: fmt.Sprintf(
					"isolate: the execution ran past its %v deadline and did not stop (code stuck where the interrupt cannot reach it, such as a backtracking regular expression or a long built-in); its worker was killed and replaced",
					call.Limits.Timeout)})
			}
			return jsvm.Result{}, w.deathErrorFor(call.Element), false
		case <-ctxDone:
			ctxDone = nil
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				continue // the worker's VM has the same deadline and answers "timeout" by itself
			}
			// Ask the VM to stop; if it has not answered within the grace, kill.
			_ = w.c.send(&frame{Kind: kindCancel, ID: ex.id})
			killAt.Reset(p.opts.KillGrace)
		case <-p.done:
			w.kill(nil)
			return jsvm.Result{}, jsvm.ErrClosed, false
		}
	}
}

// aroundDeeperThan reports whether the arguments of a's hooks nest deeper than depth.
func aroundDeeperThan(a *jsvm.Around, depth int) bool {
	if a == nil {
		return false
	}
	for _, h := range []*jsvm.HookStep{a.Before, a.After} {
		if h != nil && vocab.DeeperThan(any(h.Args), depth) {
			return true
		}
	}
	return false
}

// answer is what Execute returns for the worker's answer f to ex.
func (w *proc) answer(ex *execution, f *frame, ctx context.Context, call jsvm.Call) (res jsvm.Result, err error, healthy bool) {
	if f.Result != nil {
		res = *f.Result
		res.Value = restoreEmpty(res.Value)
		restoreEmptyArgs(res.Args)
		for i := range res.Hooks {
			h := &res.Hooks[i]
			h.Result.Value = restoreEmpty(h.Result.Value)
			restoreEmptyArgs(h.Result.Args)
			if h.Err != nil {
				restoreEmpty(h.Err.Details)
			}
		}
	}
	var e *jsvm.Error
	if f.Err != nil {
		e = &f.Err.Error
		restoreEmpty(e.Details)
	}
	if code := ex.endCode(); code != "" && (e == nil || e.Code != code) {
		// The worker learns that the execution's ctx ended (a cancel, the caller's deadline,
		// a host call answered after either) later than this side does, so what it answered
		// may have been made after its caller gave up: a success, or an error JS caught and
		// rethrew. The host knows its own ctx: an execution whose ctx has ended by the time
		// its answer is read ends canceled or timeout, whatever the worker says.
		res.Value, res.Failed, res.WaitCallback = nil, nil, false
		e = endedError(code, ctx, call)
	}
	if e != nil {
		return res, e, true
	}
	return res, nil, true
}

// startOutcome is how the wait of a queued execution for its start ended.
type startOutcome int

const (
	startedFirst  startOutcome = iota
	answeredFirst              // the worker answered it: it ran and ended already, or was cancelled unstarted
	diedFirst                  // the worker died before starting it: nothing of it ran
	closedFirst                // the pool was closed
)

// errWithdrawn is the error of an execution withdrawn from its worker's queue: Execute runs it
// on another worker.
var errWithdrawn = errors.New("isolate: withdrawn from a busy worker's queue")

// withdrawAfter is how long a queued execution waits for the one ahead of it before it is
// withdrawn and given to the next free worker instead: a trivial execution takes well under a
// millisecond, so one still running after this may be slow or hostile code that runs to its
// timeout, which those queued behind it must not wait for.
const withdrawAfter = 2 * time.Millisecond

// awaitStart waits until the queued execution ex starts, or something ends it first. A caller
// that gives up meanwhile has the worker drop it (a cancel frame; the worker answers it unrun),
// and so does one that waited withdrawAfter (a withdraw frame; the worker answers codeWithdrawn
// unless it has started it).
func (w *proc) awaitStart(ex *execution) (*frame, startOutcome) {
	ctxDone := ex.caller.Done()
	withdraw := time.NewTimer(withdrawAfter)
	defer withdraw.Stop()
	for {
		select {
		case <-withdraw.C:
			_ = w.c.send(&frame{Kind: kindWithdraw, ID: ex.id})
		case <-ex.started:
			return nil, startedFirst
		case f := <-ex.done:
			return f, answeredFirst
		case <-w.dead:
			// The reader reads every frame the worker sent before it closes dead, so a queued
			// execution the worker had started has had its start recorded by then.
			select {
			case <-ex.started:
				return nil, startedFirst
			default:
				return nil, diedFirst
			}
		case <-ctxDone:
			ctxDone = nil
			_ = w.c.send(&frame{Kind: kindCancel, ID: ex.id})
		case <-w.pool.done:
			w.kill(nil)
			return nil, closedFirst
		}
	}
}

// endedError is the error of an execution whose ctx (the caller's, bounded by the execution's
// deadline) has ended with code.
func endedError(code string, caller context.Context, call jsvm.Call) *jsvm.Error {
	e := cancelled(caller)
	if caller.Err() == nil || e.Code != code {
		e = &jsvm.Error{Code: code, Message: fmt.Sprintf("execution ran past its timeout of %s", call.Limits.Timeout)}
	}
	e.Element = call.Element
	return e
}

// unreachedError is an execution that never reached its worker (the pipe was broken): nothing
// ran, so Execute may try another worker.
type unreachedError struct{ err *jsvm.Error }

func (u *unreachedError) Error() string { return u.err.Error() }

// cancelled is the error of an execution whose caller's ctx ended before it did.
func cancelled(ctx context.Context) *jsvm.Error {
	if endCode(ctx) == jsvm.CodeTimeout {
		return &jsvm.Error{Code: jsvm.CodeTimeout, Message: "isolate: the caller's deadline passed before the execution ended"}
	}
	return &jsvm.Error{Code: jsvm.CodeCanceled, Message: fmt.Sprintf("isolate: the caller cancelled the execution (%v)", ctx.Err())}
}
