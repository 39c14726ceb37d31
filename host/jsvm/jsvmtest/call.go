package jsvmtest

import (
	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/jsvm"
)

// A function exported by an element is called with Call.Args as its positional arguments, and
// its return value is Result.Value; it may call other elements through app.getElement.
func testCall(e *env) {
	e.open(nil, app(
		js("services.Echo", `exports.f = function (a, b) { return {a: a, b: b, sum: a + b, n: arguments.length} };
			exports.none = function () { return arguments.length };
			exports.nothing = function () {};
			exports.viaB = function (n) { return app.getElement("services.B").double(n) };`),
		js("services.B", `exports.double = n => n * 2`),
	))
	require.Equal(e.t, map[string]any{"a": int64(1), "b": int64(2), "sum": int64(3), "n": int64(2)}, e.value("services.Echo", "f", 1, 2))
	require.Equal(e.t, int64(0), e.value("services.Echo", "none"), "empty Args: no arguments")
	res, err := e.ex.Execute(e.ctx(), jsvm.Call{Element: "services.Echo", Function: "none", Args: nil})
	require.NoError(e.t, err)
	require.Equal(e.t, int64(0), res.Value, "nil Args: no arguments")
	require.Nil(e.t, e.value("services.Echo", "nothing"), "undefined comes back as nil")
	require.Equal(e.t, int64(10), e.value("services.Echo", "viaB", 5))
	res, err = e.run("services.Echo", "f", "x", "y")
	require.NoError(e.t, err)
	require.Equal(e.t, "xy", res.Value.(map[string]any)["sum"])
}

// An async function's result is what its promise resolves to; awaiting other elements and host
// calls works.
func testAsync(e *env) {
	e.open(&recordingHost{}, app(
		hostElement("services.H", "get"),
		js("services.B", `exports.val = async (n) => n * 3`),
		js("services.A", `exports.f = async function () {
			const r = await app.getElement("services.H").get();
			const v = await app.getElement("services.B").val(2);
			return [r.method, v];
		}`),
	))
	require.Equal(e.t, []any{"get", int64(6)}, e.value("services.A", "f"))
}

// An unknown element, an unknown function, or an export that is no function is not_found for
// the Call itself; inside JS, app.getElement of an unknown element throws with .code
// "not_found" and, uncaught, ends the execution as js_error.
func testNotFound(e *env) {
	e.open(nil, app(
		js("services.N", `exports.f = () => app.getElement("services.Nope"); exports.v = 1;
			exports.g = () => { try { app.getElement("services.Nope") } catch (err) { return err.code } }`),
		&jsvm.Element{FullName: "tasks.Daily", Kind: jsvm.KindData, Definition: map[string]any{"title": "Daily"}},
	))
	je := e.fail("services.Missing", "f")
	require.Equal(e.t, jsvm.CodeNotFound, je.Code)
	require.Contains(e.t, je.Message, "services.Missing")

	je = e.fail("services.N", "nofn")
	require.Equal(e.t, jsvm.CodeNotFound, je.Code)
	require.Contains(e.t, je.Message, "nofn")
	require.Equal(e.t, jsvm.CodeNotFound, e.fail("services.N", "v").Code, "a non-function export is not callable")
	require.Equal(e.t, jsvm.CodeNotFound, e.fail("services.N", "").Code, "no function named")
	require.Equal(e.t, jsvm.CodeNotFound, e.fail("tasks.Daily", "f").Code, "a data element has no functions")
	require.Equal(e.t, "not_found", e.value("services.N", "g"))
	je = e.fail("services.N", "f")
	require.Equal(e.t, jsvm.CodeJSError, je.Code)
	require.Equal(e.t, jsvm.CodeNotFound, je.Details["code"])
}

// app.name and app.env read the Source.
func testAppNameAndEnv(e *env) {
	e.open(nil, app(js("services.S", `exports.f = () => [app.name, app.env("REGION"), app.env("NOPE")]`)))
	require.Equal(e.t, []any{"testapp", "eu", nil}, e.value("services.S", "f"))
}
