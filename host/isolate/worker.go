package isolate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-run/trellis/host/jsvm"
)

// IsWorker reports whether this process was started by a Pool as a worker. Every binary that
// uses a Pool checks it first thing in main (and in TestMain) and then calls WorkerMain.
func IsWorker() bool { return os.Getenv(EnvWorker) == "1" }

// EnvWorkerProfile, when set in the host's environment, is a directory where every worker writes
// its CPU profile (worker-<pid>.pprof) until the pool closes it: `trellis bench events
// --cpuprofile` sets it, so the profile of the sandbox's side sits beside the host's
// (docs/performance.md).
const EnvWorkerProfile = "TRELLIS_WORKER_CPUPROFILE"

// stopProfile ends the worker's CPU profile, if it writes one; the worker calls it before a clean
// exit (a killed worker's profile is lost).
var stopProfile = func() {}

// startProfile starts the CPU profile EnvWorkerProfile asks for.
func startProfile() {
	dir := os.Getenv(EnvWorkerProfile)
	if dir == "" {
		return
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("worker-%d.pprof", os.Getpid())))
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "isolate: worker: cpu profile: %v\n", err)
		return
	}
	stopProfile = func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

// WorkerMain runs this process as a worker: it serves the frame protocol on stdin and stdout,
// running each execution in a jsvm.VM under the memory caps its supervisor asked for. It never
// returns: the process exits when the supervisor closes its stdin, or dies when it breaks a cap.
func WorkerMain() {
	workerMain(func(o jsvm.Options) (jsvm.Executor, error) { return jsvm.New(o) })
}

// execKey carries the id of the running execution in the ctx the VM hands back to CallHost.
type execKey struct{}

// workerProc is the worker side of the protocol.
type workerProc struct {
	c     *conn
	turn  chan struct{} // the right to read frames (see serve)
	vm    jsvm.Executor
	knobs memKnobs
	caps  jsvm.Limits // the pool's defaults, which the knobs return to between executions

	mu      sync.Mutex // guards the fields below; held while a load is applied
	busy    bool
	execID  uint64
	cancel  context.CancelCauseFunc // ends the running execution's ctx; the cause says why
	pending []*frame                // loads that arrived during an execution, applied after it
	queued  []queuedExec            // executions sent behind the running one, in order (queueDepth)
	src     *jsvm.Source
	version uint64

	hostSeq  atomic.Uint64
	hmu      sync.Mutex
	hostWait map[uint64]chan *frame
}

// queuedExec is an execution waiting behind the running one. loads is how many of pending
// arrived before it: only those apply before it starts (a load sent after it is for the
// executions sent after it).
type queuedExec struct {
	f     *frame
	loads int
}

// workerMain is WorkerMain with the executor factory injectable, so tests can drive the
// protocol with a fake executor.
func workerMain(newExec func(jsvm.Options) (jsvm.Executor, error)) {
	in, out, err := guardStdio()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	startProfile()
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(2) // one execution at a time: the VM and the collector need no more
	}
	w := &workerProc{c: newConn(in, out), hostWait: make(map[uint64]chan *frame)}
	f, err := w.c.recv()
	if err != nil || f.Kind != kindInit || f.Limits == nil {
		fmt.Fprintf(os.Stderr, "isolate: worker: expected an init frame first (%v); this binary must be started by isolate.Pool\n", err)
		os.Exit(2)
	}
	w.caps = f.Limits.WithDefaults()
	w.knobs.prepare(w.caps.MemoryBytes, true)
	w.vm, err = newExec(jsvm.Options{Host: w, Limits: w.caps, MemoryProbe: heapInUse})
	if err != nil {
		fmt.Fprintf(os.Stderr, "isolate: worker: start the VM: %v\n", err)
		os.Exit(2)
	}
	w.fatal(w.c.send(&frame{Kind: kindHello, Stats: w.stats()}))
	// Two goroutines take turns: one reads frames; when an execution arrives, it hands reading
	// to the other and runs the execution itself. The call starts without waiting for another
	// goroutine to be scheduled, and both keep the stacks goja grew on them.
	w.turn = make(chan struct{}, 1)
	w.turn <- struct{}{}
	go w.serve()
	w.serve()
}

// serve waits for its turn to read, then reads and handles frames until an execution arrives,
// which it runs after passing the turn on.
func (w *workerProc) serve() {
	for {
		<-w.turn
		for {
			f, err := w.c.recv()
			if err != nil {
				if errors.Is(err, io.EOF) {
					stopProfile()
					os.Exit(0) // the supervisor closed the pipe: the pool is closing
				}
				w.fatal(fmt.Errorf("read frame: %w", err))
			}
			if run := w.handle(f); run != nil {
				w.turn <- struct{}{}
				for run != nil {
					run = run() // and the execution queued behind it, if any
				}
				break
			}
		}
	}
}

// fatal ends the worker on a broken pipe or protocol: the supervisor sees it die and replaces it.
func (w *workerProc) fatal(err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "isolate: worker: %v\n", err)
		os.Exit(3)
	}
}

func (w *workerProc) stats() *memStats {
	st := readSelfStats()
	st.Scale = 1
	if raceBuild {
		st.Scale = 2
	}
	return &st
}

// handle runs on the reader goroutine, which must never block for long: host replies for the
// running execution arrive on it. For an execution it returns the function that runs it, for the
// caller to run once another goroutine has taken over reading.
func (w *workerProc) handle(f *frame) (run runFunc) {
	switch f.Kind {
	case kindLoad:
		w.mu.Lock()
		if w.busy {
			w.pending = append(w.pending, f)
		} else {
			w.applyPendingLocked(len(w.pending))
			w.applyLoadLocked(f)
		}
		w.mu.Unlock()
	case kindExec:
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.busy {
			if len(w.queued) >= queueDepth-1 {
				w.fatal(fmt.Errorf("%w: execution %d sent while %d runs and %d wait", ErrProtocol, f.ID, w.execID, len(w.queued)))
			}
			w.queued = append(w.queued, queuedExec{f: f, loads: len(w.pending)}) // run in turn (see run)
			return nil
		}
		return w.beginLocked(f)
	case kindCancel:
		w.endExecution(f.ID, context.Canceled)
	case kindWithdraw:
		w.mu.Lock()
		if w.dropQueuedLocked(f.ID) {
			w.fatal(w.c.send(&frame{Kind: kindResult, ID: f.ID, Result: &jsvm.Result{},
				Err: &wireError{Coded: true, Error: jsvm.Error{Code: codeWithdrawn, Message: "isolate: withdrawn before it started"}}}))
		}
		w.mu.Unlock()
	case kindHostReply:
		w.hmu.Lock()
		ch := w.hostWait[f.ID]
		delete(w.hostWait, f.ID)
		w.hmu.Unlock()
		if ch != nil {
			ch <- f
		}
	default:
		w.fatal(fmt.Errorf("%w: unexpected frame kind %d", ErrProtocol, f.Kind))
	}
	return nil
}

// dropQueuedLocked removes execution id from the queue, if it waits there.
func (w *workerProc) dropQueuedLocked(id uint64) bool {
	for i, q := range w.queued {
		if q.f.ID == id {
			w.queued = append(w.queued[:i:i], w.queued[i+1:]...)
			return true
		}
	}
	return false
}

// runFunc runs one execution and returns the one to run next (queued behind it), or nil.
type runFunc func() runFunc

// beginLocked starts execution f, on the worker's current source (loads that arrived before it
// applied first), and returns the function that runs it; nil when it cannot run (answered).
func (w *workerProc) beginLocked(f *frame) runFunc {
	if len(w.queued) > 0 && w.queued[0].f == f {
		n := w.queued[0].loads
		w.queued = w.queued[1:]
		w.applyPendingLocked(n)
		for i := range w.queued {
			w.queued[i].loads -= n
		}
	} else {
		w.applyPendingLocked(len(w.pending))
	}
	if f.Call == nil || f.Version != w.version {
		msg := fmt.Sprintf("isolate: worker has source version %d but execution %d needs %d", w.version, f.ID, f.Version)
		w.fatal(w.c.send(&frame{Kind: kindResult, ID: f.ID, Result: &jsvm.Result{},
			Err: &wireError{Coded: true, Error: jsvm.Error{Code: jsvm.CodeUnavailable, Message: msg}}}))
		return nil
	}
	// The execution's ctx ends at its deadline, on a cancel frame, or when a host reply says
	// the execution has ended on the supervisor's side (see CallHost); its cause tells the VM
	// whether that is a timeout (context.DeadlineExceeded) or a cancel. An execution sent to an
	// idle worker carries its deadline; one queued behind another counts its timeout from now,
	// its start (and carries only its caller's own deadline, if any).
	deadline := f.Deadline
	if f.Call.Limits.Timeout > 0 {
		if d := time.Now().Add(f.Call.Budget(f.Call.Limits.Timeout)); deadline.IsZero() || d.Before(deadline) {
			deadline = d
		}
	}
	base, stopDeadline := context.WithCancel(context.WithValue(context.Background(), execKey{}, f.ID))
	if !deadline.IsZero() {
		stopDeadline()
		base, stopDeadline = context.WithDeadline(context.WithValue(context.Background(), execKey{}, f.ID), deadline)
	}
	ctx, cancel := context.WithCancelCause(base)
	w.busy, w.execID = true, f.ID
	w.cancel = func(cause error) {
		cancel(cause)
		stopDeadline()
	}
	return func() runFunc { return w.run(ctx, f.ID, f.Call) }
}

// applyPendingLocked applies the first n loads that arrived during the last execution, in order.
func (w *workerProc) applyPendingLocked(n int) {
	for _, f := range w.pending[:n] {
		w.applyLoadLocked(f)
	}
	w.pending = w.pending[n:]
	if len(w.pending) == 0 {
		w.pending = nil
	}
}

// applyLoadLocked loads a source version into the VM and acknowledges it. A version the VM
// refuses leaves the worker on the one it had.
func (w *workerProc) applyLoadLocked(f *frame) {
	ack := &frame{Kind: kindLoaded, Version: f.Version}
	src, err := f.Load.apply(w.src, w.version)
	if err == nil {
		err = w.vm.Load(src)
	}
	if err != nil {
		// The VM keeps its previous version when a load fails, and so does the worker.
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range joined.Unwrap() {
				je := *jsvm.AsError(e)
				je.Details = normalizeMap(je.Details)
				ack.Errs = append(ack.Errs, wireError{Coded: true, Error: je})
			}
		} else {
			je := *jsvm.AsError(err)
			je.Details = normalizeMap(je.Details)
			ack.Err = &wireError{Coded: true, Error: je}
		}
	} else {
		w.src, w.version = src, f.Version
	}
	w.fatal(w.c.send(ack))
}

// run executes one call and reports it, while another goroutine serves host replies and
// cancels.
func (w *workerProc) run(ctx context.Context, id uint64, call *jsvm.Call) (next runFunc) {
	restoreEmptyArgs(call.Args)
	if call.Ctx != nil {
		restoreEmpty(call.Ctx.Extra)
	}
	if a := call.Around; a != nil {
		for _, h := range []*jsvm.HookStep{a.Before, a.After} {
			if h != nil {
				restoreEmptyArgs(h.Args)
			}
		}
	}
	w.knobs.prepare(call.Limits.MemoryBytes, false)
	before := goInUse()
	res, err := w.vm.Execute(ctx, *call)
	out := &frame{Kind: kindResult, ID: id, Result: &res}
	res.Value = normalize(res.Value)
	res.Args = normalizeArgs(res.Args)
	for i := range res.Hooks {
		h := &res.Hooks[i]
		h.Result.Value, h.Result.Args = normalize(h.Result.Value), normalizeArgs(h.Result.Args)
		if h.Err != nil {
			h.Err.Details = normalizeMap(h.Err.Details)
		}
	}
	if limit := call.Limits.MemoryBytes; limit > 0 && sizeAtLeast(res.Value, limit)+sizeAtLeast(res.Args, limit) > limit {
		res.Value, res.Args = nil, nil
		err = &jsvm.Error{Code: jsvm.CodeMemoryLimit, Message: fmt.Sprintf("the result is larger than the execution's memory cap of %d bytes", limit)}
	}
	if err != nil {
		e := *jsvm.AsError(err)
		e.Details = normalizeMap(e.Details)
		out.Err = &wireError{Coded: true, Error: e}
	}
	// The answer is sent under mu: an execution that arrives meanwhile is queued behind this one
	// rather than started, so answers leave in the order the supervisor sent the executions (it
	// starts its clock for a queued one when the answer ahead of it arrives).
	w.mu.Lock()
	w.cancel(nil)
	w.fatal(w.c.send(out))
	w.busy = false
	if len(w.queued) > 0 {
		next = w.beginLocked(w.queued[0].f)
	}
	w.mu.Unlock()

	// After the answer, off the caller's path: the loads that waited for this execution; the
	// memory a big execution left as garbage, given back so that it neither stays resident nor
	// counts against the next execution; caps re-based on what the process holds now.
	w.mu.Lock()
	if len(w.queued) == 0 && !w.busy {
		w.applyPendingLocked(len(w.pending))
	}
	w.mu.Unlock()
	after := goInUse()
	if after > before+uint64(call.Limits.MemoryBytes/2) {
		debug.FreeOSMemory()
	}
	// Re-base only when this execution moved the figures by more than rebaseStep (or ran
	// under another cap): a trivial execution should cost no more system calls than it must.
	w.knobs.prepare(w.caps.MemoryBytes, after > before+rebaseStep || before > after+rebaseStep)
	return next
}

// rebaseStep is how much a worker's memory must move before its caps are re-based on it.
const rebaseStep = 4 << 20

// endExecution ends the ctx of execution id, if it is still running, with cause.
func (w *workerProc) endExecution(id uint64, cause error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.busy && w.execID == id {
		w.cancel(cause)
		return
	}
	if w.dropQueuedLocked(id) {
		// Not started: dropped, and answered so its caller stops waiting.
		w.fatal(w.c.send(&frame{Kind: kindResult, ID: id, Result: &jsvm.Result{},
			Err: &wireError{Coded: true, Error: jsvm.Error{Code: jsvm.CodeCanceled, Message: "isolate: the caller cancelled the execution before it started"}}}))
	}
}

// CallHost forwards a host call of the running execution to the supervisor and waits for its
// answer, or for the execution's ctx to end.
//
// A reply that says the execution has ended (frame.Ended: its ctx ended on the supervisor's
// side, which may have sent no cancel frame yet, or which this reply overtook) first ends the
// execution's ctx here, with that cause, so the VM ends the execution with canceled or timeout
// as it does in-process when the host returns after the ctx ended. A reply that says the host
// panicked re-raises the panic in the VM, which handles it as a host panic in-process.
func (w *workerProc) CallHost(ctx context.Context, call jsvm.HostCall) (any, error) {
	id := w.hostSeq.Add(1)
	ch := make(chan *frame, 1)
	w.hmu.Lock()
	w.hostWait[id] = ch
	w.hmu.Unlock()
	call.Args = normalizeArgs(call.Args)
	exec, _ := ctx.Value(execKey{}).(uint64)
	if err := w.c.send(&frame{Kind: kindHostCall, ID: id, Version: exec, HostCall: &call}); err != nil {
		w.fatal(err)
	}
	select {
	case r := <-ch:
		switch r.Ended {
		case jsvm.CodeTimeout:
			w.endExecution(exec, context.DeadlineExceeded)
		case jsvm.CodeCanceled:
			w.endExecution(exec, context.Canceled)
		}
		if r.Err == nil {
			return restoreEmpty(r.Value), nil
		}
		e := r.Err.Error
		restoreEmpty(e.Details)
		if r.Err.Panic {
			stack, _ := e.Details["goStack"].(string)
			panic(&relayedPanic{value: e.Message, stack: stack})
		}
		if !r.Err.Coded {
			return nil, &plainError{msg: e.Message, details: e.Details}
		}
		return nil, &e
	case <-ctx.Done():
		w.hmu.Lock()
		delete(w.hostWait, id)
		w.hmu.Unlock()
		return nil, ctx.Err()
	}
}

// plainError is a host error without a code, as it was on the supervisor's side: its text and
// the details it gave.
type plainError struct {
	msg     string
	details map[string]any
}

func (p *plainError) Error() string { return p.msg }

// ErrorDetails gives the VM the details the host's error gave (nil when it gave none).
func (p *plainError) ErrorDetails() any {
	if p.details == nil {
		return nil
	}
	return p.details
}

// relayedPanic is a panic of the supervisor's host, raised again in the worker's VM.
type relayedPanic struct{ value, stack string }

func (r *relayedPanic) Error() string { return r.value }

// GoStack is where the host panicked, on the supervisor's side; the VM reports it.
func (r *relayedPanic) GoStack() string { return r.stack }
