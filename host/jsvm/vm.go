package jsvm

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-run/trellis/host/vocab"
)

// VM is the in-process Executor: every element's code runs in goja runtimes of this process,
// pooled per element. It stops busy loops, deep recursion and the allocations its guards can
// see; only the isolated executor can stop a built-in that ignores interrupts (see
// docs/sandbox.md).
type VM struct {
	opts    Options
	limits  Limits
	current atomic.Pointer[version]
	closed  atomic.Bool

	progMu sync.Mutex
	progs  programCache // the programs of the last version loaded (see programCache)
}

var _ Executor = (*VM)(nil)

// New makes a VM; it runs nothing until Load gives it a Source.
func New(opts Options) (*VM, error) {
	if opts.MaxIdlePerElement < 0 {
		return nil, fmt.Errorf("jsvm: Options.MaxIdlePerElement must be >= 0, got %d", opts.MaxIdlePerElement)
	}
	if opts.MaxIdlePerElement == 0 {
		opts.MaxIdlePerElement = 4
	}
	if l := opts.Limits; l.Timeout < 0 || l.MemoryBytes < 0 || l.MaxCallDepth < 0 || l.MaxResultBytes < 0 || l.MaxErrorBytes < 0 ||
		l.MaxConsoleBytes < 0 || l.MaxValueDepth < 0 || l.MaxMessageBytes < 0 {
		return nil, fmt.Errorf("jsvm: Options.Limits must not be negative, got %+v", opts.Limits)
	}
	return &VM{opts: opts, limits: opts.Limits.WithDefaults()}, nil
}

// Load compiles every file of src and makes it the version new executions run. On any error
// (all problems are reported, joined, each an *Error with its file and position) the previous
// version stays in service.
func (vm *VM) Load(src *Source) error {
	if vm.closed.Load() {
		return ErrClosed
	}
	if src == nil {
		return &Error{Code: CodeInvalidArg, Message: "Load needs a Source"}
	}
	vm.progMu.Lock()
	cache := vm.progs
	vm.progMu.Unlock()
	used := programCache{}
	v, err := compileSource(src, vm.opts.MaxIdlePerElement, cache, used)
	if err != nil {
		return err
	}
	vm.progMu.Lock()
	vm.progs = used
	vm.progMu.Unlock()
	if old := vm.current.Swap(v); old != nil {
		old.drain()
	}
	if vm.closed.Load() {
		v.drain()
	}
	return nil
}

// Close drops every idle runtime; executions still running finish, later ones fail.
func (vm *VM) Close() error {
	vm.closed.Store(true)
	if v := vm.current.Load(); v != nil {
		v.drain()
	}
	return nil
}

// Execute runs call.Function of call.Element with call.Args under the call's limits.
func (vm *VM) Execute(ctx context.Context, call Call) (Result, error) {
	if call.Around != nil {
		return vm.executeAround(ctx, call)
	}
	if vm.closed.Load() {
		return Result{}, ErrClosed
	}
	v := vm.current.Load()
	if v == nil {
		return Result{}, &Error{Code: CodeUnavailable, Message: ErrNoSource.Error() + "; call Load first", cause: ErrNoSource}
	}
	ev := v.elements[call.Element]
	if ev == nil {
		return Result{}, &Error{Code: CodeNotFound, Element: call.Element,
			Message: fmt.Sprintf("element %q not found", call.Element)}
	}
	if call.Function == "" {
		return Result{}, &Error{Code: CodeNotFound, Element: call.Element,
			Message: fmt.Sprintf("no function named for element %q", call.Element)}
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if ev.el.Loader == "" && ev.el.Kind != KindJS {
		return vm.executeHost(ctx, ev, call)
	}

	limits := vm.limitsFor(ev, call.Limits)
	if vocab.DeeperThan(any(call.Args), limits.MaxValueDepth+1) || (call.Ctx != nil && vocab.DeeperThan(call.Ctx.Extra, limits.MaxValueDepth+1)) {
		return Result{}, &Error{Code: CodeInvalidArg, Element: call.Element, Message: fmt.Sprintf(
			"the arguments are nested deeper than %d levels (the nesting cap, --max-depth); flatten them", limits.MaxValueDepth)}
	}
	x := &execution{vm: vm, v: v, call: &call, limits: limits, ctx: ctx, start: time.Now()}
	x.deadline = x.start.Add(limits.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(x.deadline) {
		x.deadline = d
	}
	timer := time.AfterFunc(time.Until(x.deadline), func() { x.trip(CodeTimeout) })
	defer timer.Stop()
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { x.trip(ctxEndCode(ctx)) })
		defer stop()
	}
	if vm.opts.MemoryProbe != nil {
		stop := x.watchMemory(vm.opts.MemoryProbe)
		defer stop()
	}
	defer x.finish()

	out, err := x.callFunction(ev, call.Function, call.Args, call.Ctx, 0)
	res := Result{Value: out, Logs: x.finalLogs(), Duration: time.Since(x.start),
		Failed: x.failed, WaitCallback: x.waitCallback, Args: x.argsOut}
	if res.Failed != nil && len(*res.Failed) > int(limits.MaxErrorBytes) {
		e := &Error{Message: *res.Failed}
		capError(e, limits.MaxErrorBytes)
		res.Failed = &e.Message
	}
	if err != nil {
		res.Value, res.Args = nil, nil
		capError(err, limits.MaxErrorBytes)
		return res, err
	}
	return res, nil
}

// executeHost lets Execute address a Go-backed element directly, so callers need not care which
// side implements an element.
func (vm *VM) executeHost(ctx context.Context, ev *elementVersion, call Call) (res Result, err error) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			res, err = Result{Duration: time.Since(start)}, &Error{Code: CodeJSError, Element: call.Element,
				Message: fmt.Sprintf("internal error in the host serving %s.%s: %v", call.Element, call.Function, p)}
		}
	}()
	if ev.el.Kind != KindHost {
		return Result{}, &Error{Code: CodeNotFound, Element: call.Element,
			Message: fmt.Sprintf("element %q has no code, so it has no function %q", call.Element, call.Function)}
	}
	if vm.opts.Host == nil {
		return Result{}, &Error{Code: CodeUnavailable, Element: call.Element,
			Message: fmt.Sprintf("no host is configured to serve %s.%s", call.Element, call.Function)}
	}
	limits := vm.limitsFor(ev, call.Limits)
	ctx, cancel := context.WithTimeout(ctx, limits.Timeout)
	defer cancel()
	out, hostErr := vm.opts.Host.CallHost(ctx, HostCall{FullName: call.Element, Method: call.Function, Args: call.Args,
		RequestID: call.RequestID, NodeID: call.NodeID})
	// A deadline that passed (or a cancel that came) while the host served the call ends it as it
	// would end JavaScript, whatever the host made of its ctx's error ("context deadline
	// exceeded", maybe wrapped in an error of its own) or answered after it.
	if code := ctxEndCode(ctx); code != "" {
		e := &Error{Code: code, Element: call.Element, Message: limitMessages[code]}
		if code == CodeTimeout {
			e.Message = fmt.Sprintf("execution ran past its timeout of %s", limits.Timeout)
		}
		return Result{Duration: time.Since(start)}, e
	}
	if hostErr != nil {
		e := AsError(hostErr)
		if e.Element == "" {
			e.Element = call.Element
		}
		return Result{Duration: time.Since(start)}, e
	}
	return Result{Value: out, Duration: time.Since(start)}, nil
}

// limitsFor resolves an execution's limits: the call's, then the element's timeout, then the
// VM's, then DefaultLimits.
func (vm *VM) limitsFor(ev *elementVersion, l Limits) Limits {
	if l.Timeout <= 0 {
		l.Timeout = ev.el.Timeout
	}
	if l.Timeout <= 0 {
		l.Timeout = vm.limits.Timeout
	}
	if l.MemoryBytes <= 0 {
		l.MemoryBytes = vm.limits.MemoryBytes
	}
	if l.MaxCallDepth <= 0 {
		l.MaxCallDepth = vm.limits.MaxCallDepth
	}
	return l.withCapDefaults(vm.limits).WithDefaults()
}

// watchMemory samples probe every millisecond and trips memory_limit when the process grew by
// more than the execution's MemoryBytes since it started.
func (x *execution) watchMemory(probe func() uint64) (stop func()) {
	base := probe()
	limit := uint64(x.limits.MemoryBytes)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(memoryProbeInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if now := probe(); now > base && now-base > limit {
					x.trip(CodeMemoryLimit)
					return
				}
			}
		}
	}()
	return func() { close(done) }
}

// executeAround runs call between the hooks of call.Around (see Around), each an Execute of its
// own, and reports the hooks' outcomes in the call's Result.Hooks.
func (vm *VM) executeAround(ctx context.Context, call Call) (Result, error) {
	around := *call.Around
	call.Around = nil
	if err := around.check(call); err != nil {
		return Result{}, err
	}
	var hooks []HookOutcome
	hook := func(h *HookStep) (HookOutcome, map[string]any) {
		start := time.Now()
		res, err := vm.Execute(ctx, Call{Element: call.Element, Function: h.Function, Args: h.Args, Limits: call.Limits,
			RequestID: call.RequestID, NodeID: h.NodeID, ReturnArgs: true})
		out := HookOutcome{Function: h.Function, Result: res, Start: start, End: time.Now()}
		if err != nil {
			out.Err = AsError(err)
			return out, nil
		}
		if len(res.Args) > 0 {
			data, _ := res.Args[0].(map[string]any)
			return out, data
		}
		return out, nil
	}
	if h := around.Before; h != nil {
		out, data := hook(h)
		hooks = append(hooks, out)
		if data != nil {
			arg := call.Args[0].(map[string]any) // check made sure
			changed := make(map[string]any, len(arg))
			for k, v := range arg {
				changed[k] = v
			}
			changed[h.Field] = data[h.Field]
			call.Args = append([]any{changed}, call.Args[1:]...)
		}
	}
	res, err := vm.Execute(ctx, call)
	if h := around.After; h != nil && err == nil && res.Failed == nil && !res.WaitCallback {
		arg := h.Args[0].(map[string]any) // check made sure
		given := make(map[string]any, len(arg)+1)
		for k, v := range arg {
			given[k] = v
		}
		given[h.Field] = res.Value
		step := *h
		step.Args = append([]any{given}, h.Args[1:]...)
		out, _ := hook(&step)
		hooks = append(hooks, out)
	}
	res.Hooks = hooks
	return res, err
}

// check refuses an Around whose hooks cannot be run as it says: each needs a function, a field,
// and an object as its first argument; Before needs an object as the call's first argument too.
func (a Around) check(call Call) error {
	bad := func(msg string) error {
		return &Error{Code: CodeInvalidArg, Element: call.Element, Message: "Call.Around: " + msg}
	}
	for _, h := range []struct {
		name string
		step *HookStep
	}{{"Before", a.Before}, {"After", a.After}} {
		if h.step == nil {
			continue
		}
		if h.step.Function == "" || h.step.Field == "" {
			return bad(h.name + " needs a Function and a Field")
		}
		if len(h.step.Args) == 0 {
			return bad(h.name + " has no arguments; its first must be an object")
		}
		if _, ok := h.step.Args[0].(map[string]any); !ok {
			return bad(fmt.Sprintf("%s's first argument is %T, not an object", h.name, h.step.Args[0]))
		}
	}
	if a.Before != nil {
		if len(call.Args) == 0 {
			return bad("Before hands a field to the call's first argument, but the call has none")
		}
		if _, ok := call.Args[0].(map[string]any); !ok {
			return bad(fmt.Sprintf("Before hands a field to the call's first argument, which is %T, not an object", call.Args[0]))
		}
	}
	return nil
}
