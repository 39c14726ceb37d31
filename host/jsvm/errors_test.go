package jsvm

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

type codedErr struct{ code, msg string }

func (e codedErr) Error() string                { return e.msg }
func (e codedErr) ErrorCode() string            { return e.code }
func (e codedErr) ErrorDetails() map[string]any { return map[string]any{"field": "userId"} }

func TestNestedErrorKeepsWhereItHappened(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(
		index("services.A", "exports.f = function () {\n  return app.getElement('services.B').g(1);\n}\nexports.c = function () {\n  try { app.getElement('services.B').g(2) } catch (e) { return [e.code, e.message, e instanceof Error] }\n}"),
		index("services.B", "exports.g = function (n) {\n  const e = new Error('bad ' + n);\n  e.code = 'bad_input';\n  throw e;\n}"),
	))
	e := runErr(t, vm, "services.A", "f")
	require.Equal(t, CodeJSError, e.Code)
	require.Equal(t, "bad 1", e.Message)
	require.Equal(t, "services.B", e.Element)
	require.Equal(t, "services/B/index.js", e.File)
	require.Equal(t, 2, e.Line)
	require.Equal(t, "bad_input", e.Details["code"])
	require.Contains(t, e.Stack, "services/B/index.js:2:")
	require.Contains(t, e.Stack, "services/A/index.js:2:")

	require.Equal(t, []any{"bad_input", "bad 2", true}, mustRun(t, vm, "services.A", "c"))
}

func TestThrownNonErrors(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(index("services.T", `
		exports.str = () => { throw "plain string" };
		exports.obj = () => { throw {code: "custom", message: "from object", extra: 1} };
		exports.num = () => { throw 42 };
		exports.undef = () => { throw undefined };
		exports.arr = () => { throw [1, 2] };
		exports.rejected = async () => { throw new RangeError("async bad") };
		exports.pending = () => new Promise(() => {});`)))
	e := runErr(t, vm, "services.T", "str")
	require.Equal(t, CodeJSError, e.Code)
	require.Equal(t, "plain string", e.Message)
	require.Equal(t, "services/T/index.js", e.File)
	require.Equal(t, 2, e.Line)

	e = runErr(t, vm, "services.T", "obj")
	require.Equal(t, "from object", e.Message)
	require.Equal(t, map[string]any{"code": "custom", "extra": int64(1)}, e.Details)

	require.Equal(t, "42", runErr(t, vm, "services.T", "num").Message)
	require.Equal(t, "undefined was thrown", runErr(t, vm, "services.T", "undef").Message)
	require.Equal(t, "[1,2]", runErr(t, vm, "services.T", "arr").Message)

	e = runErr(t, vm, "services.T", "rejected")
	require.Equal(t, "RangeError: async bad", e.Message)
	require.Equal(t, "services/T/index.js", e.File)
	require.Equal(t, 7, e.Line)

	require.Contains(t, runErr(t, vm, "services.T", "pending").Message, "never settled")
}

func TestHostErrorsReachJSWithCode(t *testing.T) {
	t.Parallel()
	host := HostCallerFunc(func(ctx context.Context, c HostCall) (any, error) {
		switch c.Method {
		case "coded":
			return nil, codedErr{"invalid_argument", "userId must be a number"}
		case "jsvmErr":
			return nil, &Error{Code: "not_found", Message: "no such row", Details: map[string]any{"id": 7}}
		case "plain":
			return nil, errors.New("disk on fire")
		case "panic":
			panic("host bug")
		}
		return nil, nil
	})
	vm := setup(t, Options{Host: host}, source(
		&Element{FullName: "services.H", Kind: KindHost, Methods: []string{"coded", "jsvmErr", "plain", "panic", "ok"}},
		index("services.C", `exports.f = function (m) {
			try { app.getElement("services.H")[m](); return "no error" } catch (e) { return {code: e.code, message: e.message, details: e.details} } };
			exports.uncaught = () => app.getElement("services.H").coded();`),
	))
	require.Equal(t, map[string]any{"code": "invalid_argument", "message": "userId must be a number", "details": map[string]any{"field": "userId"}},
		mustRun(t, vm, "services.C", "f", "coded"))
	require.Equal(t, map[string]any{"code": "not_found", "message": "no such row", "details": map[string]any{"id": int64(7)}},
		mustRun(t, vm, "services.C", "f", "jsvmErr"))
	require.Equal(t, map[string]any{"code": CodeInternal, "message": "services.H.plain: disk on fire", "details": nil},
		mustRun(t, vm, "services.C", "f", "plain"))

	e := runErr(t, vm, "services.C", "uncaught")
	require.Equal(t, CodeJSError, e.Code)
	require.Equal(t, "invalid_argument", e.Details["code"])
	require.Equal(t, "services/C/index.js", e.File)

	e = runErr(t, vm, "services.C", "f", "panic")
	require.Equal(t, CodeJSError, e.Code)
	require.Contains(t, e.Message, "host bug")
	// The runtime that saw the panic is gone; the element still works.
	require.Equal(t, "no error", mustRun(t, vm, "services.C", "f", "ok"))
}

func TestSyntaxErrorsAtLoad(t *testing.T) {
	t.Parallel()
	vm, err := New(Options{})
	require.NoError(t, err)
	good := source(index("services.S", `exports.f = () => 1`))
	require.NoError(t, vm.Load(good))

	err = vm.Load(source(
		jsElement("services.S", map[string]string{"index.js": "exports.f = () => 1;\nexports.g = function ( {\n};", "lib/x.js": "var = 3"}),
		index("services.Z", "let a = 1; let a = 2;"),
	))
	require.Error(t, err)
	var first *Error
	require.True(t, errors.As(err, &first))
	require.Equal(t, CodeJSError, first.Code)
	require.Equal(t, "services/S/index.js", first.File)
	require.Equal(t, 3, first.Line, "goja reports the unexpected } on line 3")
	require.Contains(t, first.Message, "SyntaxError")
	msg := err.Error()
	require.Contains(t, msg, "services/S/lib/x.js:1:5")
	require.Contains(t, msg, "services/Z/index.js:1:")

	// A broken load keeps the last good version in service.
	require.EqualValues(t, 1, mustRun(t, vm, "services.S", "f"))

	err = CheckSyntax("services/X/index.js", "var ok = 1;\n\n  var = 2")
	require.Error(t, err)
	require.Equal(t, 3, err.(*Error).Line)
	require.Equal(t, "services/X/index.js", err.(*Error).File)
	err = CheckSyntax("services/X/index.js", "x = (")
	require.Equal(t, 1, err.(*Error).Line)
	require.Equal(t, 6, err.(*Error).Column, "column on line 1 must not include the module wrapper")
	require.NoError(t, CheckSyntax("services/X/index.js", "exports.f = () => 1 // trailing comment"))
	require.NoError(t, CheckSyntax("services/X/index.js", "if (true) return; exports.f = 1"), "CommonJS allows a top-level return")
	err = CheckSyntax("services/X/index.js", "exports.f = 1;\n}")
	require.Equal(t, 2, err.(*Error).Line, "an error in the wrapper's tail points at the file's end")
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(index("services.N", `exports.f = () => app.getElement("services.Nope"); exports.v = 1;
		exports.g = () => { try { app.getElement("services.Nope") } catch (e) { return e.code } }`)))
	e := runErr(t, vm, "services.Missing", "f")
	require.Equal(t, CodeNotFound, e.Code)
	require.Contains(t, e.Message, "services.Missing")

	e = runErr(t, vm, "services.N", "nofn")
	require.Equal(t, CodeNotFound, e.Code)
	require.Contains(t, e.Message, "services.N")
	require.Contains(t, e.Message, "nofn")
	require.Equal(t, CodeNotFound, runErr(t, vm, "services.N", "v").Code, "a non-function export is not callable")
	require.Equal(t, "not_found", mustRun(t, vm, "services.N", "g"))
	e = runErr(t, vm, "services.N", "f")
	require.Equal(t, CodeJSError, e.Code)
	require.Equal(t, CodeNotFound, e.Details["code"])
}

func TestModuleTopLevelErrorAndRecovery(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(index("services.M", "exports.f = () => 1;\nnull.boom;")))
	for i := range 2 {
		e := runErr(t, vm, "services.M", "f")
		require.Equal(t, CodeJSError, e.Code, fmt.Sprint(i))
		require.Equal(t, "services/M/index.js", e.File)
		require.Equal(t, 2, e.Line)
	}
}

func TestExecuteAfterCloseAndBeforeLoad(t *testing.T) {
	t.Parallel()
	vm, err := New(Options{})
	require.NoError(t, err)
	_, err = vm.Execute(context.Background(), Call{Element: "x", Function: "f"})
	require.Equal(t, CodeUnavailable, AsError(err).Code)
	require.ErrorIs(t, err, ErrNoSource)
	require.NoError(t, vm.Load(source(index("services.A", `exports.f = () => 1`))))
	require.NoError(t, vm.Close())
	_, err = vm.Execute(context.Background(), Call{Element: "services.A", Function: "f"})
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, vm.Load(source()), ErrClosed)
}

func TestHostileThrownValues(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(index("services.H", `
		exports.getterThrows = () => { throw {get message() { throw new Error("nope") }} };
		exports.toStringThrows = () => { throw {toString() { throw 1 }, toJSON() { throw 2 }} };
		exports.deep = () => { let o = {}; for (let i = 0; i < 1e5; i++) o = {o}; throw o };
		exports.symbol = () => { throw Symbol("s") };
		exports.logDeep = () => { let o = {}; for (let i = 0; i < 1e5; i++) o = {o}; console.log(o); return "logged" };`)))
	for _, fn := range []string{"getterThrows", "toStringThrows", "symbol"} {
		e := runErr(t, vm, "services.H", fn)
		require.Equal(t, CodeJSError, e.Code, fn)
		require.NotEmpty(t, e.Message, fn)
		require.Equal(t, "services/H/index.js", e.File, fn)
	}
	e := runErr(t, vm, "services.H", "deep")
	require.Contains(t, []string{CodeJSError, CodeStackOverflow}, e.Code)
	require.NotContains(t, e.Message, "could not be read")
	e = runErr(t, vm, "services.H", "logDeep")
	require.Equal(t, CodeStackOverflow, e.Code)
}
