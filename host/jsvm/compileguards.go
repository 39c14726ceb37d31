package jsvm

import (
	"fmt"
	"strings"

	"github.com/dop251/goja"

	"github.com/trellis-run/trellis/host/jscompile"
)

// Code can compile code: eval, the Function constructors, RegExp and the String methods that
// make a RegExp from a string. goja parses and compiles in Go, recursively, where no interrupt
// reaches, and a Go stack overflow kills the whole process; so, as for the app's own files
// (compile.go), every such source passes jscompile's checks before goja sees it. Each guard
// converts what it is given to a string once and hands goja that string, so a value whose
// toString answers differently the second time cannot slip past the check.
//
// eval is replaced by a function that checks its string, then evaluates it: every eval is then
// an indirect eval, which runs in the global scope and cannot see the calling function's
// variables (goja treats only a call of its own eval function as a direct eval, and that one
// cannot be checked first). The Function constructors are replaced in the global object and as
// the constructor of their prototypes, the only places JavaScript can reach them from.

// refuseCompile ends a run-time compile that jscompile refused. Nesting past the limit is a
// stack overflow: it ends the execution uncatchably with stack_overflow, as recursion would.
// Code too long or too costly to compile is a SyntaxError, which the code may catch.
func (rt *jsRuntime) refuseCompile(what, src string, p *jscompile.Problem) {
	line, col := p.Position(src)
	msg := fmt.Sprintf("%s: %s (<%s>:%d:%d)", what, p.Message, what, line, col)
	if p.Kind == jscompile.KindNesting && rt.x != nil {
		rt.x.abort(&Error{Code: CodeStackOverflow, Message: msg})
		panic(rt.newCodedErrorWith(rt.rangeErrorNew, CodeStackOverflow, msg, nil))
	}
	e, err := rt.syntaxErrorNew(nil, rt.r.ToValue(msg))
	if err != nil {
		panic(err)
	}
	panic(e)
}

// bindCompileGuards puts the guards in place; it runs before any of the app's code.
func (rt *jsRuntime) bindCompileGuards() error {
	if err := rt.guardEval(); err != nil {
		return err
	}
	if err := rt.guardFunctionConstructors(); err != nil {
		return err
	}
	if err := rt.guardRegExp(); err != nil {
		return err
	}
	return rt.guardJSONParse()
}

func (rt *jsRuntime) guardEval() error {
	r := rt.r
	orig, ok := goja.AssertFunction(r.Get("eval"))
	if !ok {
		return fmt.Errorf("jsvm: built-in eval is not a function")
	}
	wrapped := r.ToValue(func(call goja.FunctionCall) goja.Value {
		s, isString := call.Argument(0).(goja.String)
		if !isString {
			return call.Argument(0) // eval of anything but a string returns it
		}
		src := s.String()
		if p := jscompile.Check(src); p != nil {
			rt.refuseCompile("eval", src, p)
		}
		v, err := orig(goja.Undefined(), s)
		if err != nil {
			panic(err)
		}
		return v
	}).(*goja.Object)
	if err := nameFunction(r, wrapped, "eval", 1); err != nil {
		return err
	}
	return r.GlobalObject().DefineDataProperty("eval", wrapped, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
}

// functionKinds are the constructors that compile a function from strings, the expression each
// finds its original by, and the text goja builds from the arguments (builtin_function.go).
var functionKinds = []struct {
	name, original, head string
}{
	{"Function", "Function", "(function anonymous("},
	{"AsyncFunction", "Object.getPrototypeOf(async function () {}).constructor", "(async function anonymous("},
	{"GeneratorFunction", "Object.getPrototypeOf(function* () {}).constructor", "(function* anonymous("},
}

func (rt *jsRuntime) guardFunctionConstructors() error {
	r := rt.r
	var functionWrapper *goja.Object
	for _, k := range functionKinds {
		v, err := r.RunString(k.original)
		if err != nil {
			return fmt.Errorf("jsvm: find %s: %w", k.name, err)
		}
		orig := v.(*goja.Object)
		construct, ok := goja.AssertConstructor(orig)
		if !ok {
			return fmt.Errorf("jsvm: %s is not a constructor", k.name)
		}
		proto := orig.Get("prototype").ToObject(r)
		head := k.head
		wrapper := r.ToValue(func(call goja.ConstructorCall) *goja.Object {
			args := make([]goja.Value, len(call.Arguments))
			texts := make([]string, len(call.Arguments))
			for i, a := range call.Arguments {
				args[i] = a.ToString()
				texts[i] = args[i].String()
			}
			var b strings.Builder
			b.WriteString(head)
			if len(texts) > 1 {
				b.WriteString(strings.Join(texts[:len(texts)-1], ","))
			}
			b.WriteString("\n) {\n")
			if len(texts) > 0 {
				b.WriteString(texts[len(texts)-1])
			}
			b.WriteString("\n})")
			src := b.String()
			if p := jscompile.Check(src); p != nil {
				rt.refuseCompile("new "+k.name, src, p)
			}
			newTarget := call.NewTarget
			if newTarget == nil {
				newTarget = orig
			}
			fn, err := construct(newTarget, args...)
			if err != nil {
				panic(err)
			}
			return fn
		}).(*goja.Object)
		if err := nameFunction(r, wrapper, k.name, 1); err != nil {
			return err
		}
		if err := wrapper.DefineDataProperty("prototype", proto, goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_FALSE); err != nil {
			return fmt.Errorf("jsvm: guard %s: %w", k.name, err)
		}
		if err := proto.DefineDataProperty("constructor", wrapper, goja.FLAG_FALSE, goja.FLAG_TRUE, goja.FLAG_FALSE); err != nil {
			return fmt.Errorf("jsvm: guard %s: %w", k.name, err)
		}
		if functionWrapper == nil {
			// The wrapper is a function like any other, not a subclass of the original (whose
			// prototype chain would lead code back to it).
			functionWrapper = wrapper
			if err := r.GlobalObject().DefineDataProperty("Function", wrapper, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE); err != nil {
				return err
			}
		} else if err := wrapper.SetPrototype(functionWrapper); err != nil {
			return err
		}
	}
	return nil
}

// guardRegExp checks the patterns RegExp, RegExp.prototype.compile and String.prototype.match,
// matchAll and search are about to compile (regexp2, which goja uses for lookarounds and
// back-references, recurses per group).
func (rt *jsRuntime) guardRegExp() error {
	r := rt.r
	orig := r.Get("RegExp").ToObject(r)
	construct, ok := goja.AssertConstructor(orig)
	if !ok {
		return fmt.Errorf("jsvm: built-in RegExp is not a constructor")
	}
	proto := orig.Get("prototype").ToObject(r)
	wrapper := r.ToValue(func(call goja.ConstructorCall) *goja.Object {
		pattern, flags := rt.checkedPattern("new RegExp", call.Argument(0), call.Argument(1))
		newTarget := call.NewTarget
		if newTarget == nil {
			newTarget = orig
		}
		re, err := construct(newTarget, pattern, flags)
		if err != nil {
			panic(err)
		}
		return re
	}).(*goja.Object)
	if err := nameFunction(r, wrapper, "RegExp", 2); err != nil {
		return err
	}
	if err := wrapper.DefineDataProperty("prototype", proto, goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_FALSE); err != nil {
		return err
	}
	// The wrapper's own [Symbol.species] (RegExp's is inherited by nothing, and its prototype is
	// Function.prototype): matchAll and split construct their copies through it.
	species := r.ToValue(func(call goja.FunctionCall) goja.Value { return call.This })
	if err := wrapper.DefineAccessorPropertySymbol(goja.SymSpecies, species, nil, goja.FLAG_TRUE, goja.FLAG_FALSE); err != nil {
		return err
	}
	if err := proto.DefineDataProperty("constructor", wrapper, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE); err != nil {
		return err
	}
	if err := r.GlobalObject().DefineDataProperty("RegExp", wrapper, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE); err != nil {
		return err
	}
	if c, ok := goja.AssertFunction(proto.Get("compile")); ok {
		fn := r.ToValue(func(call goja.FunctionCall) goja.Value {
			pattern, flags := rt.checkedPattern("RegExp.prototype.compile", call.Argument(0), call.Argument(1))
			v, err := c(call.This, pattern, flags)
			if err != nil {
				panic(err)
			}
			return v
		}).(*goja.Object)
		if err := nameFunction(r, fn, "compile", 2); err != nil {
			return err
		}
		if err := proto.DefineDataProperty("compile", fn, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE); err != nil {
			return err
		}
	}
	str := r.Get("String").ToObject(r).Get("prototype").ToObject(r)
	for _, m := range []struct {
		name string
		sym  *goja.Symbol
	}{{"match", goja.SymMatch}, {"matchAll", goja.SymMatchAll}, {"search", goja.SymSearch}} {
		c, ok := goja.AssertFunction(str.Get(m.name))
		if !ok {
			return fmt.Errorf("jsvm: built-in String.prototype.%s is not a function", m.name)
		}
		sym, name := m.sym, m.name
		fn := r.ToValue(func(call goja.FunctionCall) goja.Value {
			arg := call.Argument(0)
			o, isObject := arg.(*goja.Object)
			if _, custom := goja.AssertFunction(objectSymbol(o, sym)); !(isObject && custom) && !goja.IsUndefined(arg) && !goja.IsNull(arg) {
				// goja makes a RegExp of it: the string it would compile is checked.
				arg, _ = rt.checkedPattern("String.prototype."+name, arg, goja.Undefined())
			}
			v, err := c(call.This, arg)
			if err != nil {
				panic(err)
			}
			return v
		}).(*goja.Object)
		if err := nameFunction(r, fn, name, 1); err != nil {
			return err
		}
		if err := str.DefineDataProperty(name, fn, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE); err != nil {
			return err
		}
	}
	return nil
}

func objectSymbol(o *goja.Object, sym *goja.Symbol) goja.Value {
	if o == nil {
		return nil
	}
	return o.GetSymbol(sym)
}

// checkedPattern returns the pattern and flags a RegExp would be made of, the pattern as a
// string it has checked. A RegExp passes as it is: its pattern was checked when it was made.
// An object that says it is a RegExp (Symbol.match) gives its source and flags, as goja reads them.
func (rt *jsRuntime) checkedPattern(what string, pattern, flags goja.Value) (goja.Value, goja.Value) {
	if o, ok := pattern.(*goja.Object); ok {
		if o.ClassName() == "RegExp" {
			return pattern, flags
		}
		if m := o.GetSymbol(goja.SymMatch); m != nil && m.ToBoolean() {
			if goja.IsUndefined(flags) {
				flags = o.Get("flags")
			}
			pattern = o.Get("source")
		}
	}
	if pattern == nil || goja.IsUndefined(pattern) {
		return goja.Undefined(), flags
	}
	s := pattern.ToString()
	if p := jscompile.CheckRegExp(s.String()); p != nil {
		rt.refuseCompile(what, s.String(), p)
	}
	return s, flags
}

// guardJSONParse bounds the nesting JSON.parse (and its reviver) recurses through, at the
// execution's MaxCallDepth as JSON.stringify's: a string a few megabytes long can nest deep
// enough to overflow the Go stack.
func (rt *jsRuntime) guardJSONParse() error {
	r := rt.r
	jsonObj := r.Get("JSON").ToObject(r)
	orig := rt.jsonParse
	wrapped := r.ToValue(func(call goja.FunctionCall) goja.Value {
		text := call.Argument(0).ToString()
		rt.overDepth(jsonDepth(text.String(), rt.depthCap()))
		v, err := orig(call.This, text, call.Argument(1))
		if err != nil {
			panic(err)
		}
		return v
	}).(*goja.Object)
	if err := nameFunction(r, wrapped, "parse", 2); err != nil {
		return err
	}
	return jsonObj.DefineDataProperty("parse", wrapped, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
}

// depthCap is the nesting native recursion may reach in this runtime now.
func (rt *jsRuntime) depthCap() int {
	if rt.x == nil {
		return DefaultLimits.MaxCallDepth
	}
	return rt.x.limits.MaxCallDepth
}

// jsonDepth is how deep the brackets of the JSON text s nest, counted up to limit+1.
func jsonDepth(s string, limit int) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inString:
			if c == '\\' {
				i++
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			if depth++; depth > deepest {
				if deepest = depth; deepest > limit {
					return deepest
				}
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

// nameFunction gives a native function the name and length a built-in has.
func nameFunction(r *goja.Runtime, fn *goja.Object, name string, length int) error {
	if err := fn.DefineDataProperty("name", r.ToValue(name), goja.FLAG_FALSE, goja.FLAG_TRUE, goja.FLAG_FALSE); err != nil {
		return err
	}
	return fn.DefineDataProperty("length", r.ToValue(length), goja.FLAG_FALSE, goja.FLAG_TRUE, goja.FLAG_FALSE)
}
