package jsvm

import (
	"fmt"
	"math"

	"github.com/dop251/goja"
)

// bindGuards wraps the built-ins that can allocate a huge block in one native call (repeat,
// padStart/padEnd, join, fill, Array.from, ArrayBuffer and the typed arrays), so that a request
// for more than the execution's MemoryBytes fails before allocating: it throws a RangeError with
// code memory_limit and ends the execution. Interrupts cannot stop these calls once they have
// started, which is why they are checked up front. The estimates are cheap lower bounds, not
// accounting: growth through many small allocations is left to the MemoryProbe and to the
// isolated executor.
func bindGuards(rt *jsRuntime) error {
	r := rt.r
	str := r.Get("String").ToObject(r).Get("prototype").ToObject(r)
	arr := r.Get("Array").ToObject(r)
	arrProto := arr.Get("prototype").ToObject(r)

	thisLen := func(this goja.Value) float64 {
		if goja.IsUndefined(this) || goja.IsNull(this) {
			return 0
		}
		return float64(len(this.String()))
	}
	guards := []struct {
		obj      *goja.Object
		name     string
		estimate func(call goja.FunctionCall) float64
	}{
		{str, "repeat", func(c goja.FunctionCall) float64 {
			return thisLen(c.This) * c.Argument(0).ToFloat()
		}},
		{str, "padStart", func(c goja.FunctionCall) float64 { return c.Argument(0).ToFloat() }},
		{str, "padEnd", func(c goja.FunctionCall) float64 { return c.Argument(0).ToFloat() }},
		{arrProto, "join", func(c goja.FunctionCall) float64 {
			sep := 1.0
			if s := c.Argument(0); !goja.IsUndefined(s) {
				sep = float64(len(s.String()))
			}
			return (arrayLength(r, c.This) - 1) * sep
		}},
		{arrProto, "fill", func(c goja.FunctionCall) float64 {
			n := arrayLength(r, c.This)
			start := relativeIndex(c.Argument(1), n, 0)
			end := relativeIndex(c.Argument(2), n, n)
			return (end - start) * valueSlotBytes
		}},
		// toLocaleString recurses natively through nested arrays, as join does.
		{arrProto, "toLocaleString", func(c goja.FunctionCall) float64 { return arrayLength(r, c.This) - 1 }},
		{arr, "from", func(c goja.FunctionCall) float64 {
			if o, ok := c.Argument(0).(*goja.Object); ok && o.ClassName() == "Object" {
				return toLengthFloat(o.Get("length")) * valueSlotBytes
			}
			return 0
		}},
	}
	for _, g := range guards {
		if err := rt.guardMethod(g.obj, g.name, g.estimate); err != nil {
			return err
		}
	}
	if err := rt.guardJSONStringify(); err != nil {
		return err
	}
	if err := rt.bindCompileGuards(); err != nil {
		return err
	}
	if err := rt.guardFlat(arrProto); err != nil {
		return err
	}
	if err := rt.guardConstructor("ArrayBuffer", 1); err != nil {
		return err
	}
	for _, name := range []string{"Uint8Array", "Uint8ClampedArray", "Int8Array", "Uint16Array", "Int16Array",
		"Uint32Array", "Int32Array", "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array"} {
		bpe := r.Get(name).ToObject(r).Get("BYTES_PER_ELEMENT").ToFloat()
		if err := rt.guardConstructor(name, bpe); err != nil {
			return err
		}
	}
	return nil
}

// valueSlotBytes is what one array element costs at least in goja (an interface value).
const valueSlotBytes = 16

// overMemory ends the execution with memory_limit when a call would allocate more than the cap.
func (rt *jsRuntime) overMemory(what string, bytes float64) {
	limit := rt.memoryCap()
	if limit <= 0 || !(bytes > float64(limit)) {
		return
	}
	if rt.x != nil {
		rt.x.trip(CodeMemoryLimit)
	}
	panic(rt.newCodedErrorWith(rt.rangeErrorNew, CodeMemoryLimit,
		fmt.Sprintf("%s would allocate about %.0f bytes, over the memory limit of %d bytes", what, bytes, limit), nil))
}

// overDepth ends the execution with stack_overflow when a native recursion nests deeper than the
// execution's MaxCallDepth.
func (rt *jsRuntime) overDepth(depth int) {
	if rt.x == nil || depth <= rt.x.limits.MaxCallDepth {
		return
	}
	rt.x.trip(CodeStackOverflow)
	panic(rt.newCodedErrorWith(rt.rangeErrorNew, CodeStackOverflow,
		fmt.Sprintf("value nested deeper than the maximum call depth %d", rt.x.limits.MaxCallDepth), nil))
}

// guardJSONStringify bounds the nesting JSON.stringify walks. goja's stringify recurses in Go and
// checks for cycles by scanning its whole path, so a value nested a million deep would run for
// hours without ever reaching an interrupt check. The guard passes a replacer that tracks the
// path of holders (the replacer is called with each holder as this, depth first) and stops
// at MaxCallDepth; a replacer the caller gave still runs, first.
func (rt *jsRuntime) guardJSONStringify() error {
	r := rt.r
	jsonObj := r.Get("JSON").ToObject(r)
	orig := rt.jsonStringify
	wrapped := r.ToValue(func(call goja.FunctionCall) goja.Value {
		args := append([]goja.Value{}, call.Arguments...)
		for len(args) < 3 {
			args = append(args, goja.Undefined())
		}
		if replacer, isObj := args[1].(*goja.Object); isObj && replacer.ClassName() == "Array" {
			// A property allow-list cannot be combined with a replacer function; stringify it as
			// given (the isolated executor bounds what this path can cost).
			v, err := orig(call.This, args...)
			if err != nil {
				panic(err)
			}
			return v
		}
		user, _ := goja.AssertFunction(args[1])
		var path []*goja.Object
		args[1] = r.ToValue(func(c goja.FunctionCall) goja.Value {
			holder, _ := c.This.(*goja.Object)
			for len(path) > 0 && path[len(path)-1] != holder {
				path = path[:len(path)-1]
			}
			if len(path) == 0 {
				path = append(path, holder)
			}
			v := c.Argument(1)
			if user != nil {
				var err error
				if v, err = user(c.This, c.Arguments...); err != nil {
					panic(err)
				}
			}
			if o, ok := v.(*goja.Object); ok {
				// If stringify descends into o, o is the holder of the next call.
				path = append(path, o)
				rt.overDepth(len(path))
			}
			return v
		})
		v, err := orig(call.This, args...)
		if err != nil {
			panic(err)
		}
		return v
	}).(*goja.Object)
	// The sandbox's own uses (console, error messages) go through the guard too.
	rt.jsonStringify, _ = goja.AssertFunction(wrapped)
	_ = wrapped.DefineDataProperty("name", r.ToValue("stringify"), goja.FLAG_FALSE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	_ = wrapped.DefineDataProperty("length", r.ToValue(3), goja.FLAG_FALSE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	return jsonObj.DefineDataProperty("stringify", wrapped, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
}

func (rt *jsRuntime) guardMethod(obj *goja.Object, name string, estimate func(goja.FunctionCall) float64) error {
	orig, ok := goja.AssertFunction(obj.Get(name))
	if !ok {
		return fmt.Errorf("jsvm: built-in %s is not a function", name)
	}
	length := obj.Get(name).ToObject(rt.r).Get("length")
	wrapped := rt.r.ToValue(func(call goja.FunctionCall) goja.Value {
		rt.overMemory(name, estimate(call))
		// join recurses natively through nested arrays (String(a) of [[[...]]]), which the JS
		// call-stack cap does not see; count that nesting here.
		rt.nativeDepth++
		defer func() { rt.nativeDepth-- }()
		rt.overDepth(rt.nativeDepth)
		v, err := orig(call.This, call.Arguments...)
		if err != nil {
			panic(err)
		}
		return v
	}).(*goja.Object)
	_ = wrapped.DefineDataProperty("name", rt.r.ToValue(name), goja.FLAG_FALSE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	_ = wrapped.DefineDataProperty("length", length, goja.FLAG_FALSE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	return obj.DefineDataProperty(name, wrapped, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
}

// guardConstructor replaces a global constructor by a native constructor that checks the size
// and then constructs the original with the same new.target. The wrapper shares the original's
// prototype object, has copies of its statics and its place in the chain of constructors
// (Uint8Array's parent is %TypedArray%), so instanceof, Uint8Array.from and subclassing keep
// working. It must not inherit from the original: Object.getPrototypeOf(Float64Array) would
// hand code the unguarded constructor, and new of it with 4e9 elements was a fatal out-of-memory
// of the whole process. (A Proxy would be simpler, but goja's class heritage bypasses Proxy
// construct traps.)
func (rt *jsRuntime) guardConstructor(name string, bytesPerElement float64) error {
	r := rt.r
	target := r.Get(name).ToObject(r)
	construct, ok := goja.AssertConstructor(target)
	if !ok {
		return fmt.Errorf("jsvm: built-in %s is not a constructor", name)
	}
	wrapper := r.ToValue(func(call goja.ConstructorCall) *goja.Object {
		n := 0.0
		if len(call.Arguments) > 0 {
			switch a := call.Arguments[0].(type) {
			case *goja.Object:
				if c := a.ClassName(); c != "ArrayBuffer" && c != "SharedArrayBuffer" {
					n = toLengthFloat(a.Get("length"))
				}
			default:
				n = a.ToFloat()
			}
		}
		rt.overMemory("new "+name, n*bytesPerElement)
		newTarget := call.NewTarget
		if newTarget == nil || newTarget == call.This {
			newTarget = target
		}
		v, err := construct(newTarget, call.Arguments...)
		if err != nil {
			panic(err)
		}
		return v
	}).(*goja.Object)
	proto := target.Get("prototype").ToObject(r)
	for _, p := range []struct {
		key string
		val goja.Value
	}{{"prototype", proto}, {"name", r.ToValue(name)}, {"length", target.Get("length")}} {
		if err := wrapper.DefineDataProperty(p.key, p.val, goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_FALSE); err != nil {
			return fmt.Errorf("jsvm: guard %s.%s: %w", name, p.key, err)
		}
	}
	if _, err := rt.adoptStatics(goja.Undefined(), wrapper, target); err != nil {
		return fmt.Errorf("jsvm: guard %s: %w", name, err)
	}
	if err := proto.DefineDataProperty("constructor", wrapper, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE); err != nil {
		return err
	}
	return r.GlobalObject().DefineDataProperty(name, wrapper, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
}

func arrayLength(r *goja.Runtime, this goja.Value) float64 {
	o, ok := this.(*goja.Object)
	if !ok {
		return 0
	}
	return toLengthFloat(o.Get("length"))
}

func toLengthFloat(v goja.Value) float64 {
	if v == nil || goja.IsUndefined(v) {
		return 0
	}
	f := v.ToFloat()
	if math.IsNaN(f) || f < 0 {
		return 0
	}
	return math.Floor(f)
}

// relativeIndex applies the relative start/end rule of Array.prototype.fill and friends.
func relativeIndex(v goja.Value, length, dflt float64) float64 {
	if goja.IsUndefined(v) {
		return dflt
	}
	f := v.ToFloat()
	if math.IsNaN(f) {
		f = 0
	}
	f = math.Trunc(f)
	if f < 0 {
		return math.Max(length+f, 0)
	}
	return math.Min(f, length)
}

// guardFlat bounds Array.prototype.flat, which recurses natively once per level it flattens
// (a few million nested arrays overflowed the Go stack, fatal to the process): a depth past the
// execution's MaxCallDepth flattens that deep, and if arrays are left the nesting went deeper
// than the cap, which ends the execution with stack_overflow as join does.
func (rt *jsRuntime) guardFlat(arrProto *goja.Object) error {
	r := rt.r
	orig, ok := goja.AssertFunction(arrProto.Get("flat"))
	if !ok {
		return fmt.Errorf("jsvm: built-in Array.prototype.flat is not a function")
	}
	wrapped := r.ToValue(func(call goja.FunctionCall) goja.Value {
		depth := call.Argument(0)
		limit := rt.depthCap()
		if goja.IsUndefined(depth) || !(depth.ToFloat() > float64(limit)) {
			v, err := orig(call.This, call.Arguments...)
			if err != nil {
				panic(err)
			}
			return v
		}
		v, err := orig(call.This, r.ToValue(limit))
		if err != nil {
			panic(err)
		}
		if o, ok := v.(*goja.Object); ok {
			for _, k := range o.Keys() {
				if e, isObj := o.Get(k).(*goja.Object); isObj && e.ClassName() == "Array" {
					rt.overDepth(limit + 1)
				}
			}
		}
		return v
	}).(*goja.Object)
	if err := nameFunction(r, wrapped, "flat", 0); err != nil {
		return err
	}
	return arrProto.DefineDataProperty("flat", wrapped, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
}
