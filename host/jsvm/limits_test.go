package jsvm

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTimeoutStopsBusyLoop(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(index("services.Loop", `exports.f = function () { for (;;) {} }`)))
	timeout := 100 * time.Millisecond
	start := time.Now()
	res, err := vm.Execute(context.Background(), Call{Element: "services.Loop", Function: "f", Limits: Limits{Timeout: timeout}})
	elapsed := time.Since(start)
	require.Error(t, err)
	e := err.(*Error)
	require.Equal(t, CodeTimeout, e.Code)
	require.Equal(t, "services/Loop/index.js", e.File)
	require.GreaterOrEqual(t, elapsed, timeout)
	// CI-safe bound: the loop must stop long before a second timeout would have passed.
	require.Less(t, elapsed, timeout+time.Second, "loop ran %s past its deadline", elapsed-timeout)
	require.Nil(t, res.Value)
}

func TestStackOverflow(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(index("services.Rec", `exports.f = function f() { try { return f() } catch (e) { return "caught" } }`)))
	e := runErr(t, vm, "services.Rec", "f")
	require.Equal(t, CodeStackOverflow, e.Code)
}

func TestMemoryGuards(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"repeat":      `"x".repeat(1e9)`,
		"padStart":    `"x".padStart(1e9)`,
		"padEnd":      `"x".padEnd(1e9, "ab")`,
		"join":        `new Array(1e9).join("-")`,
		"fill":        `new Array(1e8).fill(0)`,
		"from":        `Array.from({length: 1e8})`,
		"ArrayBuffer": `new ArrayBuffer(1e9)`,
		"typed":       `new Float64Array(2e8)`,
		"typedFrom":   `Uint8Array.from({length: 1e9})`,
		"subclass":    `(() => { class Big extends Uint32Array {}; return new Big(1e9) })()`,
		"ctorAlias":   `new (new Int8Array(1).constructor)(1e9)`,
	}
	for name, expr := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			vm := setup(t, Options{Limits: Limits{MemoryBytes: 64 << 20}}, source(index("services.M",
				`exports.f = function () { try { return `+expr+` } catch (e) { return "caught " + e.code } }`)))
			e := runErr(t, vm, "services.M", "f")
			require.Equal(t, CodeMemoryLimit, e.Code, e.Error())
		})
	}
}

func TestMemoryGuardsAllowSmallAllocations(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{Limits: Limits{MemoryBytes: 64 << 20}}, source(index("services.M", `exports.f = function () {
		class Small extends Uint8Array {}
		const s = new Small(4);
		return ["ab".repeat(3), "x".padStart(3, "-"), [1, 2, 3].join("+"), new Array(3).fill(7),
			Array.from({length: 2}, (_, i) => i), new Uint8Array([1, 2]).length, new ArrayBuffer(8).byteLength,
			s instanceof Small, s instanceof Uint8Array, new Uint8Array(2) instanceof Uint8Array]
	}`)))
	got := mustRun(t, vm, "services.M", "f")
	require.Equal(t, []any{"ababab", "--x", "1+2+3", []any{int64(7), int64(7), int64(7)}, []any{int64(0), int64(1)},
		int64(2), int64(8), true, true, true}, got)
}

func TestStackOverflowShapes(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"recursion":      `(function f() { return f() })()`,
		"toString":       `(() => { var o = {toString() { return "" + o }}; return "" + o })()`,
		"valueOf":        `(() => { var o = {valueOf() { return o + 1 }}; return o + 1 })()`,
		"getter":         `(() => { var o = {get x() { return o.x }}; return o.x })()`,
		"proxyTrap":      `(() => { var p = new Proxy({}, {get(t, k) { return p[k] }}); return p.x })()`,
		"nativeCallback": `(function f() { return [1].map(f) })()`,
		"jsonDeep":       `(() => { var a = []; for (var i = 0; i < 1e5; i++) a = [a]; return JSON.stringify(a) })()`,
		"jsonDeepObj":    `(() => { var a = {}; for (var i = 0; i < 1e5; i++) a = {a}; return JSON.stringify(a, (k, v) => v) })()`,
		"joinDeep":       `(() => { var a = []; for (var i = 0; i < 1e5; i++) a = [a]; return String(a) })()`,
	}
	for name, expr := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			vm := setup(t, Options{}, source(index("services.S",
				`exports.f = function () { try { return `+expr+` } catch (e) { return "caught " + e } }`)))
			e := runErr(t, vm, "services.S", "f")
			require.Equal(t, CodeStackOverflow, e.Code, e.Error())
		})
	}
}

func TestJSONStringifyStillWorks(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(index("services.J", `exports.f = function () {
		const v = {a: [1, {b: 2}], c: "x", d: {toJSON() { return {e: 1} }}};
		return [JSON.stringify(v), JSON.stringify(v, (k, x) => typeof x === "number" ? x * 10 : x),
			JSON.stringify(v, ["a", "c"]), JSON.stringify(v, null, 1).length > 0, JSON.stringify("s"), JSON.stringify(undefined)]
	}`)))
	got := mustRun(t, vm, "services.J", "f")
	require.Equal(t, []any{`{"a":[1,{"b":2}],"c":"x","d":{"e":1}}`, `{"a":[10,{"b":20}],"c":"x","d":{"e":10}}`,
		`{"a":[1,{}],"c":"x"}`, true, `"s"`, nil}, got)
}
