package jsvmtest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/jsvm"
)

// Methods called on a KindHost element's runtime object, and on app.getBuiltin, reach the
// HostCaller with the element, method, arguments, calling element and the execution's request
// and node ids, in a ctx bounded by the execution's deadline; the proxy has only the listed
// methods (getBuiltin's has any).
func testHostCalls(e *env) {
	host := &recordingHost{}
	e.open(host, app(
		hostElement("events.services.EventSvc", "sendEvent", "getEventLog"),
		js("services.S", `exports.f = function () {
			const svc = app.getElement("events.services.EventSvc");
			const a = svc.sendEvent("models.UserModel", {userId: 1});
			const b = svc.sendEvent({sender: "models.UserModel", kwargs: {userId: 1}});
			const c = app.getBuiltin("events.services.EventSvc").getEventLog("events.X", null, undefined, "fail");
			const d = app.getElement("services.T").g();
			return [a, b, c, d, typeof svc.resend];
		}`),
		js("services.T", `exports.g = () => app.getElement("events.services.EventSvc").sendEvent("from T")`),
	))
	res, err := e.exec(jsvm.Call{Element: "services.S", Function: "f", RequestID: "req-1", NodeID: "node-1"})
	require.NoError(e.t, err)
	require.Equal(e.t, []any{
		map[string]any{"method": "sendEvent", "builtin": false},
		map[string]any{"method": "sendEvent", "builtin": false},
		map[string]any{"method": "getEventLog", "builtin": true},
		map[string]any{"method": "sendEvent", "builtin": false},
		"undefined",
	}, res.Value)
	require.Equal(e.t, []jsvm.HostCall{
		{FullName: "events.services.EventSvc", Method: "sendEvent", Args: []any{"models.UserModel", map[string]any{"userId": int64(1)}},
			Caller: "services.S", RequestID: "req-1", NodeID: "node-1"},
		{FullName: "events.services.EventSvc", Method: "sendEvent", Args: []any{map[string]any{"sender": "models.UserModel", "kwargs": map[string]any{"userId": int64(1)}}},
			Caller: "services.S", RequestID: "req-1", NodeID: "node-1"},
		{FullName: "events.services.EventSvc", Builtin: true, Method: "getEventLog", Args: []any{"events.X", nil, nil, "fail"},
			Caller: "services.S", RequestID: "req-1", NodeID: "node-1"},
		{FullName: "events.services.EventSvc", Method: "sendEvent", Args: []any{"from T"},
			Caller: "services.T", RequestID: "req-1", NodeID: "node-1"},
	}, host.recorded())
}

// Values a host returns cross as Call's value model: typed Go values (structs through their
// JSON form) arrive as plain JS values, times as Dates; Dates in arguments reach the host as
// time.Time; empty containers stay empty containers.
func testHostValues(e *env) {
	type row struct {
		ID   int       `json:"id"`
		Tags []string  `json:"tags"`
		At   time.Time `json:"at"`
	}
	host := jsvm.HostCallerFunc(func(ctx context.Context, c jsvm.HostCall) (any, error) {
		return map[string]any{"row": row{ID: 1, Tags: []string{"a"}, At: time.Unix(0, 0).UTC()}, "args": c.Args,
			"when": time.UnixMilli(1000), "big": int64(1) << 40, "empty": []any{}, "obj": map[string]any{}, "nil": nil}, nil
	})
	e.open(host, app(
		hostElement("models.M", "get"),
		js("services.U", `exports.f = function () {
			const r = app.getElement("models.M").get(1, {a: [new Date(5)]}, [], {});
			return [r.row.id, r.row.tags[0], typeof r.row.at, r.when instanceof Date, r.when.getTime(), r.args,
				Object.getPrototypeOf(r.row) === Object.prototype, Array.isArray(r.row.tags), r.big, r.empty, r.obj, r.nil,
				Array.isArray(r.empty)];
		}`),
	))
	got := e.value("services.U", "f").([]any)
	require.Equal(e.t, []any{int64(1), "a", "string", true, int64(1000)}, got[:5])
	args := got[5].([]any)
	require.Len(e.t, args, 4)
	require.Equal(e.t, int64(1), args[0])
	at, ok := args[1].(map[string]any)["a"].([]any)[0].(time.Time)
	require.True(e.t, ok, "a Date reaches the host as a time.Time: %#v", args[1])
	require.True(e.t, time.UnixMilli(5).Equal(at))
	require.Equal(e.t, []any{[]any{}, map[string]any{}}, args[2:])
	require.Equal(e.t, []any{true, true, int64(1) << 40, []any{}, map[string]any{}, nil, true}, got[6:])
}

// Execute on a KindHost element goes straight to the host, with the call's arguments and ids;
// a host error with a code comes back as a *jsvm.Error with that code.
func testExecuteHostElement(e *env) {
	host := &recordingHost{}
	coded := jsvm.HostCallerFunc(func(ctx context.Context, c jsvm.HostCall) (any, error) {
		if c.Method == "missing" {
			return nil, codedErr{"not_found", "no task t9"}
		}
		return host.CallHost(ctx, c)
	})
	e.open(coded, app(hostElement("services.TaskSvc", "getTask", "missing")))
	res, err := e.exec(jsvm.Call{Element: "services.TaskSvc", Function: "getTask", Args: []any{"t1", int64(2)}, RequestID: "r", NodeID: "n"})
	require.NoError(e.t, err)
	require.Equal(e.t, map[string]any{"method": "getTask", "builtin": false}, res.Value)
	calls := host.recorded()
	require.Len(e.t, calls, 1)
	require.Equal(e.t, "services.TaskSvc", calls[0].FullName)
	require.Equal(e.t, "getTask", calls[0].Method)
	require.Equal(e.t, []any{"t1", int64(2)}, calls[0].Args)
	require.Equal(e.t, "r", calls[0].RequestID)
	require.Equal(e.t, "n", calls[0].NodeID)

	je := e.fail("services.TaskSvc", "missing")
	require.Equal(e.t, "not_found", je.Code)
	require.Contains(e.t, je.Message, "no task t9")
}

// codedErr is a host error with a code of its own; withDetails also gives details, in the form
// the rest of Trellis uses (web's error bodies, registry.ValidationError).
type codedErr struct{ code, msg string }

func (c codedErr) Error() string     { return c.msg }
func (c codedErr) ErrorCode() string { return c.code }

type withDetails struct{ codedErr }

func (w withDetails) ErrorDetails() any {
	return map[string]any{"field": "userId", "n": int64(3)}
}

// plainWithDetails is a host error without a code that gives details.
type plainWithDetails struct{ msg string }

func (p plainWithDetails) Error() string     { return p.msg }
func (p plainWithDetails) ErrorDetails() any { return map[string]any{"disk": "sda", "full": true} }

// notMapDetails gives details that are not a map[string]any, which JS does not get.
type notMapDetails struct{ codedErr }

func (n notMapDetails) ErrorDetails() any { return []string{"not", "a", "map"} }

// A host error is thrown into JS as an Error with .code (its own, or "internal" for an error
// without one), .message and, for a *jsvm.Error, .details; uncaught, it ends the execution as js_error at the JS
// line that made the call, with the host's code in Details.
func testHostErrors(e *env) {
	host := jsvm.HostCallerFunc(func(ctx context.Context, c jsvm.HostCall) (any, error) {
		switch c.Method {
		case "coded":
			return nil, codedErr{"invalid_argument", "userId must be a number"}
		case "jsvmErr":
			return nil, &jsvm.Error{Code: "not_found", Message: "no such row", Details: map[string]any{"id": int64(7)}}
		case "wrapped":
			return nil, errors.Join(errors.New("context"), codedErr{"conflict", "already running"})
		case "plain":
			return nil, errors.New("disk on fire")
		}
		return "ok", nil
	})
	e.open(host, app(
		hostElement("services.H", "coded", "jsvmErr", "wrapped", "plain", "ok"),
		js("services.C", "exports.f = function (m) {\n"+
			"  try { app.getElement('services.H')[m](); return 'no error' } catch (e) { return {code: e.code, message: e.message, details: e.details, isError: e instanceof Error} }\n"+
			"};\n"+
			"exports.uncaught = function () {\n"+
			"  return app.getElement('services.H').coded();\n"+
			"};"),
	))
	type caught = map[string]any
	require.Equal(e.t, caught{"code": "invalid_argument", "message": "userId must be a number", "details": nil, "isError": true},
		e.value("services.C", "f", "coded"))
	require.Equal(e.t, caught{"code": "not_found", "message": "no such row", "details": map[string]any{"id": int64(7)}, "isError": true},
		e.value("services.C", "f", "jsvmErr"))
	got := e.value("services.C", "f", "wrapped").(map[string]any)
	require.Equal(e.t, "conflict", got["code"], "the code of a wrapped coded error")
	require.Contains(e.t, got["message"], "already running")
	require.Equal(e.t, caught{"code": jsvm.CodeInternal, "message": "services.H.plain: disk on fire", "details": nil, "isError": true},
		e.value("services.C", "f", "plain"))
	require.Equal(e.t, "no error", e.value("services.C", "f", "ok"))

	je := e.fail("services.C", "uncaught")
	require.Equal(e.t, jsvm.CodeJSError, je.Code)
	require.Equal(e.t, "invalid_argument", je.Details["code"])
	require.Contains(e.t, je.Message, "userId must be a number")
	require.Equal(e.t, "services/C/index.js", je.File)
	require.Equal(e.t, 5, je.Line)
}

// A host error that gives details with ErrorDetails() any, when they are a map[string]any, has
// them as the JS Error's .details, as a *jsvm.Error's Details are: with a code of its own or
// without one (code internal), and through wrapping. Details of another kind are not given.
func testHostErrorDetails(e *env) {
	host := jsvm.HostCallerFunc(func(ctx context.Context, c jsvm.HostCall) (any, error) {
		switch c.Method {
		case "wrapped":
			return nil, fmt.Errorf("checking: %w", withDetails{codedErr{"invalid_argument", "userId must be a number"}})
		case "plain":
			return nil, plainWithDetails{"disk on fire"}
		case "notMap":
			return nil, notMapDetails{codedErr{"conflict", "already running"}}
		}
		return nil, withDetails{codedErr{"invalid_argument", "userId must be a number"}}
	})
	e.open(host, app(
		hostElement("services.H", "check", "wrapped", "plain", "notMap"),
		js("services.C", `exports.f = function (m) {
			try { app.getElement("services.H")[m || "check"](); return "no error" } catch (e) { return {code: e.code, message: e.message, details: e.details} } };
			exports.uncaught = () => app.getElement("services.H").check();`),
	))
	want := map[string]any{"code": "invalid_argument", "message": "userId must be a number", "details": map[string]any{"field": "userId", "n": int64(3)}}
	require.Equal(e.t, want, e.value("services.C", "f"))
	got := e.value("services.C", "f", "wrapped").(map[string]any)
	require.Equal(e.t, want["code"], got["code"])
	require.Contains(e.t, got["message"], "userId must be a number")
	require.Equal(e.t, want["details"], got["details"], "details of a wrapped error")
	require.Equal(e.t, map[string]any{"code": jsvm.CodeInternal, "message": "services.H.plain: disk on fire", "details": map[string]any{"disk": "sda", "full": true}},
		e.value("services.C", "f", "plain"))
	require.Equal(e.t, map[string]any{"code": "conflict", "message": "already running", "details": nil},
		e.value("services.C", "f", "notMap"))
	je := e.fail("services.C", "uncaught")
	require.Equal(e.t, jsvm.CodeJSError, je.Code)
	require.Equal(e.t, "invalid_argument", je.Details["code"])
	require.Equal(e.t, map[string]any{"field": "userId", "n": int64(3)}, je.Details["details"])
}

// A Go panic in the host, reached from JS or by Execute on a host element, ends that execution
// as js_error naming the panic; the executor goes on serving. A panic is a fault of Trellis, not
// an error the app may handle: JS that catches around the call, directly or through another
// element, cannot catch it.
func testHostPanic(e *env) {
	host := jsvm.HostCallerFunc(func(ctx context.Context, c jsvm.HostCall) (any, error) {
		if c.Method == "boom" {
			panic("host bug")
		}
		return "ok", nil
	})
	e.open(host, app(pingElement,
		hostElement("services.H", "boom", "ok"),
		js("services.A", `exports.f = () => app.getElement("services.B").g(); exports.ok = () => app.getElement("services.H").ok();
			exports.caught = () => { try { app.getElement("services.H").boom() } catch (e) { return "caught " + e.code } };
			exports.caughtInB = () => { try { return app.getElement("services.B").g() } catch (e) { return "caught " + e.code } };`),
		js("services.B", `exports.g = () => app.getElement("services.H").boom()`),
	))
	for _, fn := range []string{"f", "caught", "caughtInB"} {
		je := e.fail("services.A", fn)
		require.Equal(e.t, jsvm.CodeJSError, je.Code, "%s: %v", fn, je)
		require.Contains(e.t, je.Message, "host bug", fn)
		e.ping()
		require.Equal(e.t, "ok", e.value("services.A", "ok"))
	}

	je := e.fail("services.H", "boom")
	require.Equal(e.t, jsvm.CodeJSError, je.Code)
	require.Contains(e.t, je.Message, "host bug")
	e.ping()
}

// Without a host, calls to KindHost elements and app.getBuiltin fail with code unavailable, in
// JS and through Execute.
func testNoHost(e *env) {
	e.open(nil, app(
		hostElement("services.TaskSvc", "getTask"),
		js("services.S", `
			exports.f = () => { try { app.getElement("services.TaskSvc").getTask("t") } catch (e) { return e.code } };
			exports.b = () => { try { app.getBuiltin("events.services.EventSvc").sendEvent("x") } catch (e) { return e.code } };`),
	))
	require.Equal(e.t, jsvm.CodeUnavailable, e.value("services.S", "f"))
	require.Equal(e.t, jsvm.CodeUnavailable, e.value("services.S", "b"))
	require.Equal(e.t, jsvm.CodeUnavailable, e.fail("services.TaskSvc", "getTask").Code)
}
