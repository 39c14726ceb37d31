package jsvm

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

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
		"localeDeep":     `(() => { var a = []; for (var i = 0; i < 1e5; i++) a = [a]; return a.toLocaleString() })()`,
		"flatDeep":       `(() => { var a = []; for (var i = 0; i < 1e4; i++) a = [a]; return a.flat(Infinity).length })()`,
		"jsonParseDeep":  `JSON.parse("[".repeat(1e5) + "]".repeat(1e5)).length`,
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

// flat within the call depth flattens as it should, to any depth given.
func TestFlatStillWorks(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(index("services.F", `exports.f = function () {
		let deep = [1]; for (let i = 0; i < 500; i++) deep = [deep, i];
		return [[1, [2, [3, [4]]]].flat(), [1, [2, [3, [4]]]].flat(2), [1, [2, [3, [4]]]].flat(Infinity),
			deep.flat(Infinity).length, [[1], [2]].flat(0).length, [1, [2]].flatMap(x => [x, x]).length]
	}`)))
	got := mustRun(t, vm, "services.F", "f")
	require.Equal(t, []any{[]any{int64(1), int64(2), []any{int64(3), []any{int64(4)}}}, []any{int64(1), int64(2), int64(3), []any{int64(4)}},
		[]any{int64(1), int64(2), int64(3), int64(4)}, int64(501), int64(2), int64(4)}, got)
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

func TestRuntimeIsDroppedAfterALimit(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{MaxIdlePerElement: 1}, source(index("services.C", `let n = 0;
		exports.next = () => ++n;
		exports.spin = () => { n = 1000; for (;;) {} };
		exports.deep = function d() { n = 2000; return d() };`)))
	require.EqualValues(t, 1, mustRun(t, vm, "services.C", "next"))
	_, err := vm.Execute(context.Background(), Call{Element: "services.C", Function: "spin", Limits: Limits{Timeout: 20 * time.Millisecond}})
	require.Equal(t, CodeTimeout, AsError(err).Code)
	require.EqualValues(t, 1, mustRun(t, vm, "services.C", "next"), "a fresh runtime after the timeout")
	require.Equal(t, CodeStackOverflow, runErr(t, vm, "services.C", "deep").Code)
	require.EqualValues(t, 1, mustRun(t, vm, "services.C", "next"), "a fresh runtime after the overflow")
}

func TestMemoryProbe(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var used uint64
	probe := func() uint64 {
		mu.Lock()
		defer mu.Unlock()
		used += 1 << 20 // the "process" grows 1 MiB per sample while the loop runs
		return used
	}
	vm := setup(t, Options{MemoryProbe: probe, Limits: Limits{MemoryBytes: 8 << 20}}, source(
		index("services.M", `exports.grow = () => { const a = []; for (;;) a.push({}) }; exports.small = () => 1`)))
	e := runErr(t, vm, "services.M", "grow")
	require.Equal(t, CodeMemoryLimit, e.Code)
	require.Equal(t, "services/M/index.js", e.File)
	require.EqualValues(t, 1, mustRun(t, vm, "services.M", "small"))
}

func TestHugeSparseResultIsRefused(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{Limits: Limits{MemoryBytes: 16 << 20}}, source(index("services.S", `
		exports.f = () => { const a = []; a.length = 4e9; return a };
		exports.g = () => { const a = []; a.length = 4e9; try { app.getElement("services.S").id(a) } catch (e) { return "caught" } };
		exports.id = x => x;`)))
	// Refused by their size before anything is allocated: a result past the result cap ends the
	// execution; an argument past the message cap is an error the caller may catch.
	require.Equal(t, CodeResultTooLarge, runErr(t, vm, "services.S", "f").Code)
	require.Equal(t, "caught", mustRun(t, vm, "services.S", "g"))
}

// The guarded constructors do not lead code back to the unguarded originals: a wrapper that
// inherited from its original made new (Object.getPrototypeOf(Float64Array))(4e9) a fatal
// out-of-memory of the whole process. Their statics, species and subclassing still work.
func TestGuardedConstructorsHideTheOriginals(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{Limits: Limits{MemoryBytes: 64 << 20}}, source(index("services.M", `exports.f = function () {
		const parent = Object.getPrototypeOf(Float64Array);
		let made;
		try { made = new parent(4e9).length } catch (e) { made = e.name }
		class Sub extends Uint8Array {}
		return [made, parent === Object.getPrototypeOf(Uint8Array), Object.getPrototypeOf(ArrayBuffer) === Function.prototype,
			Float64Array.BYTES_PER_ELEMENT, ArrayBuffer.isView(new Uint8Array(1)), Uint8Array.from([1, 2]).length,
			Uint8Array.of(1, 2, 3).length, new Uint8Array(4).slice(1).constructor === Uint8Array,
			ArrayBuffer[Symbol.species] === ArrayBuffer, new ArrayBuffer(8).slice(2).byteLength,
			new Sub(2) instanceof Uint8Array, Sub.from([1]) instanceof Sub]
	}`)))
	require.Equal(t, []any{"TypeError", true, true, int64(8), true, int64(2), int64(3), true, true, int64(6), true, true},
		mustRun(t, vm, "services.M", "f"))
}
