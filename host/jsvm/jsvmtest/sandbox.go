package jsvmtest

import (
	"strings"

	"github.com/stretchr/testify/require"
)

// require loads the element's own files (relative paths, with or without .js, .json, a
// directory's index.js) and commons/ modules (which may require each other relatively); anything
// else is refused with an Error whose code is not_found or invalid_argument: Node's built-ins,
// other elements' files, absolute paths, URLs, escapes from commons/.
func testRequire(e *env) {
	src := app(
		jsFiles("services.R", map[string]string{
			"index.js": `exports.req = function (p) { try { require(p); return "loaded" } catch (e) { return e.code + ": " + e.message } };
				exports.ok = () => [require("./lib/a").a, require("./lib/a.js").a, require("./data.json").n, require("commons/u").u,
					require("./lib").idx, require("commons/deep/v").v, require("commons/u.js").u, require("./lib/b").b];
				exports.same = () => require("./lib/a") === require("./lib/a.js");`,
			"lib/a.js":     `exports.a = 1`,
			"lib/b.js":     `exports.b = require("./a").a + 10`,
			"lib/index.js": `exports.idx = "i"`,
			"data.json":    `{"n": 2}`,
		}),
		js("services.Other", `exports.secret = 42`),
	)
	src.Commons = map[string]string{"commons/u.js": `exports.u = require("./deep/v").v + 1`, "commons/deep/v.js": `exports.v = 3`}
	e.open(nil, src)
	require.Equal(e.t, []any{int64(1), int64(1), int64(2), int64(4), "i", int64(3), int64(4), int64(11)}, e.value("services.R", "ok"))
	require.Equal(e.t, true, e.value("services.R", "same"), "a module is evaluated once per runtime")
	for _, p := range []string{"fs", "child_process", "node:fs", "process", "path", "os", "net", "http", "vm", "worker_threads",
		"../Other/index.js", "../../services/Other", "./../Other", "/etc/passwd", "/services/Other/index.js",
		"commons/../services/Other/index.js", "commons/../../etc/passwd", "C:\\x", "http://x/y.js", "./missing", "commons/missing", ""} {
		got, ok := e.value("services.R", "req", p).(string)
		require.True(e.t, ok, "%q", p)
		require.NotEqual(e.t, "loaded", got, "require(%q) must be refused", p)
		require.True(e.t, strings.HasPrefix(got, "not_found: ") || strings.HasPrefix(got, "invalid_argument: "), "require(%q): %s", p, got)
	}
}

// Code has no file system, process, network, timers or host objects: only the standard globals
// and the sandbox's app, console and require.
func testNoHostObjects(e *env) {
	e.open(nil, app(js("services.G", `
		exports.types = () => [typeof process, typeof Deno, typeof Bun, typeof setTimeout, typeof setInterval, typeof setImmediate,
			typeof queueMicrotask, typeof fetch, typeof XMLHttpRequest, typeof WebSocket, typeof Buffer,
			typeof global, typeof GoError, typeof __go];
		exports.sandbox = () => [typeof app, typeof console, typeof require, typeof module, typeof exports];
		exports.viaFunction = () => typeof Function("return this")().process;`)))
	for i, typ := range e.value("services.G", "types").([]any) {
		require.Equal(e.t, "undefined", typ, "host global %d", i)
	}
	require.Equal(e.t, []any{"object", "object", "function", "object", "object"}, e.value("services.G", "sandbox"))
	require.Equal(e.t, "undefined", e.value("services.G", "viaFunction"))
}

// Globals and prototypes an element changes are never seen by another element, whether it is
// called from the changing element or on its own; values passed between elements arrive with
// the callee's prototypes.
func testIsolationBetweenElements(e *env) {
	e.open(nil, app(
		js("services.A", `
			Object.prototype.polluted = "A";
			Array.prototype.includes = () => true;
			String.prototype.trim = () => "hijacked";
			JSON.parse = () => "hijacked";
			Math.max = () => -1;
			globalThis.leak = 1;
			var topLevelVar = 2;
			exports.call = () => app.getElement("services.B").probe({x: 1}, [1]);
			exports.self = () => [({}).polluted, [].includes(1), " x ".trim(), typeof leak];`),
		js("services.B", `exports.probe = (o, a) => [({}).polluted, o.polluted, [].includes(1), " x ".trim(), JSON.parse("1"),
			Math.max(1, 2), typeof leak, typeof topLevelVar, Object.getPrototypeOf(o) === Object.prototype, Object.keys(o),
			Array.isArray(a) && Object.getPrototypeOf(a) === Array.prototype]`),
	))
	want := []any{nil, nil, false, "x", int64(1), int64(2), "undefined", "undefined", true, []any{"x"}, true}
	require.Equal(e.t, []any{"A", true, "hijacked", "number"}, e.value("services.A", "self"), "A sees its own changes")
	require.Equal(e.t, want, e.value("services.A", "call"), "B called from A")
	require.Equal(e.t, want, e.value("services.B", "probe", map[string]any{"x": 1}, []any{1}), "B on its own")
}
