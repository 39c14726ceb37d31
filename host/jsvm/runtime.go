package jsvm

import (
	"fmt"

	"github.com/dop251/goja"
)

// jsRuntime is one goja runtime of one element of one version. It is used by one goroutine at a
// time: an execution acquires it from its element's pool, runs in it and gives it back (or drops
// it, when a limit ended the execution or a panic left it in doubt).
type jsRuntime struct {
	ev *elementVersion
	r  *goja.Runtime
	x  *execution // the execution using the runtime now; nil while idle

	app         *goja.Object
	entryModule *goja.Object // the entry file's module object, once loaded
	loaded      bool
	broken      bool
	nativeDepth int                     // nesting of guarded native calls (see guardMethod)
	modules     map[string]*goja.Object // module objects by path, Node's require cache
	loaderObjs  map[string]*goja.Object // objects built by this element's loader.js, by fullName
	dataObjs    map[string]*goja.Object // frozen definitions, by fullName

	// Intrinsics captured before any user code runs, so an element that replaces Date, Error,
	// JSON or Reflect in its own runtime cannot change how the sandbox itself behaves.
	dateNew        goja.Constructor
	errorNew       goja.Constructor
	rangeErrorNew  goja.Constructor
	syntaxErrorNew goja.Constructor
	jsonParse      goja.Callable
	jsonStringify  goja.Callable
	objectFreeze   goja.Callable
	trampoline     goja.Callable
	adoptStatics   goja.Callable // (wrapper, original): see guardConstructor
	pending        func()
}

// binders set up the sandbox's API, one per namespace (pocketbase's BindX pattern); a test
// counts them and what each adds, so a new global cannot slip in unnoticed.
func binders() []binder {
	return []binder{
		{"guards", bindGuards},
		{"console", bindConsole},
		{"app", bindApp},
		{"require", bindRequire},
	}
}

type binder struct {
	name string
	bind func(rt *jsRuntime) error
}

// hiddenGlobals are goja extras that are not ECMAScript and say nothing useful to app code.
var hiddenGlobals = []string{"GoError"}

func newRuntime(ev *elementVersion) (*jsRuntime, error) {
	r := goja.New()
	rt := &jsRuntime{
		ev:         ev,
		r:          r,
		modules:    map[string]*goja.Object{},
		loaderObjs: map[string]*goja.Object{},
		dataObjs:   map[string]*goja.Object{},
	}
	if err := rt.captureIntrinsics(); err != nil {
		return nil, err
	}
	for _, name := range hiddenGlobals {
		if err := r.GlobalObject().Delete(name); err != nil {
			return nil, fmt.Errorf("jsvm: hide %s: %w", name, err)
		}
	}
	// Integers past 2^53 reach JS as BigInts (intValue); JSON has no BigInt, so JSON.stringify
	// writes them as strings instead of throwing at the first large id.
	if _, err := r.RunString(`Object.defineProperty(BigInt.prototype, "toJSON", {value: function () { return this.toString(); }, writable: true, configurable: true})`); err != nil {
		return nil, fmt.Errorf("jsvm: BigInt.prototype.toJSON: %w", err)
	}
	for _, b := range binders() {
		if err := b.bind(rt); err != nil {
			return nil, fmt.Errorf("jsvm: bind %s: %w", b.name, err)
		}
	}
	return rt, nil
}

func (rt *jsRuntime) captureIntrinsics() error {
	r := rt.r
	var ok bool
	get := func(path ...string) goja.Value {
		v := r.Get(path[0])
		for _, p := range path[1:] {
			v = v.ToObject(r).Get(p)
		}
		return v
	}
	ctor := func(name string) goja.Constructor {
		c, found := goja.AssertConstructor(get(name))
		ok = ok && found
		return c
	}
	fn := func(path ...string) goja.Callable {
		f, found := goja.AssertFunction(get(path...))
		ok = ok && found
		return f
	}
	ok = true
	rt.dateNew = ctor("Date")
	rt.errorNew = ctor("Error")
	rt.rangeErrorNew = ctor("RangeError")
	rt.syntaxErrorNew = ctor("SyntaxError")
	rt.jsonParse = fn("JSON", "parse")
	rt.jsonStringify = fn("JSON", "stringify")
	rt.objectFreeze = fn("Object", "freeze")
	tramp := r.ToValue(func(goja.FunctionCall) goja.Value {
		f := rt.pending
		rt.pending = nil
		f()
		return goja.Undefined()
	})
	rt.trampoline, _ = goja.AssertFunction(tramp)
	adopt, err := r.RunString(`(function (w, t) {
		for (const k of Reflect.ownKeys(t)) {
			if (k !== "prototype" && k !== "name" && k !== "length") Object.defineProperty(w, k, Object.getOwnPropertyDescriptor(t, k));
		}
		Object.setPrototypeOf(w, Object.getPrototypeOf(t));
	})`)
	if err != nil {
		return fmt.Errorf("jsvm: compile the statics helper: %w", err)
	}
	rt.adoptStatics, _ = goja.AssertFunction(adopt)
	if !ok || rt.adoptStatics == nil {
		return fmt.Errorf("jsvm: goja runtime lacks a standard built-in")
	}
	return nil
}

// run executes f inside the runtime, as a native function would run: exceptions f throws (by
// panicking with a JS value) come back as errors, the limits apply to any JS f calls, and
// promise jobs run when it returns.
func (rt *jsRuntime) run(f func()) error {
	prev := rt.pending
	rt.pending = f
	_, err := rt.trampoline(goja.Undefined())
	rt.pending = prev
	return err
}

// newCodedError makes a JS Error with .code (and .details) to throw into the sandbox.
func (rt *jsRuntime) newCodedError(code, msg string, details map[string]any) *goja.Object {
	return rt.newCodedErrorWith(rt.errorNew, code, msg, details)
}

func (rt *jsRuntime) newCodedErrorWith(ctor goja.Constructor, code, msg string, details map[string]any) *goja.Object {
	e, err := ctor(nil, rt.r.ToValue(msg))
	if err != nil {
		panic(err)
	}
	_ = e.DefineDataProperty("code", rt.r.ToValue(code), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE)
	if len(details) > 0 {
		_ = e.DefineDataProperty("details", rt.toJS(details), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE)
	}
	return e
}

// throw raises a coded JS Error in the sandbox from a native function.
func (rt *jsRuntime) throw(code, format string, args ...any) {
	panic(rt.newCodedError(code, fmt.Sprintf(format, args...), nil))
}

// memoryCap is the current execution's memory limit (0 when idle).
func (rt *jsRuntime) memoryCap() int64 {
	if rt.x == nil {
		return 0
	}
	return rt.x.limits.MemoryBytes
}

// freezeDeep freezes o and every object reachable through its own enumerable properties, so a
// definition handed to code stays read-only all the way down.
func (rt *jsRuntime) freezeDeep(v goja.Value, depth int) {
	o, ok := v.(*goja.Object)
	if !ok || depth > maxValueDepth {
		return
	}
	for _, k := range o.Keys() {
		rt.freezeDeep(o.Get(k), depth+1)
	}
	if _, err := rt.objectFreeze(goja.Undefined(), o); err != nil {
		panic(err)
	}
}

// definitionObject is a frozen copy of ev's Definition in this runtime, cached per runtime.
func (rt *jsRuntime) definitionObject(ev *elementVersion) *goja.Object {
	if o := rt.dataObjs[ev.el.FullName]; o != nil {
		return o
	}
	def := ev.el.Definition
	if def == nil {
		def = map[string]any{}
	}
	o := rt.toJS(def).(*goja.Object)
	rt.freezeDeep(o, 0)
	rt.dataObjs[ev.el.FullName] = o
	return o
}
