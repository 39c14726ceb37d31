package jsvm

import (
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/dop251/goja"
)

// setFunc defines a non-enumerable native method, like the built-ins' own methods.
func setFunc(r *goja.Runtime, o *goja.Object, name string, f func(goja.FunctionCall) goja.Value) {
	fn := r.ToValue(f)
	_ = fn.(*goja.Object).DefineDataProperty("name", r.ToValue(name), goja.FLAG_FALSE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	_ = o.DefineDataProperty(name, fn, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
}

// bindConsole binds console.{log,info,warn,error,debug}; output goes to Result.Logs of the
// execution that wrote it, never to the host's stdout.
func bindConsole(rt *jsRuntime) error {
	console := rt.r.NewObject()
	for _, level := range []string{"log", "info", "warn", "error", "debug"} {
		setFunc(rt.r, console, level, func(call goja.FunctionCall) goja.Value {
			if rt.x != nil {
				rt.x.log(level, rt.formatLog(call.Arguments))
			}
			return goja.Undefined()
		})
	}
	return rt.r.GlobalObject().DefineDataProperty("console", console, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
}

// formatLog joins console arguments the way Node.js roughly does: strings as they are, errors
// as their stack, other values as JSON.
// The console cap (Limits.MaxConsoleBytes) bounds the text it builds.
func (rt *jsRuntime) formatLog(args []goja.Value) string {
	limit := int(rt.limits().MaxConsoleBytes)
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		s := rt.formatValue(a)
		if room := limit + 1 - b.Len(); len(s) > room {
			s = s[:max(room, 0)]
		}
		b.WriteString(s)
		if b.Len() > limit {
			break
		}
	}
	return b.String()
}

func (rt *jsRuntime) formatValue(v goja.Value) string {
	o, ok := v.(*goja.Object)
	if !ok {
		if v == nil {
			return "undefined"
		}
		return v.String()
	}
	switch o.ClassName() {
	case "Error":
		if s := o.Get("stack"); s != nil && !goja.IsUndefined(s) {
			return s.String()
		}
		return o.String()
	case "Function":
		return "[Function]"
	case "Date":
		if t, ok := o.Export().(time.Time); ok {
			return t.UTC().Format(time.RFC3339Nano)
		}
	}
	s, err := rt.jsonStringify(goja.Undefined(), o)
	if err != nil || s == nil || goja.IsUndefined(s) {
		return fmt.Sprintf("[%s]", o.ClassName())
	}
	return s.String()
}

// bindApp binds the frozen `app` object: name, env(name), getElement(fullName),
// getBuiltin(fullName).
func bindApp(rt *jsRuntime) error {
	r := rt.r
	app := r.NewObject()
	src := rt.ev.v.src
	_ = app.DefineDataProperty("name", r.ToValue(src.AppName), goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_TRUE)
	setFunc(r, app, "env", func(call goja.FunctionCall) goja.Value {
		if v, ok := src.Env[call.Argument(0).String()]; ok {
			return r.ToValue(v)
		}
		return goja.Undefined()
	})
	setFunc(r, app, "getElement", func(call goja.FunctionCall) goja.Value {
		return rt.getElement(rt.argName(call, "app.getElement"))
	})
	setFunc(r, app, "getBuiltin", func(call goja.FunctionCall) goja.Value {
		name := rt.argName(call, "app.getBuiltin")
		return rt.hostProxy(name, nil, true)
	})
	if _, err := rt.objectFreeze(goja.Undefined(), app); err != nil {
		return err
	}
	rt.app = app
	return r.GlobalObject().DefineDataProperty("app", app, goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_FALSE)
}

func (rt *jsRuntime) argName(call goja.FunctionCall, fn string) string {
	a := call.Argument(0)
	if _, ok := a.Export().(string); !ok {
		rt.throw(CodeInvalidArg, "%s needs a fullName string such as \"services.BackupSvc\"", fn)
	}
	return a.String()
}

// bindRequire binds a global require that resolves from the element's directory; every module
// also gets its own require resolving from the module's directory.
func bindRequire(rt *jsRuntime) error {
	req := rt.r.ToValue(rt.requireFrom(rt.ev.dir))
	return rt.r.GlobalObject().DefineDataProperty("require", req, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
}

// requireFrom is require for a module in dir. Only relative files inside the element's own
// directory and commons/ resolve; everything else (node built-ins, absolute paths, escapes with
// ../) fails with an error saying what may be required.
func (rt *jsRuntime) requireFrom(dir string) func(goja.FunctionCall) goja.Value {
	return func(call goja.FunctionCall) goja.Value {
		spec, ok := call.Argument(0).Export().(string)
		if !ok {
			rt.throw(CodeInvalidArg, "require needs a module path string, such as require(\"./lib\") or require(\"commons/util\")")
		}
		m := rt.resolve(dir, spec)
		return rt.loadModule(m).Get("exports")
	}
}

func (rt *jsRuntime) resolve(dir, spec string) *module {
	ev := rt.ev
	allowed := fmt.Sprintf("only files of %s/ (relative, \"./x\") and commons/ (\"commons/x\") can be required", ev.dir)
	var target string
	switch {
	case spec == "":
		rt.throw(CodeInvalidArg, "require(\"\"): empty module path; %s", allowed)
	case strings.HasPrefix(spec, "/") || strings.Contains(spec, "\\") || strings.Contains(spec, ":"):
		rt.throw(CodeNotFound, "require(%q): absolute paths and URLs are not available in the sandbox; %s", spec, allowed)
	case spec == "." || spec == ".." || strings.HasPrefix(spec, "./") || strings.HasPrefix(spec, "../"):
		target = path.Join(dir, spec)
	case strings.HasPrefix(spec, "commons/"):
		target = path.Clean(spec)
	default:
		rt.throw(CodeNotFound, "require(%q): the sandbox has no node modules or host modules; %s", spec, allowed)
	}
	inElement := strings.HasPrefix(target, ev.dir+"/")
	inCommons := strings.HasPrefix(target, "commons/")
	if !inElement && !inCommons {
		rt.throw(CodeNotFound, "require(%q) from %s leaves the element's directory; %s", spec, dir, allowed)
	}
	for _, candidate := range []string{target, target + ".js", target + ".json", target + "/index.js"} {
		var m *module
		if inElement {
			m = ev.modules[candidate]
		} else {
			m = ev.v.commons[candidate]
		}
		if m != nil {
			return m
		}
	}
	rt.throw(CodeNotFound, "require(%q) from %s: no module %s(.js|.json|/index.js); %s", spec, dir, target, allowed)
	return nil
}

// loadModule runs m once per runtime (Node's require cache) and returns its module object.
func (rt *jsRuntime) loadModule(m *module) *goja.Object {
	if mo := rt.modules[m.path]; mo != nil {
		return mo
	}
	r := rt.r
	mo := r.NewObject()
	exports := r.NewObject()
	_ = mo.Set("exports", exports)
	_ = mo.Set("id", m.path)
	_ = mo.Set("filename", m.path)
	_ = mo.Set("loaded", false)
	if strings.HasPrefix(m.path, rt.ev.dir+"/") {
		_ = mo.Set("element", rt.definitionObject(rt.ev))
	}
	rt.modules[m.path] = mo
	if m.prog == nil {
		v, err := rt.jsonParse(goja.Undefined(), r.ToValue(m.json))
		if err != nil {
			delete(rt.modules, m.path)
			panic(err)
		}
		_ = mo.Set("exports", v)
		_ = mo.Set("loaded", true)
		return mo
	}
	fv, err := r.RunProgram(m.prog)
	if err != nil {
		delete(rt.modules, m.path)
		panic(err)
	}
	fn, ok := goja.AssertFunction(fv)
	if !ok {
		delete(rt.modules, m.path)
		rt.throw(CodeJSError, "module %s did not compile to a function", m.path)
	}
	dir := path.Dir(m.path)
	if _, err := fn(exports, exports, r.ToValue(rt.requireFrom(dir)), mo, r.ToValue(m.path), r.ToValue(dir)); err != nil {
		delete(rt.modules, m.path)
		panic(err)
	}
	_ = mo.Set("loaded", true)
	return mo
}

// ensureLoaded runs the element's entry module the first time the runtime is used and makes its
// module and exports visible as globals too.
func (rt *jsRuntime) ensureLoaded() error {
	if rt.loaded {
		return nil
	}
	err := rt.run(func() {
		if rt.ev.entry == "" {
			rt.entryModule = rt.r.NewObject()
			_ = rt.entryModule.Set("exports", rt.r.NewObject())
		} else {
			rt.entryModule = rt.loadModule(rt.ev.modules[rt.ev.entry])
		}
		g := rt.r.GlobalObject()
		_ = g.DefineDataProperty("module", rt.entryModule, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
		_ = g.DefineDataProperty("exports", rt.entryModule.Get("exports"), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	})
	if err != nil {
		return err
	}
	rt.loaded = true
	return nil
}

// exports is the entry module's current module.exports.
func (rt *jsRuntime) exports() *goja.Object {
	if rt.entryModule == nil {
		return nil
	}
	o, _ := rt.entryModule.Get("exports").(*goja.Object)
	return o
}
