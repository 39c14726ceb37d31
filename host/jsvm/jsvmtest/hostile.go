package jsvmtest

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/jsvm"
)

// Code compiled at run time (eval, the Function constructors, RegExp and the String methods
// that make one, JSON.parse) that would overflow the Go stack of goja's parser or compiler (fatal
// to the whole process) ends only its own execution, with stack_overflow, even inside a try;
// code too long or too costly to compile is a SyntaxError it may catch. Ordinary run-time
// compiles work, and eval is always an indirect eval (the global scope).
func testHostileCompile(e *env) {
	e.open(nil, app(pingElement, js("services.C", `
		const deep = {
			not: n => "!".repeat(n) + "1",
			parens: n => "(".repeat(n) + "1" + ")".repeat(n),
			sum: n => "1+".repeat(n) + "1",
			member: n => "a" + ".b".repeat(n),
			calls: n => "f" + "()".repeat(n),
			ternary: n => "1?1:".repeat(n) + "1",
			template: n => "\x60${".repeat(n) + "1" + "}\x60".repeat(n),
			arrays: n => "[".repeat(n) + "]".repeat(n),
			objects: n => "({a:".repeat(n) + "1" + "})".repeat(n),
			statements: n => "if(1)".repeat(n) + "1",
		};
		const group = n => "(?=a)" + "(".repeat(n) + ")".repeat(n);
		exports.eval = (shape, n) => eval(deep[shape](n));
		exports.caught = (shape, n) => { try { return eval(deep[shape](n)) } catch (e) { return "caught " + e.name } };
		exports.fn = (shape, n) => new Function("return " + deep[shape](n))();
		exports.fnViaArrow = (shape, n) => (() => {}).constructor("return " + deep[shape](n))();
		exports.asyncFn = (shape, n) => { Object.getPrototypeOf(async function () {}).constructor("return " + deep[shape](n)); return "made" };
		exports.generatorFn = (shape, n) => { Object.getPrototypeOf(function* () {}).constructor("return " + deep[shape](n)); return "made" };
		exports.regexp = n => new RegExp(group(n)).test("a");
		exports.regexpCaught = n => { try { return RegExp(group(n)).test("a") } catch (e) { return "caught " + e.name } };
		exports.match = n => "a".match(group(n));
		exports.search = n => "a".search(group(n));
		exports.matchAll = n => [..."a".matchAll(group(n))];
		exports.regexpLike = n => new RegExp({[Symbol.match]: true, source: group(n), flags: ""}).test("a");
		exports.jsonParse = n => JSON.parse("[".repeat(n) + "]".repeat(n), (k, v) => v).length;
		exports.toLocale = n => { let a = []; for (let i = 0; i < n; i++) a = [a]; return a.toLocaleString().length };
		exports.costly = () => { try { return eval("1&&".repeat(40) + "1") } catch (e) { return e.name + ": " + e.message } };
		exports.tooLong = () => { try { return eval("1;".repeat(600000)) } catch (e) { return e.name + ": " + e.message } };
		exports.ordinary = function () {
			var local = "local";
			const indirect = (() => { try { return eval("local") } catch (e) { return e.name } })();
			return [eval("1 + 2"), new Function("a", "b", "return a * b")(6, 7), (0, eval)("this") === globalThis, indirect,
				/(?=a)(a)\1/.test("aa"), "abc".match(new RegExp("b"))[0], "abc".search("c"), [..."aXbX".matchAll(/X/g)].length,
				JSON.parse('{"a": [1, {"b": 2}]}').a[1].b, new Function("return " + "1+".repeat(500) + "1")(),
				Function.prototype.constructor === Function, (async () => {}).constructor.name, typeof RegExp.prototype.compile];
		};`)))
	for _, c := range []struct {
		fn    string
		args  []any
		limit jsvm.Limits
	}{
		// The case: eval of a 1,000,000-deep expression.
		{"eval", []any{"not", 1_000_000}, jsvm.Limits{}},
		{"caught", []any{"not", 1_000_000}, jsvm.Limits{}},
		{"eval", []any{"parens", 300_000}, jsvm.Limits{}},
		{"eval", []any{"sum", 300_000}, jsvm.Limits{}},
		{"eval", []any{"member", 300_000}, jsvm.Limits{}},
		{"eval", []any{"calls", 300_000}, jsvm.Limits{}},
		{"eval", []any{"ternary", 200_000}, jsvm.Limits{}},
		{"eval", []any{"template", 150_000}, jsvm.Limits{}},
		{"eval", []any{"arrays", 300_000}, jsvm.Limits{}},
		{"eval", []any{"objects", 150_000}, jsvm.Limits{}},
		{"eval", []any{"statements", 150_000}, jsvm.Limits{}},
		{"fn", []any{"not", 1_000_000}, jsvm.Limits{}},
		{"fnViaArrow", []any{"sum", 300_000}, jsvm.Limits{}},
		{"asyncFn", []any{"parens", 300_000}, jsvm.Limits{}},
		{"generatorFn", []any{"member", 300_000}, jsvm.Limits{}},
		{"regexp", []any{300_000}, jsvm.Limits{}},
		{"regexpCaught", []any{300_000}, jsvm.Limits{}},
		{"match", []any{300_000}, jsvm.Limits{}},
		{"search", []any{300_000}, jsvm.Limits{}},
		{"matchAll", []any{300_000}, jsvm.Limits{}},
		{"regexpLike", []any{300_000}, jsvm.Limits{}},
		{"jsonParse", []any{1_000_000}, jsvm.Limits{}},
		// 1e5 nested arrays take ~56 MB in goja.
		{"toLocale", []any{100_000}, jsvm.Limits{MemoryBytes: 2 * DefaultMemoryBytes}},
	} {
		c.limit.Timeout = e.f.Timeout
		je, _ := e.limited(jsvm.Call{Element: "services.C", Function: c.fn, Args: c.args, Limits: c.limit})
		require.Equal(e.t, jsvm.CodeStackOverflow, je.Code, "%s%v: %v", c.fn, c.args, je)
	}
	costly := e.value("services.C", "costly").(string)
	require.True(e.t, strings.HasPrefix(costly, "SyntaxError: eval: expression too costly to compile"), costly)
	tooLong := e.value("services.C", "tooLong").(string)
	require.True(e.t, strings.HasPrefix(tooLong, "SyntaxError: eval: code of 1200000 bytes is longer than"), tooLong)
	require.Equal(e.t, []any{int64(3), int64(42), true, "ReferenceError", true, "b", int64(2), int64(2), int64(2), int64(501),
		true, "AsyncFunction", "function"}, e.value("services.C", "ordinary"))
}

// A thrown value, or a result, whose reading runs JavaScript that never returns (a getter, a
// Proxy trap, toJSON) ends its execution with timeout at its deadline, however often the sandbox
// reads it: the interrupt that ended the code must not be spent by the first read.
func testHostileValuesAtDeadline(e *env) {
	e.open(nil, app(pingElement, js("services.T", `
		const loop = () => { for (;;) {} };
		exports.message = () => { throw {get message() { loop() }} };
		exports.stack = () => { throw {message: "m", get stack() { loop() }} };
		exports.proxy = () => { throw new Proxy({}, {get: loop, ownKeys: loop, getOwnPropertyDescriptor: loop}) };
		exports.toJSON = () => { throw {toJSON: loop} };
		exports.toPrimitive = () => { throw {toJSON() { throw 1 }, [Symbol.toPrimitive]: loop} };
		exports.field = () => { throw Object.defineProperty(new Error("x"), "code", {get: loop, enumerable: true}) };
		exports.rejected = async () => { throw {get message() { loop() }} };
		exports.result = () => ({get x() { loop() }});
		exports.resultProxy = () => new Proxy({}, {ownKeys: loop});
		exports.failReason = (event, ctx) => { ctx.fail({toJSON: loop}); return "failed" };
		exports.log = () => { console.log({get x() { loop() }}); return "logged" };`)))
	const timeout = 300 * time.Millisecond
	for _, fn := range []string{"message", "stack", "proxy", "toJSON", "toPrimitive", "field", "rejected", "result", "resultProxy", "failReason", "log"} {
		c := jsvm.Call{Element: "services.T", Function: fn, Limits: jsvm.Limits{Timeout: timeout}}
		if fn == "failReason" {
			c.Args, c.Ctx = []any{map[string]any{}}, &jsvm.HandlerContext{}
		}
		je, took := e.limited(c)
		require.Equal(e.t, jsvm.CodeTimeout, je.Code, "%s: %v", fn, je)
		require.Less(e.t, took, timeout+e.f.Slack, "%s ran %s past its deadline", fn, took-timeout)
	}
}

// An execution whose deadline passes while the host serves it (Execute on a KindHost element,
// whose host waits on its ctx) ends with timeout, not with the host's "context deadline
// exceeded" as a js_error; the same for a host that returns the ctx's error wrapped.
func testHostElementDeadline(e *env) {
	host := jsvm.HostCallerFunc(func(ctx context.Context, c jsvm.HostCall) (any, error) {
		<-ctx.Done()
		if c.Method == "wrapped" {
			return nil, errors.Join(errors.New("query"), ctx.Err())
		}
		return nil, ctx.Err()
	})
	e.open(host, app(pingElement, hostElement("models.M", "wait", "wrapped"),
		js("services.J", `exports.f = () => app.getElement("models.M").wait()`)))
	for _, c := range []jsvm.Call{
		{Element: "models.M", Function: "wait"},
		{Element: "models.M", Function: "wrapped"},
		{Element: "services.J", Function: "f"},
	} {
		c.Limits.Timeout = 100 * time.Millisecond
		je, _ := e.limited(c)
		require.Equal(e.t, jsvm.CodeTimeout, je.Code, "%s.%s: %v", c.Element, c.Function, je)
	}
}

// Load refuses a source whose code goja could not compile without crashing or stalling the
// process (the 1 MB chain of "!", a 100,000-term sum, a constant && chain), naming the
// file, the position and the limit, and the last good version stays in service.
func testLoadRefusesHostileSource(e *env) {
	ex := e.open(nil, app(pingElement, js("services.S", `exports.f = () => 1`)))
	for name, code := range map[string]string{
		"prefix operators": "exports.f=function(){return " + strings.Repeat("!", 1_000_000) + "1};",
		"sum":              "exports.f = function () {\n  return " + strings.Repeat("1 + ", 100_000) + "1;\n};",
		"constant chain":   "exports.f = function () {\n  return " + strings.Repeat("1 && ", 40) + "1;\n};",
	} {
		err := ex.Load(app(pingElement, js("services.S", code)))
		require.Error(e.t, err, name)
		var je *jsvm.Error
		require.True(e.t, errors.As(err, &je), "%s: want a *jsvm.Error, got %T: %v", name, err, err)
		require.Equal(e.t, jsvm.CodeJSError, je.Code, name)
		require.Equal(e.t, "services/S/index.js", je.File, name)
		require.Positive(e.t, je.Line, name)
		require.Regexp(e.t, "nested more than 1000 levels|more than 100000 steps", je.Message, name)
		require.Equal(e.t, int64(1), e.value("services.S", "f"), "%s: a refused Load leaves the last good version in service", name)
		e.ping()
	}
}
