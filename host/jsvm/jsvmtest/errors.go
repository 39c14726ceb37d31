package jsvmtest

import (
	"errors"
	"fmt"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/jsvm"
)

// A thrown Error ends the execution with a *jsvm.Error: code js_error, the message as JS shows
// it, the element, the file and line of the throw, a stack naming file:line, the error's own
// fields as Details; the Result keeps the logs written before the throw.
func testThrownError(e *env) {
	e.open(nil, app(js("services.Bad", "exports.f = function () {\n  console.log('about to fail');\n  const err = new TypeError('boom');\n  err.code = 'bad_input'; err.extra = 7;\n  throw err;\n}\nexports.g = function () {\n  return exports.f();\n}")))
	res, err := e.run("services.Bad", "f")
	je := e.asError(err, "f")
	require.Equal(e.t, jsvm.CodeJSError, je.Code)
	require.Equal(e.t, "TypeError: boom", je.Message)
	require.Equal(e.t, "services.Bad", je.Element)
	require.Equal(e.t, "services/Bad/index.js", je.File)
	require.Equal(e.t, 3, je.Line, "the line where the Error was made")
	require.Positive(e.t, je.Column)
	require.Contains(e.t, je.Stack, "services/Bad/index.js:3:")
	require.Equal(e.t, "bad_input", je.Details["code"])
	require.Equal(e.t, int64(7), je.Details["extra"])
	require.Nil(e.t, res.Value)
	require.Len(e.t, res.Logs, 1, "the logs written before the throw")
	require.Equal(e.t, "about to fail", res.Logs[0].Message)
	require.Contains(e.t, err.Error(), "services/Bad/index.js:3:")

	je = e.fail("services.Bad", "g")
	require.Equal(e.t, "TypeError: boom", je.Message)
	require.Contains(e.t, je.Stack, "services/Bad/index.js:3:")
	require.Contains(e.t, je.Stack, "services/Bad/index.js:8:", "the caller's frame")
}

// An error thrown in a called element keeps that element's position, with the caller's frames
// on the stack; the caller may catch it, as an Error with its code.
func testErrorInCalledElement(e *env) {
	e.open(nil, app(
		js("services.A", "exports.f = function () {\n  return app.getElement('services.B').g(1);\n}\nexports.c = function () {\n  try { app.getElement('services.B').g(2) } catch (e) { return [e.code, e.message, e instanceof Error] }\n}"),
		js("services.B", "exports.g = function (n) {\n  const e = new Error('bad ' + n);\n  e.code = 'bad_input';\n  throw e;\n}"),
	))
	je := e.fail("services.A", "f")
	require.Equal(e.t, jsvm.CodeJSError, je.Code)
	require.Equal(e.t, "bad 1", je.Message)
	require.Equal(e.t, "services.B", je.Element)
	require.Equal(e.t, "services/B/index.js", je.File)
	require.Equal(e.t, 2, je.Line)
	require.Equal(e.t, "bad_input", je.Details["code"])
	require.Contains(e.t, je.Stack, "services/B/index.js:2:")
	require.Contains(e.t, je.Stack, "services/A/index.js:2:")

	require.Equal(e.t, []any{"bad_input", "bad 2", true}, e.value("services.A", "c"))
}

// Thrown strings, numbers, plain objects and rejected promises end the execution as js_error
// too, with what JS would show as their message; a promise that never settles is an error.
func testThrownNonErrors(e *env) {
	e.open(nil, app(js("services.T", `
		exports.str = () => { throw "plain string" };
		exports.obj = () => { throw {code: "custom", message: "from object", extra: 1} };
		exports.num = () => { throw 42 };
		exports.undef = () => { throw undefined };
		exports.arr = () => { throw [1, 2] };
		exports.rejected = async () => { throw new RangeError("async bad") };
		exports.pending = () => new Promise(() => {});`)))
	je := e.fail("services.T", "str")
	require.Equal(e.t, jsvm.CodeJSError, je.Code)
	require.Equal(e.t, "plain string", je.Message)
	require.Equal(e.t, "services/T/index.js", je.File)
	require.Equal(e.t, 2, je.Line)

	je = e.fail("services.T", "obj")
	require.Equal(e.t, jsvm.CodeJSError, je.Code)
	require.Equal(e.t, "from object", je.Message)
	require.Equal(e.t, map[string]any{"code": "custom", "extra": int64(1)}, je.Details)

	require.Equal(e.t, "42", e.fail("services.T", "num").Message)
	require.Equal(e.t, "undefined was thrown", e.fail("services.T", "undef").Message)
	require.Equal(e.t, "[1,2]", e.fail("services.T", "arr").Message)

	je = e.fail("services.T", "rejected")
	require.Equal(e.t, jsvm.CodeJSError, je.Code)
	require.Equal(e.t, "RangeError: async bad", je.Message)
	require.Equal(e.t, "services/T/index.js", je.File)
	require.Equal(e.t, 7, je.Line)

	je = e.fail("services.T", "pending")
	require.Equal(e.t, jsvm.CodeJSError, je.Code)
	require.Contains(e.t, je.Message, "never settled")
}

// An error at the top level of a module fails every call of the element, each time, at the
// module's line; other elements are not affected.
func testModuleTopLevelError(e *env) {
	e.open(nil, app(
		js("services.M", "exports.f = () => 1;\nnull.boom;"),
		js("services.OK", "exports.f = () => 1;"),
	))
	for i := range 3 {
		je := e.fail("services.M", "f")
		require.Equal(e.t, jsvm.CodeJSError, je.Code, "call %d", i)
		require.Equal(e.t, "services/M/index.js", je.File, "call %d", i)
		require.Equal(e.t, 2, je.Line, "call %d", i)
		require.Equal(e.t, int64(1), e.value("services.OK", "f"))
	}
}

// A Source with syntax errors is refused by Load with every problem, each a *jsvm.Error with
// code js_error and its file and position; the last good version stays in service. Load(nil) is
// an error too.
func testSyntaxErrorAtLoad(e *env) {
	ex := e.open(nil, app(js("services.S", `exports.f = () => 1`)))
	err := ex.Load(app(
		jsFiles("services.S", map[string]string{"index.js": "exports.f = () => 2;\nexports.g = function ( {\n};", "lib/x.js": "var = 3"}),
		js("services.Z", "let a = 1; let a = 2;"),
	))
	require.Error(e.t, err)
	var first *jsvm.Error
	require.True(e.t, errors.As(err, &first), "want a *jsvm.Error, got %T: %v", err, err)
	require.Equal(e.t, jsvm.CodeJSError, first.Code)
	require.Contains(e.t, first.Message, "SyntaxError")
	require.NotEmpty(e.t, first.File)
	require.Positive(e.t, first.Line)
	msg := err.Error()
	require.Contains(e.t, msg, "services/S/index.js:3:", "the unexpected } is on line 3")
	require.Contains(e.t, msg, "services/S/lib/x.js:1:5")
	require.Contains(e.t, msg, "services/Z/index.js:1:")

	for range 4 {
		require.Equal(e.t, int64(1), e.value("services.S", "f"), "a refused Load leaves the last good version in service")
	}
	require.Error(e.t, ex.Load(nil), "Load(nil)")
	require.Equal(e.t, int64(1), e.value("services.S", "f"))
}

// With Call.Ctx the function gets a ctx argument after Args: requestId, nodeId, attempt,
// deadline, the extra fields, log, fail (which marks Result.Failed without ending anything) and
// waitCallback (Result.WaitCallback).
func testHandlerContext(e *env) {
	e.open(nil, app(js("events.OnLogin", `exports.handle = function (event, ctx) {
		ctx.log("handling", event.id);
		if (event.kwargs.fail) ctx.fail("user " + event.kwargs.userId + " unknown");
		if (event.kwargs.wait) ctx.waitCallback();
		return [ctx.requestId, ctx.nodeId, ctx.attempt, ctx.deadline instanceof Date, ctx.deadline.getTime() > Date.now(), ctx.tenant, ctx.nested.list];
	}`)))
	call := jsvm.Call{Element: "events.OnLogin", Function: "handle", RequestID: "r1", NodeID: "n1",
		Args: []any{map[string]any{"id": "e1", "kwargs": map[string]any{"userId": 9, "fail": true}}},
		Ctx:  &jsvm.HandlerContext{Attempt: 2, Extra: map[string]any{"tenant": "acme", "nested": map[string]any{"list": []any{int64(1), "a"}}}}}
	res, err := e.exec(call)
	require.NoError(e.t, err)
	require.Equal(e.t, []any{"r1", "n1", int64(2), true, true, "acme", []any{int64(1), "a"}}, res.Value)
	require.NotNil(e.t, res.Failed, "ctx.fail marks the result")
	require.Equal(e.t, "user 9 unknown", *res.Failed)
	require.False(e.t, res.WaitCallback)
	require.NotEmpty(e.t, res.Logs)
	require.Equal(e.t, "handling e1", res.Logs[0].Message)

	call.Args = []any{map[string]any{"id": "e2", "kwargs": map[string]any{"wait": true}}}
	res, err = e.exec(call)
	require.NoError(e.t, err)
	require.Nil(e.t, res.Failed)
	require.True(e.t, res.WaitCallback)

	call.Ctx = nil
	call.Args = []any{map[string]any{"id": "e3", "kwargs": map[string]any{}}}
	je := e.asError(func() error { _, err := e.exec(call); return err }(), "handle without ctx")
	require.Equal(e.t, jsvm.CodeJSError, je.Code, "without Call.Ctx there is no ctx argument")
}

// With Call.ReturnArgs a successful execution hands back its arguments as the function left
// them (changed, added and deleted fields; a Date stays a time; the handler ctx is not one of
// them), even when another element was called on the way; without it, or when the execution
// fails, Result.Args is nil.
func testReturnArgs(e *env) {
	e.open(nil, app(
		js("events.H", `exports.node_enter = function (data, parent) {
			data.kwargs.n = data.kwargs.n * 2; data.added = [1, "a"]; delete data.gone; parent.seen = true;
			data.when = new Date(0); data.deep.list.push(3);
			return app.getElement("services.Other").touch({k: 1}) };
		exports.boom = function (data) { data.x = 1; throw new Error("no") };`),
		js("services.Other", `exports.touch = function (o) { o.k = 2; return o.k }`)))
	args := func() []any {
		return []any{map[string]any{"kwargs": map[string]any{"n": int64(21)}, "gone": true, "deep": map[string]any{"list": []any{int64(1), int64(2)}}},
			map[string]any{"requestId": "r1"}}
	}
	call := jsvm.Call{Element: "events.H", Function: "node_enter", Args: args(), ReturnArgs: true, Ctx: &jsvm.HandlerContext{Attempt: 1}}
	res, err := e.exec(call)
	require.NoError(e.t, err)
	require.Equal(e.t, int64(2), res.Value, "the return value is the function's, as always")
	require.Len(e.t, res.Args, 2, "only Call.Args come back, not the ctx")
	require.Equal(e.t, map[string]any{"kwargs": map[string]any{"n": int64(42)}, "added": []any{int64(1), "a"},
		"when": time.Unix(0, 0).UTC(), "deep": map[string]any{"list": []any{int64(1), int64(2), int64(3)}}}, normalizeTimes(res.Args[0]))
	require.Equal(e.t, map[string]any{"requestId": "r1", "seen": true}, res.Args[1])

	call.ReturnArgs = false
	call.Args = args()
	res, err = e.exec(call)
	require.NoError(e.t, err)
	require.Nil(e.t, res.Args, "without ReturnArgs nothing comes back")

	res, err = e.exec(jsvm.Call{Element: "events.H", Function: "boom", Args: args(), ReturnArgs: true})
	require.Error(e.t, err)
	require.Nil(e.t, res.Args, "a failed execution hands back no arguments")
}

// Call.Around runs a node's hooks with its handler in one Execute: Before's change of its
// data's field reaches the handler, After sees the handler's value and may change it, each hook
// has its own deadline and error and changes nothing of the call when it fails, and After runs
// only after a handler that ended well.
func testAround(e *env) {
	e.open(nil, app(js("events.A", `
		exports.node_enter = function (data, parent) { data.kwargs.n = data.kwargs.n + 1; console.log("enter", parent.p); };
		exports.node_finish = function (data) { data.result = {wrapped: data.result}; };
		exports.handle = function (event, ctx) { if (event.kwargs.fail) { ctx.fail("asked") } return event.kwargs.n * 10; };
		exports.boom = function () { throw new Error("hook broke") };
		exports.spin = function () { for (;;) {} };`)))
	data := func(kwargs map[string]any) map[string]any {
		return map[string]any{"nodeId": "n1", "kwargs": kwargs, "result": nil}
	}
	call := func(before, after string, kwargs map[string]any) jsvm.Call {
		c := jsvm.Call{Element: "events.A", Function: "handle", Args: []any{map[string]any{"kwargs": kwargs}},
			Ctx: &jsvm.HandlerContext{Attempt: 1}, Limits: jsvm.Limits{Timeout: 300 * time.Millisecond}, Around: &jsvm.Around{}}
		if before != "" {
			c.Around.Before = &jsvm.HookStep{Function: before, Args: []any{data(kwargs), map[string]any{"p": "parent"}}, Field: "kwargs", NodeID: "n1.node_enter"}
		}
		if after != "" {
			c.Around.After = &jsvm.HookStep{Function: after, Args: []any{data(kwargs), map[string]any{}}, Field: "result", NodeID: "n1.node_finish"}
		}
		return c
	}

	res, err := e.exec(call("node_enter", "node_finish", map[string]any{"n": int64(4)}))
	require.NoError(e.t, err)
	require.Equal(e.t, int64(50), res.Value, "the handler got the kwargs node_enter left")
	require.Len(e.t, res.Hooks, 2)
	require.Equal(e.t, "node_enter", res.Hooks[0].Function)
	require.Nil(e.t, res.Hooks[0].Err)
	require.Equal(e.t, "enter parent", res.Hooks[0].Result.Logs[0].Message, "a hook's console is its own")
	require.Equal(e.t, "node_finish", res.Hooks[1].Function)
	require.Equal(e.t, map[string]any{"wrapped": int64(50)}, res.Hooks[1].Result.Args[0].(map[string]any)["result"],
		"node_finish saw the handler's value and changed it")
	require.False(e.t, res.Hooks[1].Start.Before(res.Hooks[0].End), "the hooks ran in turn")

	// A hook that throws or runs past its own deadline changes nothing of the call.
	res, err = e.exec(call("boom", "spin", map[string]any{"n": int64(4)}))
	require.NoError(e.t, err)
	require.Equal(e.t, int64(40), res.Value, "the handler got the kwargs as they were")
	require.Len(e.t, res.Hooks, 2)
	require.Equal(e.t, jsvm.CodeJSError, res.Hooks[0].Err.Code)
	require.Equal(e.t, jsvm.CodeTimeout, res.Hooks[1].Err.Code, "After has a deadline of its own")

	// After runs only after a handler that ended well.
	res, err = e.exec(call("", "node_finish", map[string]any{"n": int64(1), "fail": true}))
	require.NoError(e.t, err)
	require.NotNil(e.t, res.Failed)
	require.Empty(e.t, res.Hooks, "no node_finish after ctx.fail")

	// An Around that cannot run as it says is refused before anything runs.
	bad := call("node_enter", "", map[string]any{"n": int64(1)})
	bad.Args = []any{"not an object"}
	je := e.asError(func() error { _, err := e.exec(bad); return err }(), "Before with a call argument that is no object")
	require.Equal(e.t, jsvm.CodeInvalidArg, je.Code)
	require.Contains(e.t, je.Message, "not an object")
	bad = call("", "node_finish", map[string]any{"n": int64(1)})
	bad.Around.After.Field = ""
	je = e.asError(func() error { _, err := e.exec(bad); return err }(), "After without a Field")
	require.Equal(e.t, jsvm.CodeInvalidArg, je.Code)
}

// normalizeTimes puts every time.Time of v in UTC, so values compare whatever zone they crossed in.
func normalizeTimes(v any) any {
	switch x := v.(type) {
	case time.Time:
		return x.UTC()
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeTimes(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalizeTimes(e)
		}
	}
	return v
}

// console.log/info/warn/error/debug of an execution are in Result.Logs, in order, with their
// level, a time within the execution and the arguments formatted as one message.
func testConsoleLogs(e *env) {
	e.open(nil, app(js("services.L", `
		exports.levels = () => { console.log("a", 1, {b: [2]}, null, undefined); console.info("i"); console.warn("w"); console.error(new Error("e")); console.debug("d"); return "ok" };
		exports.many = n => { for (let i = 0; i < n; i++) console.log("line", i); return n };
		exports.nested = () => app.getElement("services.M").g();`),
		js("services.M", `exports.g = () => { console.log("from M"); return 1 }`),
	))
	start := time.Now()
	res, err := e.run("services.L", "levels")
	require.NoError(e.t, err)
	require.Equal(e.t, "ok", res.Value)
	var levels, msgs []string
	for _, l := range res.Logs {
		levels = append(levels, l.Level)
		msgs = append(msgs, l.Message)
		require.False(e.t, l.Time.Before(start.Add(-time.Second)), "log time %v before the execution", l.Time)
		require.False(e.t, l.Time.After(time.Now().Add(time.Second)), "log time %v after the execution", l.Time)
	}
	require.Equal(e.t, []string{"log", "info", "warn", "error", "debug"}, levels)
	require.Equal(e.t, `a 1 {"b":[2]} null undefined`, msgs[0])
	require.Equal(e.t, []string{"i", "w"}, msgs[1:3])
	require.Contains(e.t, msgs[3], "Error: e")
	require.Contains(e.t, msgs[3], "services/L/index.js")
	require.Equal(e.t, "d", msgs[4])

	res, err = e.run("services.L", "many", 50)
	require.NoError(e.t, err)
	require.Len(e.t, res.Logs, 50)
	for i, l := range res.Logs {
		require.Equal(e.t, fmt.Sprintf("line %d", i), l.Message)
	}
	res, err = e.run("services.L", "nested")
	require.NoError(e.t, err)
	require.Len(e.t, res.Logs, 1, "logs of a called element belong to the execution")
	require.Equal(e.t, "from M", res.Logs[0].Message)

	res, err = e.run("services.M", "g")
	require.NoError(e.t, err)
	require.Len(e.t, res.Logs, 1, "each execution has only its own logs")
}
