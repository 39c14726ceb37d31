package jsvm

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"sync"
	"time"

	"github.com/dop251/goja"
)

// maxElementHops bounds how many element-to-element calls may be nested in one execution. Each
// hop takes a runtime of its own, so A→B→A recursion must end long before MaxCallDepth would
// stop it: it ends as stack_overflow.
const maxElementHops = 64

// memoryProbeInterval is how often a MemoryProbe is sampled during an execution.
const memoryProbeInterval = time.Millisecond

// execution is one Execute call, including every nested call between elements it makes. It
// owns the deadline, the limits and the console log, and knows which runtimes it is running in,
// so a timer, a canceled context or the memory probe can interrupt all of them at once.
type execution struct {
	vm       *VM
	v        *version
	call     *Call
	limits   Limits
	start    time.Time
	deadline time.Time
	ctx      context.Context

	hostCtx    context.Context
	hostCancel context.CancelFunc

	logs        []LogEntry
	logBytes    int
	logsDropped int
	logsCut     bool

	failed       *string
	waitCallback bool
	argsOut      []any // the top-level call's arguments after it returned (Call.ReturnArgs)

	hops      int
	depthUsed int
	thrown    map[*goja.Object]*Error // errors rethrown into a caller's runtime from a callee

	mu       sync.Mutex
	code     string // the limit that ended the execution, "" while none has
	abortErr *Error // what ended it when that was a fault of the host, not a limit (see abort)
	done     bool
	active   []*jsRuntime
}

// trip ends the execution because of a limit: every runtime it is running in is interrupted, so
// nothing can catch it. Only the first limit counts.
func (x *execution) trip(code string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.done || x.code != "" {
		return
	}
	x.code = code
	for _, rt := range x.active {
		rt.r.Interrupt(code)
	}
}

// abort ends the execution with e, as trip ends it with a limit: every runtime it is running in
// is interrupted, so nothing can catch it. It is for faults of Trellis itself (a host panic),
// which app code must not be able to swallow. Only the first limit or abort counts.
func (x *execution) abort(e *Error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.done || x.code != "" {
		return
	}
	x.code, x.abortErr = e.Code, e
	for _, rt := range x.active {
		rt.r.Interrupt(e.Code)
	}
}

// ctxEndCode is the limit an execution whose context has ended must end with: timeout when a
// deadline passed (the execution's own, or its caller's), canceled when its caller canceled;
// "" while it may run. It reads the context and the clock, so it is right even before the
// timer or context.AfterFunc that trip the limit asynchronously has run.
func (x *execution) ctxEndCode() string {
	if code := ctxEndCode(x.ctx); code != "" {
		return code
	}
	if !time.Now().Before(x.deadline) {
		return CodeTimeout
	}
	return ""
}

// ctxEndCode is the code of an execution whose context ctx has ended: timeout for a deadline
// (context.DeadlineExceeded as its error or its cause), canceled otherwise; "" while ctx is live.
func ctxEndCode(ctx context.Context) string {
	err := ctx.Err()
	switch {
	case err == nil:
		return ""
	case errors.Is(err, context.DeadlineExceeded), errors.Is(context.Cause(ctx), context.DeadlineExceeded):
		return CodeTimeout
	}
	return CodeCanceled
}

// limitCode is the limit that ended the execution, or "".
func (x *execution) limitCode() string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.code
}

func (x *execution) register(rt *jsRuntime) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.active = append(x.active, rt)
	if x.code != "" {
		rt.r.Interrupt(x.code)
	}
}

func (x *execution) unregister(rt *jsRuntime) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for i := len(x.active) - 1; i >= 0; i-- {
		if x.active[i] == rt {
			x.active = append(x.active[:i], x.active[i+1:]...)
			break
		}
	}
}

// finish stops the timers; after it no trip can touch a runtime any more.
func (x *execution) finish() {
	x.mu.Lock()
	x.done = true
	x.mu.Unlock()
	if x.hostCancel != nil {
		x.hostCancel()
	}
}

// hostContext is the context host calls get: the caller's, bounded by the execution's deadline.
func (x *execution) hostContext() context.Context {
	if x.hostCtx == nil {
		x.hostCtx, x.hostCancel = context.WithDeadline(x.ctx, x.deadline)
	}
	return x.hostCtx
}

// logEntryCost is what an entry costs besides its message (its time and level as JSON), so
// that a flood of empty entries is capped too.
const logEntryCost = 32

// log keeps one console entry while the execution's console cap (MaxConsoleBytes) allows; the
// entry that reaches the cap is cut (a copy, so a huge message is not kept alive), later ones
// are counted and dropped.
func (x *execution) log(level, msg string) {
	limit := int(x.limits.MaxConsoleBytes)
	if x.logBytes >= limit {
		x.logsDropped++
		return
	}
	if x.logBytes+len(msg)+logEntryCost > limit {
		msg = cutString(msg, max(limit-x.logBytes-logEntryCost, 0))
		x.logsCut = true
	}
	x.logBytes += len(msg) + logEntryCost
	x.logs = append(x.logs, LogEntry{Time: time.Now(), Level: level, Message: msg})
}

func (x *execution) finalLogs() []LogEntry {
	if x.logsDropped > 0 || x.logsCut {
		return append(x.logs, LogEntry{Time: time.Now(), Level: "warn",
			Message: fmt.Sprintf("[console output truncated at %d bytes (the console cap, --max-console); %d more entries dropped]", x.limits.MaxConsoleBytes, x.logsDropped)})
	}
	return x.logs
}

// enter runs steps, one after the other, inside a runtime of ev under the execution's limits.
// callerDepth is the JS call depth of the calling runtime (0 at the top), which counts toward
// MaxCallDepth. Promise jobs run between steps. It is the one place runtimes are acquired and
// released: a runtime goes back to its pool only when no limit fired and no panic passed.
func (x *execution) enter(ev *elementVersion, callerDepth int, steps ...func(rt *jsRuntime)) (err *Error) {
	if x.hops >= maxElementHops {
		x.trip(CodeStackOverflow)
		return &Error{Code: CodeStackOverflow, Element: ev.el.FullName,
			Message: fmt.Sprintf("calls between elements nested deeper than %d; look for elements calling each other in a loop", maxElementHops)}
	}
	remaining := x.limits.MaxCallDepth - x.depthUsed - callerDepth
	if remaining <= 0 {
		x.trip(CodeStackOverflow)
		return &Error{Code: CodeStackOverflow, Element: ev.el.FullName,
			Message: fmt.Sprintf("maximum call depth %d exceeded", x.limits.MaxCallDepth)}
	}
	rt, newErr := ev.acquire()
	if newErr != nil {
		return &Error{Code: CodeUnavailable, Element: ev.el.FullName, Message: newErr.Error()}
	}
	x.hops++
	x.depthUsed += callerDepth
	rt.r.ClearInterrupt()
	rt.r.SetMaxCallStackSize(remaining)
	rt.x = x
	x.register(rt)
	clean := false
	defer func() {
		if p := recover(); p != nil {
			err = &Error{Code: CodeJSError, Element: ev.el.FullName,
				Message: fmt.Sprintf("internal error in the sandbox: %v", p),
				Details: map[string]any{"goStack": string(debug.Stack())}}
			clean = false
		}
		x.unregister(rt)
		rt.x = nil
		x.hops--
		x.depthUsed -= callerDepth
		if !clean || x.limitCode() != "" {
			rt.broken = true
		}
		ev.release(rt)
	}()
	if e := rt.ensureLoaded(); e != nil {
		// A module that failed half-way has left its runtime in an unknown state.
		return x.mapError(rt, e)
	}
	for _, step := range steps {
		if e := rt.run(func() { step(rt) }); e != nil {
			err = x.mapError(rt, e)
			clean = !isUncatchable(e)
			return err
		}
	}
	clean = true
	return nil
}

// callFunction calls fn of element ev with args (plain Go values) and returns its result as a
// plain Go value. hctx, at the top level only, adds the handler ctx argument. For an element
// built by a loader, fn is looked up on the loader's object first, then in the element's own
// exports (a handler the instance's index.js exports).
func (x *execution) callFunction(ev *elementVersion, fn string, args []any, hctx *HandlerContext, callerDepth int) (any, *Error) {
	out, err := x.callTarget(ev, false, fn, args, hctx, callerDepth)
	if err != nil && err.Code == CodeNotFound && err.missingFunction && ev.el.Loader != "" && ev.entry != "" {
		return x.callTarget(ev, true, fn, args, hctx, callerDepth)
	}
	return out, err
}

// poolFor is the element whose runtimes hold ev's runtime object: the loader element's for an
// element built by a loader (unless own), else ev's.
func (ev *elementVersion) poolFor(own bool) *elementVersion {
	if ev.el.Loader != "" && !own {
		return ev.v.elements[ev.el.Loader]
	}
	return ev
}

func (x *execution) callTarget(ev *elementVersion, own bool, fn string, args []any, hctx *HandlerContext, callerDepth int) (any, *Error) {
	pool := ev.poolFor(own)
	var res goja.Value
	var out any
	var jsArgs []goja.Value
	missing := false
	// The top-level call (no element entered yet) hands its arguments back with ReturnArgs; its
	// result and those arguments leave the sandbox, so they are held to the caps (exportResult).
	top := x.hops == 0
	returnArgs := x.call.ReturnArgs && top
	err := x.enter(pool, callerDepth,
		func(rt *jsRuntime) {
			target := rt.targetFor(ev, own)
			f, ok := goja.AssertFunction(target.Get(fn))
			if !ok {
				missing = true
				return
			}
			jsArgs = make([]goja.Value, 0, len(args)+1)
			for _, a := range args {
				jsArgs = append(jsArgs, rt.toJS(a))
			}
			if hctx != nil {
				jsArgs = append(jsArgs, rt.handlerContext(hctx))
			}
			v, err := f(target, jsArgs...)
			if err != nil {
				panic(err)
			}
			res = v
		},
		func(rt *jsRuntime) {
			if !missing {
				if !top {
					out = rt.fromJS(rt.settle(res))
					return
				}
				var used, usedArgs int64
				out = rt.exportResult(rt.settle(res), &used, false)
				if returnArgs {
					x.argsOut = make([]any, len(args))
					for i := range args {
						x.argsOut[i] = rt.exportResult(jsArgs[i], &usedArgs, true)
					}
				}
			}
		})
	if err == nil && missing {
		err = &Error{Code: CodeNotFound, Message: fmt.Sprintf("element %s has no function %q", ev.el.FullName, fn), missingFunction: true}
	}
	if err != nil && err.Element == "" {
		err.Element = ev.el.FullName
	}
	return out, err
}

var promiseType = reflect.TypeOf((*goja.Promise)(nil))

// settle unwraps what an async function returned. The sandbox has no timers or I/O, so by the
// time the call returns every promise that can settle has settled.
func (rt *jsRuntime) settle(v goja.Value) goja.Value {
	o, ok := v.(*goja.Object)
	if !ok || o.ExportType() != promiseType {
		return v
	}
	p, ok := o.Export().(*goja.Promise)
	if !ok {
		return v
	}
	switch p.State() {
	case goja.PromiseStateFulfilled:
		return p.Result()
	case goja.PromiseStateRejected:
		panic(p.Result())
	}
	rt.throw(CodeJSError, "the function returned a promise that never settled; the sandbox has no timers or I/O, so await only values and service calls")
	return nil
}

// targetFor is the runtime object of ev inside rt: the entry module's exports, or, for an
// element built by a loader (and own false), the object the loader's load(definition, app, own)
// returned in this (the loader element's) runtime, built once per runtime. own, the third
// argument, is a proxy of the element's own exports when it has an entry file.
func (rt *jsRuntime) targetFor(ev *elementVersion, own bool) *goja.Object {
	if ev.el.Loader == "" || own {
		if o := rt.exports(); o != nil {
			return o
		}
		rt.throw(CodeJSError, "module.exports of %s is not an object", ev.el.FullName)
	}
	if o := rt.loaderObjs[ev.el.FullName]; o != nil {
		return o
	}
	m := rt.ev.loaderModule()
	if m == nil {
		rt.throw(CodeNotFound, "loader element %s has no loader.js", rt.ev.el.FullName)
	}
	exp, _ := rt.loadModule(m).Get("exports").(*goja.Object)
	var load goja.Callable
	if exp != nil {
		load, _ = goja.AssertFunction(exp.Get("load"))
	}
	if load == nil {
		rt.throw(CodeNotFound, "%s/loader.js must export load(definition, app)", rt.ev.dir)
	}
	ownExports := goja.Undefined()
	if ev.entry != "" {
		ownExports = rt.jsProxy(ev, true)
	}
	v, err := load(exp, rt.definitionObject(ev), rt.app, ownExports)
	if err != nil {
		panic(err)
	}
	obj, ok := v.(*goja.Object)
	if !ok {
		rt.throw(CodeJSError, "%s/loader.js load() must return an object for %s", rt.ev.dir, ev.el.FullName)
	}
	rt.loaderObjs[ev.el.FullName] = obj
	return obj
}

// handlerContext builds the ctx argument of a handler (see Call.Ctx).
func (rt *jsRuntime) handlerContext(h *HandlerContext) *goja.Object {
	r, x := rt.r, rt.x
	ctx := r.NewObject()
	ro := func(k string, v goja.Value) {
		_ = ctx.DefineDataProperty(k, v, goja.FLAG_FALSE, goja.FLAG_TRUE, goja.FLAG_TRUE)
	}
	for k, v := range h.Extra {
		ro(k, rt.toJS(v))
	}
	ro("requestId", r.ToValue(x.call.RequestID))
	ro("nodeId", r.ToValue(x.call.NodeID))
	ro("attempt", r.ToValue(h.Attempt))
	ro("deadline", rt.newDate(x.deadline))
	setFunc(r, ctx, "log", func(call goja.FunctionCall) goja.Value {
		x.log("log", rt.formatLog(call.Arguments))
		return goja.Undefined()
	})
	setFunc(r, ctx, "fail", func(call goja.FunctionCall) goja.Value {
		reason := ""
		if a := call.Argument(0); !goja.IsUndefined(a) && !goja.IsNull(a) {
			reason = rt.formatValue(a)
		}
		x.failed = &reason
		return goja.Undefined()
	})
	setFunc(r, ctx, "waitCallback", func(goja.FunctionCall) goja.Value {
		x.waitCallback = true
		return goja.Undefined()
	})
	return ctx
}

// acquire takes an idle runtime of the element or makes a new one.
func (ev *elementVersion) acquire() (*jsRuntime, error) {
	ev.mu.Lock()
	if n := len(ev.idle); n > 0 {
		rt := ev.idle[n-1]
		ev.idle[n-1] = nil
		ev.idle = ev.idle[:n-1]
		ev.mu.Unlock()
		return rt, nil
	}
	ev.mu.Unlock()
	return newRuntime(ev)
}

// release keeps rt warm for the next execution unless it is broken, its version was replaced, or
// the pool is full.
func (ev *elementVersion) release(rt *jsRuntime) {
	if rt.broken || ev.v.retired.Load() {
		return
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if len(ev.idle) < ev.maxIdle && !ev.v.retired.Load() {
		ev.idle = append(ev.idle, rt)
	}
}

// drain drops every idle runtime of the version (after a Load replaced it, or Close).
func (v *version) drain() {
	v.retired.Store(true)
	for _, ev := range v.elements {
		ev.mu.Lock()
		ev.idle = nil
		ev.mu.Unlock()
	}
}
