package jsvm

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/dop251/goja"
)

// getElement is app.getElement(fullName): the runtime object of another element, built in this
// runtime out of plain values and native functions. Nothing of the other element's runtime is
// shared: calls go through proxies that copy arguments and results.
func (rt *jsRuntime) getElement(name string) goja.Value {
	ev := rt.ev.v.elements[name]
	if ev == nil {
		rt.throw(CodeNotFound, "element %q not found; check the fullName (for example \"services.BackupSvc\")", name)
	}
	switch {
	case ev.el.Loader != "" || ev.el.Kind == KindJS:
		return rt.jsProxy(ev, false)
	case ev.el.Kind == KindHost:
		return rt.hostProxy(name, ev.el.Methods, false)
	default:
		return rt.definitionObject(ev)
	}
}

// elementShape is what a JS element's runtime object offers: its function names and a copy of
// its other (data) properties.
type elementShape struct {
	funcs []string
	data  map[string]any
}

// jsProxy describes ev by looking at its runtime object in one of its own runtimes, then builds a
// plain object here whose methods call into that element.
// With own set it shows the element's own exports even when a loader builds its runtime object.
func (rt *jsRuntime) jsProxy(ev *elementVersion, own bool) goja.Value {
	shape := ev.cachedShape(own)
	if shape == nil {
		if err := rt.x.enter(ev.poolFor(own), rt.callDepth(), func(callee *jsRuntime) {
			s := callee.shapeOf(callee.targetFor(ev, own))
			shape = &s
		}); err != nil {
			if err.Element == "" {
				err.Element = ev.el.FullName
			}
			rt.throwError(err)
		}
		ev.cacheShape(own, shape)
	}
	obj := rt.r.NewObject()
	for k, v := range shape.data {
		_ = obj.DefineDataProperty(k, rt.toJS(v), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE)
	}
	for _, name := range shape.funcs {
		setFunc(rt.r, obj, name, rt.elementMethod(ev, own, name))
	}
	return obj
}

// cachedShape is the element's shape when an earlier getElement found it made of functions
// only; such a shape is fixed by the code, so later calls need not enter the element to see it.
func (ev *elementVersion) cachedShape(own bool) *elementShape {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return ev.shapes[shapeIndex(own)]
}

func (ev *elementVersion) cacheShape(own bool, s *elementShape) {
	if len(s.data) > 0 {
		return // data properties are copied fresh on every getElement
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	ev.shapes[shapeIndex(own)] = s
}

func shapeIndex(own bool) int {
	if own {
		return 1
	}
	return 0
}

// shapeOf lists the functions of o (own and inherited, as class instances have them) and copies
// its own non-function properties.
func (rt *jsRuntime) shapeOf(o *goja.Object) elementShape {
	shape := elementShape{data: map[string]any{}}
	seen := map[string]bool{"constructor": true}
	objectProto := rt.r.NewObject().Prototype()
	for p, depth := o, 0; p != nil && p != objectProto && depth < 32; p, depth = p.Prototype(), depth+1 {
		names := p.GetOwnPropertyNames()
		if depth == 0 {
			names = o.Keys()
		}
		for _, k := range names {
			if seen[k] {
				continue
			}
			seen[k] = true
			v := p.Get(k)
			if _, ok := goja.AssertFunction(v); ok {
				shape.funcs = append(shape.funcs, k)
			} else if depth == 0 {
				shape.data[k] = rt.fromJS(v)
			}
		}
	}
	sort.Strings(shape.funcs)
	return shape
}

// callDepth is how deep the JS call stack of rt is right now.
func (rt *jsRuntime) callDepth() int {
	return len(rt.r.CaptureCallStack(0, nil))
}

// elementMethod is the native function behind proxy.method(...): arguments are exported here,
// the call runs in a runtime of ev, and the result is copied back.
func (rt *jsRuntime) elementMethod(ev *elementVersion, own bool, name string) func(goja.FunctionCall) goja.Value {
	return func(call goja.FunctionCall) goja.Value {
		x := rt.x
		if x == nil {
			rt.throw(CodeUnavailable, "%s.%s can only be called while the element is running", ev.el.FullName, name)
		}
		args := make([]any, len(call.Arguments))
		for i, a := range call.Arguments {
			args[i] = rt.fromJS(a)
		}
		var out any
		var err *Error
		if own {
			out, err = x.callTarget(ev, true, name, args, nil, rt.callDepth())
		} else {
			out, err = x.callFunction(ev, name, args, nil, rt.callDepth())
		}
		if err != nil {
			rt.throwError(err)
		}
		return rt.toJS(out)
	}
}

// hostProxy is the runtime object of a Go-backed element. With methods known it is a plain
// object with one function each; otherwise (app.getBuiltin, or a host element that lists none) a
// dynamic object answering any method name, since only the host knows its methods.
func (rt *jsRuntime) hostProxy(fullName string, methods []string, builtin bool) goja.Value {
	if len(methods) > 0 {
		obj := rt.r.NewObject()
		for _, m := range methods {
			setFunc(rt.r, obj, m, rt.hostMethod(fullName, m, builtin))
		}
		return obj
	}
	return rt.r.NewDynamicObject(&dynamicHost{rt: rt, fullName: fullName, builtin: builtin, fns: map[string]goja.Value{}})
}

// dynamicHost backs a host proxy whose methods are not listed. It answers names that look like
// methods; names JS machinery probes (then, toJSON...) stay undefined so awaiting or printing
// the proxy does not call the host.
type dynamicHost struct {
	rt       *jsRuntime
	fullName string
	builtin  bool
	fns      map[string]goja.Value
}

var probedNames = map[string]bool{"then": true, "toJSON": true, "constructor": true, "toString": true,
	"valueOf": true, "inspect": true, "prototype": true, "length": true, "name": true}

func (d *dynamicHost) Get(key string) goja.Value {
	if probedNames[key] || strings.HasPrefix(key, "__") {
		return nil
	}
	if f, ok := d.fns[key]; ok {
		return f
	}
	f := d.rt.r.ToValue(d.rt.hostMethod(d.fullName, key, d.builtin))
	d.fns[key] = f
	return f
}
func (d *dynamicHost) Set(string, goja.Value) bool { return false }
func (d *dynamicHost) Has(key string) bool         { return d.Get(key) != nil }
func (d *dynamicHost) Delete(string) bool          { return false }
func (d *dynamicHost) Keys() []string              { return nil }

// hostMethod is the native function behind a host proxy's method: it exports the arguments and
// hands them to Options.Host with the execution's deadline.
//
// An execution whose context ends (its caller canceled, or a deadline passed) while it waits in
// the host ends with canceled or timeout, uncatchable like any other limit. The host typically
// answers such a call with the context's error, and the trip that context.AfterFunc or the
// timer make runs on another goroutine, maybe after this one has thrown; so the limit is tripped
// here, from the context itself, before anything is thrown into JS, and JS never sees the
// host's context error as an Error it could catch.
func (rt *jsRuntime) hostMethod(fullName, method string, builtin bool) func(goja.FunctionCall) goja.Value {
	return func(call goja.FunctionCall) goja.Value {
		x := rt.x
		if x == nil {
			rt.throw(CodeUnavailable, "%s.%s can only be called while the element is running", fullName, method)
		}
		host := x.vm.opts.Host
		if host == nil {
			rt.throw(CodeUnavailable, "no host is configured to serve %s.%s", fullName, method)
		}
		args := make([]any, len(call.Arguments))
		for i, a := range call.Arguments {
			args[i] = rt.fromJS(a)
		}
		// An execution that has already ended makes no more host calls.
		rt.throwIfEnded()
		res, err := rt.callHost(host, HostCall{
			FullName: fullName, Builtin: builtin, Method: method, Args: args,
			Caller: rt.ev.el.FullName, RequestID: x.call.RequestID, NodeID: x.call.NodeID,
		})
		rt.throwIfEnded()
		if err != nil {
			rt.throwHostError(fullName, method, err)
		}
		return rt.toJS(res)
	}
}

// throwIfEnded ends the execution, uncatchably, when its context has ended or a limit or an
// abort has already ended it.
func (rt *jsRuntime) throwIfEnded() {
	x := rt.x
	if code := x.ctxEndCode(); code != "" {
		x.trip(code)
	}
	if code := x.limitCode(); code != "" {
		// The trip has interrupted this runtime: no catch runs, and mapError reports the limit.
		panic(rt.newCodedError(code, x.endError(code).Message, nil))
	}
}

// callHost calls the host with the execution's context. A panic in the host aborts the
// execution (see hostPanicError).
func (rt *jsRuntime) callHost(host HostCaller, call HostCall) (res any, err error) {
	defer func() {
		if p := recover(); p != nil {
			rt.x.abort(hostPanicError(rt.ev.el.FullName, call, p))
			res, err = nil, nil
		}
	}()
	return host.CallHost(rt.x.hostContext(), call)
}

// hostPanicError is the error of an execution whose host call panicked.
//
// Why a host panic ends the whole execution, with nothing in JS able to catch it (in the VM and
// in the isolated executor alike): a panic is a fault of Trellis, not a failure the host meant
// to report to the app, and the host's state after it is unknown. Code that could catch it would
// carry on as if the call had merely failed, possibly retrying into the same bug or swallowing
// it, and the fault would never reach whoever runs Trellis. So the execution ends as js_error
// naming the panic, with the host's Go stack in Details, like a panic anywhere in the sandbox.
// A panic value with a GoStack() string method (the isolated executor re-raises its host's
// panics in the worker that way) gives the stack where the panic really happened.
func hostPanicError(caller string, call HostCall, p any) *Error {
	stack := string(debug.Stack())
	if s, ok := p.(interface{ GoStack() string }); ok {
		stack = s.GoStack()
	}
	return &Error{Code: CodeJSError, Element: caller,
		Message: fmt.Sprintf("internal error in the host serving %s.%s: %v", call.FullName, call.Method, p),
		Details: map[string]any{"goStack": stack}}
}

// throwHostError throws a host failure as a JS Error with .code, .message and .details. Details
// are a *jsvm.Error's, or what the error (or one it wraps) gives with ErrorDetails() any when
// that is a map[string]any (a *jsvm.Error's own ErrorDetails is the error itself, not a map).
func (rt *jsRuntime) throwHostError(fullName, method string, err error) {
	code := CodeInternal
	var details map[string]any
	var e *Error
	var c CodedError
	switch {
	case errors.As(err, &e):
		code, details = e.Code, e.Details
	case errors.As(err, &c):
		code = c.ErrorCode()
	case errors.Is(err, context.DeadlineExceeded):
		code = CodeTimeout
	case errors.Is(err, context.Canceled):
		code = CodeCanceled
	}
	var d interface{ ErrorDetails() any }
	if errors.As(err, &d) {
		if m, ok := d.ErrorDetails().(map[string]any); ok {
			details = m
		}
	}
	msg := err.Error()
	if e != nil {
		msg = e.Message
	}
	if code == CodeInternal {
		msg = fmt.Sprintf("%s.%s: %s", fullName, method, msg)
	}
	panic(rt.newCodedError(code, msg, details))
}
