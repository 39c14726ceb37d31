package jsvm

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// index is a KindJS element with one index.js.
func index(fullName, src string) *Element {
	return &Element{FullName: fullName, Kind: KindJS, Files: map[string]string{"index.js": src}}
}

func source(elements ...*Element) *Source {
	src := &Source{AppName: "testapp", Env: map[string]string{"REGION": "eu"}, Elements: map[string]*Element{}}
	for _, el := range elements {
		src.Elements[el.FullName] = el
	}
	return src
}

// setup makes a VM loaded with src.
func setup(t testing.TB, opts Options, src *Source) *VM {
	t.Helper()
	vm, err := New(opts)
	require.NoError(t, err)
	require.NoError(t, vm.Load(src))
	t.Cleanup(func() { _ = vm.Close() })
	return vm
}

func run(t testing.TB, vm *VM, element, fn string, args ...any) (Result, error) {
	t.Helper()
	if args == nil {
		args = []any{}
	}
	return vm.Execute(context.Background(), Call{Element: element, Function: fn, Args: args})
}

// mustRun runs a call that must succeed and returns its value.
func mustRun(t testing.TB, vm *VM, element, fn string, args ...any) any {
	t.Helper()
	res, err := run(t, vm, element, fn, args...)
	require.NoError(t, err)
	return res.Value
}

// runErr runs a call that must fail and returns its *Error.
func runErr(t testing.TB, vm *VM, element, fn string, args ...any) *Error {
	t.Helper()
	_, err := run(t, vm, element, fn, args...)
	require.Error(t, err)
	e, ok := err.(*Error)
	require.True(t, ok, "error %T %v is not *Error", err, err)
	return e
}
