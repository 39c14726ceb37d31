package jsvm

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCallReturnsValue(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(index("services.Echo", `exports.f = function (a, b) { return {a: a, b: b, sum: a + b} }`)))
	got := mustRun(t, vm, "services.Echo", "f", 1, 2)
	require.Equal(t, map[string]any{"a": int64(1), "b": int64(2), "sum": int64(3)}, got)
}

func TestRequireAndGetElement(t *testing.T) {
	t.Parallel()
	src := source(
		jsElement("services.A", map[string]string{
			"index.js": `const lib = require("./lib/x"); const u = require("commons/util"); exports.f = function (n) { return app.getElement("services.B").double(lib.inc(u.id(n))) }`,
			"lib/x.js": `exports.inc = n => n + 1`,
		}),
		index("services.B", `exports.double = function (n) { console.log("doubling", n); return n * 2 }`),
	)
	src.Commons = map[string]string{"commons/util.js": `exports.id = x => x`}
	vm := setup(t, Options{}, src)
	res, err := run(t, vm, "services.A", "f", 4)
	require.NoError(t, err)
	require.EqualValues(t, 10, res.Value)
	require.Len(t, res.Logs, 1)
	require.Equal(t, "doubling 5", res.Logs[0].Message)
}

func TestErrorPosition(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(index("services.Bad", "exports.f = function () {\n  var x = 1;\n  throw new TypeError('boom');\n}")))
	e := runErr(t, vm, "services.Bad", "f")
	require.Equal(t, CodeJSError, e.Code)
	require.Equal(t, "TypeError: boom", e.Message)
	require.Equal(t, "services/Bad/index.js", e.File)
	require.Equal(t, 3, e.Line)
	require.Contains(t, e.Stack, "services/Bad/index.js:3:")
	t.Log(e.Stack, e.Column)
}
