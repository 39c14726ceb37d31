package jsvm

import (
	"context"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// standardGlobals are the ECMAScript globals goja provides; everything else on the global object
// must come from a binder.
var standardGlobals = strings.Fields(`Object Function Array String Number BigInt RegExp Date Boolean Proxy Reflect
	Error AggregateError TypeError ReferenceError SyntaxError RangeError EvalError URIError eval Math JSON ArrayBuffer
	DataView Uint8Array Uint8ClampedArray Int8Array Uint16Array Int16Array Uint32Array Int32Array Float32Array
	Float64Array BigInt64Array BigUint64Array Symbol WeakSet WeakMap Map Set Promise globalThis NaN undefined Infinity
	isNaN parseInt parseFloat isFinite decodeURI decodeURIComponent encodeURI encodeURIComponent escape unescape
	Symbol(Symbol.toStringTag)`)

// sandboxGlobals are the globals the sandbox adds (docs/reference.md §2).
var sandboxGlobals = []string{"app", "console", "exports", "module", "require"}

func globalsOf(t *testing.T, vm *VM, element, fn string) []string {
	t.Helper()
	got := mustRun(t, vm, element, fn).([]any)
	names := make([]string, 0, len(got))
	for _, n := range got {
		names = append(names, n.(string))
	}
	sort.Strings(names)
	return names
}

func extraGlobals(names []string) []string {
	std := map[string]bool{}
	for _, n := range standardGlobals {
		std[n] = true
	}
	var extra []string
	for _, n := range names {
		if !std[n] {
			extra = append(extra, n)
		}
	}
	return extra
}

func TestGlobalsAreOnlyStandardAndSandbox(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(index("services.G", `
		exports.own = () => Object.getOwnPropertyNames(globalThis).concat(Object.getOwnPropertySymbols(globalThis).map(String));
		exports.viaConstructor = function () { return Object.getOwnPropertyNames(this.constructor.constructor("return this")()) };
		exports.viaFunction = () => Object.getOwnPropertyNames(Function("return this")());
		exports.viaEval = () => Object.getOwnPropertyNames((0, eval)("this"));
		exports.viaArrowProto = () => Object.getOwnPropertyNames((() => {}).constructor("return globalThis")());
		exports.sameGlobal = function () {
			const g = this.constructor.constructor("return this")();
			return g === globalThis && Function("return this")() === globalThis && (0, eval)("this") === globalThis;
		};
	`)))
	for _, fn := range []string{"own", "viaConstructor", "viaFunction", "viaEval", "viaArrowProto"} {
		require.Equal(t, sandboxGlobals, extraGlobals(globalsOf(t, vm, "services.G", fn)), fn)
	}
	require.Equal(t, true, mustRun(t, vm, "services.G", "sameGlobal"))
}

func TestBindersAreCountedPerNamespace(t *testing.T) {
	t.Parallel()
	var names []string
	for _, b := range binders() {
		names = append(names, b.name)
	}
	require.Equal(t, []string{"guards", "console", "app", "require"}, names)

	vm := setup(t, Options{}, source(index("services.B", `
		exports.shape = () => ({
			app: Object.getOwnPropertyNames(app).sort(),
			console: Object.getOwnPropertyNames(console).sort(),
			require: typeof require,
			appFrozen: Object.isFrozen(app),
		});
	`)))
	got := mustRun(t, vm, "services.B", "shape")
	require.Equal(t, map[string]any{
		"app":       []any{"env", "getBuiltin", "getElement", "name"},
		"console":   []any{"debug", "error", "info", "log", "warn"},
		"require":   "function",
		"appFrozen": true,
	}, got)
}

type hostFunc = HostCallerFunc

func TestHostProxyPrototypeTricksReachOnlyTheSandbox(t *testing.T) {
	t.Parallel()
	host := hostFunc(func(ctx context.Context, c HostCall) (any, error) { return "ok", nil })
	src := source(
		&Element{FullName: "services.Host", Kind: KindHost, Methods: []string{"m"}},
		index("services.T", `exports.f = function () {
			const svc = app.getElement("services.Host");
			const b = app.getBuiltin("events.services.EventSvc");
			const g1 = Object.getPrototypeOf(svc.m).constructor("return this")();
			const g2 = svc.m.constructor.constructor("return this")();
			const g3 = Object.getPrototypeOf(b).constructor.constructor("return this")();
			const g4 = b.sendEvent.constructor("return this")();
			return [g1 === globalThis, g2 === globalThis, g3 === globalThis, g4 === globalThis,
				Object.getPrototypeOf(svc) === Object.prototype, Object.getPrototypeOf(b) === Object.prototype,
				Object.getOwnPropertyNames(svc).join(), Object.keys(b).length, typeof b.then, svc.m(), b.anything()];
		}`),
	)
	vm := setup(t, Options{Host: host}, src)
	require.Equal(t, []any{true, true, true, true, true, true, "m", int64(0), "undefined", "ok", "ok"}, mustRun(t, vm, "services.T", "f"))
}
