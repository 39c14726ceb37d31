package jsvmtest

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/jsvm"
)

// Plain values cross both ways unchanged: integers stay int64 (see LargeIntegers for those past
// 2^53), floats stay float64, strings, booleans, nil, nested arrays and objects, and times as
// Dates; the same holds from one element to another.
func testValuesRoundTrip(e *env) {
	e.open(nil, app(
		js("services.E", `exports.echo = function () { return Array.from(arguments) };
			exports.viaB = function () { return app.getElement("services.B").echo.apply(null, arguments) };
			exports.types = function () { return Array.from(arguments).map(a => a === null ? "null" : Array.isArray(a) ? "array" : a instanceof Date ? "date" : typeof a) };
			exports.named = function ({sender, kwargs}) { return {sender, kwargs, keys: Object.keys(kwargs)} };
			exports.special = () => [NaN, Infinity, -Infinity, 0.1 + 0.2, -0.5, 2 ** 31, -(2 ** 31), 1e21, undefined, null];
			exports.holes = () => ({u: undefined, n: null, arr: [undefined, null, 1]});`),
		js("services.B", `exports.echo = function () { return Array.from(arguments) }`),
	))
	when := time.Date(2024, 5, 1, 8, 30, 15, 123_000_000, time.UTC)
	args := []any{
		nil, true, false, "text", "", "事件 ✓ \"quoted\" \n\t\\", int64(42), int64(-7), int64(0),
		1.5, -0.25, 1e300, 5e-324,
		int64(math.MaxInt32) * 4, int64(1) << 53, -(int64(1) << 53),
		[]any{int64(1), "two", []any{}, map[string]any{}},
		map[string]any{"nested": map[string]any{"list": []any{true, nil, []any{map[string]any{"deep": "yes"}}}}, "n": 0.25, "": "empty key"},
		[]any{},
		map[string]any{},
		when,
	}
	for _, fn := range []string{"echo", "viaB"} {
		got := e.value("services.E", fn, args...).([]any)
		require.Len(e.t, got, len(args), fn)
		for i := range args {
			if ts, ok := args[i].(time.Time); ok {
				gt, ok := got[i].(time.Time)
				require.True(e.t, ok, "%s arg %d: a time comes back as a time.Time, got %T", fn, i, got[i])
				require.True(e.t, ts.Equal(gt), "%s: %v != %v", fn, ts, gt)
				continue
			}
			require.Equal(e.t, args[i], got[i], "%s arg %d", fn, i)
		}
	}
	require.Equal(e.t, []any{"null", "boolean", "string", "number", "number", "number", "array", "object", "date"},
		e.value("services.E", "types", nil, true, "s", int64(1)<<40, 1.5, int64(3), []any{}, map[string]any{}, when))

	named := e.value("services.E", "named", map[string]any{"sender": "models.UserModel", "kwargs": map[string]any{"userId": 1}})
	require.Equal(e.t, map[string]any{"sender": "models.UserModel", "kwargs": map[string]any{"userId": int64(1)}, "keys": []any{"userId"}}, named)

	sp := e.value("services.E", "special").([]any)
	require.True(e.t, math.IsNaN(sp[0].(float64)), "NaN: %v", sp[0])
	require.True(e.t, math.IsInf(sp[1].(float64), 1), "Infinity: %v", sp[1])
	require.True(e.t, math.IsInf(sp[2].(float64), -1), "-Infinity: %v", sp[2])
	point1, point2 := 0.1, 0.2 // float64 arithmetic, as in JS (constants would be exact)
	require.Equal(e.t, []any{point1 + point2, -0.5, int64(1) << 31, -(int64(1) << 31), 1e21, nil, nil}, sp[3:])
	require.Equal(e.t, map[string]any{"u": nil, "n": nil, "arr": []any{nil, nil, int64(1)}}, e.value("services.E", "holes"))
}

// Integers given as int64 stay int64 and exact past 2^53 (ids such as 9007199254740993), both
// ways, between elements, and from and to the host (vocab.DecodeJSON keeps them exact on every
// other path).
func testLargeIntegers(e *env) {
	var toHost []any
	var mu sync.Mutex
	host := jsvm.HostCallerFunc(func(ctx context.Context, c jsvm.HostCall) (any, error) {
		mu.Lock()
		toHost = c.Args
		mu.Unlock()
		return []any{int64(1)<<53 + 1, int64(math.MaxInt64)}, nil
	})
	e.open(host, app(
		hostElement("services.H", "ids"),
		js("services.E", `exports.echo = function () { return Array.from(arguments) };
			exports.viaB = function () { return app.getElement("services.B").echo.apply(null, arguments) };
			exports.host = function () { return app.getElement("services.H").ids.apply(null, arguments) };
			exports.asText = n => String(n);`),
		js("services.B", `exports.echo = function () { return Array.from(arguments) }`),
	))
	big := []any{int64(1)<<53 + 1, -(int64(1)<<53 + 1), int64(1)<<60 + 3, int64(math.MaxInt64), int64(math.MinInt64)}
	for _, fn := range []string{"echo", "viaB"} {
		require.Equal(e.t, big, e.value("services.E", fn, big...), fn)
	}
	require.Equal(e.t, "9007199254740993", e.value("services.E", "asText", int64(1)<<53+1))
	require.Equal(e.t, []any{int64(1)<<53 + 1, int64(math.MaxInt64)}, e.value("services.E", "host", big...), "from the host")
	mu.Lock()
	defer mu.Unlock()
	require.Equal(e.t, big, toHost, "to the host")
}

// Go values of other types are accepted as arguments and arrive as plain JS values: integer
// kinds, float32, typed slices and maps, structs through their JSON form, pointers.
func testGoValuesArrivePlain(e *env) {
	e.open(nil, app(js("services.E", `exports.echo = function () { return Array.from(arguments) }`)))
	n := int64(9)
	got := e.value("services.E", "echo", 3, int32(4), uint8(5), uint64(6), float32(0.5), []string{"a"}, map[string]string{"k": "v"},
		[]int{1, 2}, map[string]int{"x": 1}, struct {
			Name string `json:"name"`
			Age  int    `json:"age"`
			Skip string `json:"-"`
		}{"ann", 30, "hidden"}, &n)
	require.Equal(e.t, []any{int64(3), int64(4), int64(5), int64(6), 0.5, []any{"a"}, map[string]any{"k": "v"}, []any{int64(1), int64(2)},
		map[string]any{"x": int64(1)}, map[string]any{"name": "ann", "age": int64(30)}, int64(9)}, got)
}

// A time.Time becomes a JS Date of the same instant; a Date comes back as a time.Time of the
// same instant (to the millisecond); an invalid Date comes back as nil.
func testDates(e *env) {
	e.open(nil, app(js("services.D", `
		exports.inspect = d => [d instanceof Date, d.getTime(), d.toISOString()];
		exports.make = () => new Date(Date.UTC(2020, 0, 2, 3, 4, 5, 6));
		exports.nested = d => ({list: [d, {at: new Date(d.getTime() + 1000)}]});
		exports.epoch = () => new Date(0);
		exports.invalid = () => new Date(NaN);`)))
	when := time.Date(2024, 2, 29, 23, 59, 58, 0, time.FixedZone("x", 8*3600))
	require.Equal(e.t, []any{true, when.UnixMilli(), "2024-02-29T15:59:58.000Z"}, e.value("services.D", "inspect", when))
	got, ok := e.value("services.D", "make").(time.Time)
	require.True(e.t, ok, "a Date comes back as a time.Time")
	require.True(e.t, got.Equal(time.Date(2020, 1, 2, 3, 4, 5, 6_000_000, time.UTC)), got.String())
	nested := e.value("services.D", "nested", when).(map[string]any)["list"].([]any)
	require.True(e.t, when.Equal(nested[0].(time.Time)), "%v", nested[0])
	require.True(e.t, when.Add(time.Second).Equal(nested[1].(map[string]any)["at"].(time.Time)), "%v", nested[1])
	require.True(e.t, time.UnixMilli(0).Equal(e.value("services.D", "epoch").(time.Time)))
	require.Nil(e.t, e.value("services.D", "invalid"))
}

// Functions and symbols become nil; a cycle or absurd nesting cannot cross (invalid_argument);
// boxed primitives cross as their values; BigInts as int64 when they fit, else as decimal strings;
// an element gets copies of what another passes it, never the same object.
func testValuesThatDoNotCross(e *env) {
	e.open(nil, app(
		js("services.V", `
			exports.fns = () => ({f() {}, s: Symbol("x"), u: undefined, n: null, arr: [() => 1, undefined]});
			exports.cycle = () => { const o = {}; o.self = o; return o };
			exports.deep = () => { let o = {}; for (let i = 0; i < 1000; i++) o = {o}; return o };
			exports.boxed = () => [new String("s"), new Number(2), new Boolean(false), 10n, 2n ** 70n];
			exports.identity = function () {
				const shared = {v: 1};
				const out = app.getElement("services.W").mutate(shared, shared);
				return [shared.v, out.same, out.a === shared];
			};
			exports.crossCycle = () => { const o = {}; o.o = o; try { app.getElement("services.W").mutate(o, o) } catch (e) { return e.code } };`),
		js("services.W", `exports.mutate = function (a, b) { a.v = 2; return {same: a === b, a} }`),
	))
	require.Equal(e.t, map[string]any{"f": nil, "s": nil, "u": nil, "n": nil, "arr": []any{nil, nil}}, e.value("services.V", "fns"))
	je := e.fail("services.V", "cycle")
	require.Equal(e.t, "invalid_argument", je.Details["code"], "%+v", je)
	require.Contains(e.t, je.Message, "cycle")
	require.Contains(e.t, e.fail("services.V", "deep").Message, "nested deeper")
	require.Equal(e.t, []any{"s", int64(2), false, int64(10), "1180591620717411303424"}, e.value("services.V", "boxed"))
	require.Equal(e.t, []any{int64(1), false, false}, e.value("services.V", "identity"))
	require.Equal(e.t, "invalid_argument", e.value("services.V", "crossCycle"))
}

// Keys such as __proto__ in arguments, and in values passed between elements, stay own data
// properties: they never set a prototype.
func testProtoKeysStayData(e *env) {
	e.open(nil, app(
		js("services.P", `exports.f = function (arg) {
			return [Object.getPrototypeOf(arg) === Object.prototype, ({}).polluted === undefined, arg.polluted === undefined,
				Object.keys(arg).includes("__proto__"), arg.inner.__proto__.polluted === true,
				app.getElement("services.Q").g(JSON.parse('{"__proto__": {"polluted": true}}'))]
		}`),
		js("services.Q", `exports.g = function (x) { return [({}).polluted === undefined, x.polluted === undefined, Object.keys(x).join()] }`),
	))
	arg := map[string]any{"__proto__": map[string]any{"polluted": true}, "inner": map[string]any{"__proto__": map[string]any{"polluted": true}}}
	require.Equal(e.t, []any{true, true, true, true, true, []any{true, true, "__proto__"}}, e.value("services.P", "f", arg))
}
