package jsvm

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// A host panic is thrown into the VM uncatchably: the execution ends as js_error even when the
// code catches around the call (isolate's supervisor recovers it into a catchable Error instead).
// The runtime that saw the panic is dropped; the element still works. Host errors in general are
// in jsvmtest (HostErrors, HostPanic).
func TestHostPanicEndsTheExecutionEvenWhenCaught(t *testing.T) {
	t.Parallel()
	host := HostCallerFunc(func(ctx context.Context, c HostCall) (any, error) {
		if c.Method == "panic" {
			panic("host bug")
		}
		return nil, nil
	})
	vm := setup(t, Options{Host: host}, source(
		&Element{FullName: "services.H", Kind: KindHost, Methods: []string{"panic", "ok"}},
		index("services.C", `exports.f = function (m) {
			try { app.getElement("services.H")[m](); return "no error" } catch (e) { return {code: e.code, message: e.message} } };`),
	))
	e := runErr(t, vm, "services.C", "f", "panic")
	require.Equal(t, CodeJSError, e.Code)
	require.Contains(t, e.Message, "host bug")
	require.Equal(t, "no error", mustRun(t, vm, "services.C", "f", "ok"))
}

// Syntax errors at Load are in jsvmtest (SyntaxErrorAtLoad); CheckSyntax reports them without a
// VM, at the file's own positions.
func TestCheckSyntax(t *testing.T) {
	t.Parallel()
	err := CheckSyntax("services/X/index.js", "var ok = 1;\n\n  var = 2")
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

// jsvmtest checks the codes (ExecuteBeforeLoad, Close); the VM also gives its sentinels.
func TestSentinelsBeforeLoadAndAfterClose(t *testing.T) {
	t.Parallel()
	vm, err := New(Options{})
	require.NoError(t, err)
	_, err = vm.Execute(context.Background(), Call{Element: "x", Function: "f"})
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
