package jsvm

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestValuesRoundTrip(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(
		index("services.E", `exports.echo = function () { return Array.from(arguments) };
			exports.viaB = function () { return app.getElement("services.B").echo.apply(null, arguments) };
			exports.named = function ({sender, kwargs}) { return {sender, kwargs, keys: Object.keys(kwargs)} };`),
		index("services.B", `exports.echo = function () { return Array.from(arguments) }`),
	))
	when := time.Date(2024, 5, 1, 8, 30, 15, 123_000_000, time.UTC)
	args := []any{
		nil, true, false, "text", "", int64(42), int64(-7), 1.5, int64(math.MaxInt32) * 4, int64(1) << 53,
		[]any{int64(1), "two", []any{}, map[string]any{}},
		map[string]any{"nested": map[string]any{"list": []any{true, nil}}, "n": 0.25},
		when,
	}
	for _, fn := range []string{"echo", "viaB"} {
		got := mustRun(t, vm, "services.E", fn, args...).([]any)
		require.Len(t, got, len(args), fn)
		for i := range args {
			if ts, ok := args[i].(time.Time); ok {
				require.True(t, ts.Equal(got[i].(time.Time)), "%s: %v != %v", fn, ts, got[i])
				continue
			}
			require.Equal(t, args[i], got[i], "%s arg %d", fn, i)
		}
	}
	// Go integer kinds and typed containers arrive as plain JS values.
	got := mustRun(t, vm, "services.E", "echo", 3, int32(4), uint8(5), float32(0.5), []string{"a"}, map[string]string{"k": "v"},
		[]int{1, 2}, map[string]int{"x": 1}, struct {
			Name string `json:"name"`
			Age  int    `json:"age"`
		}{"ann", 30})
	require.Equal(t, []any{int64(3), int64(4), int64(5), 0.5, []any{"a"}, map[string]any{"k": "v"}, []any{int64(1), int64(2)},
		map[string]any{"x": int64(1)}, map[string]any{"name": "ann", "age": int64(30)}}, got)

	named := mustRun(t, vm, "services.E", "named", map[string]any{"sender": "models.UserModel", "kwargs": map[string]any{"userId": 1}})
	require.Equal(t, map[string]any{"sender": "models.UserModel", "kwargs": map[string]any{"userId": int64(1)}, "keys": []any{"userId"}}, named)
}

func TestDatesCrossAsDates(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(index("services.D", `
		exports.inspect = d => [d instanceof Date, d.getTime(), d.toISOString()];
		exports.make = () => new Date(Date.UTC(2020, 0, 2, 3, 4, 5, 6));
		exports.invalid = () => new Date(NaN);`)))
	when := time.Date(2024, 2, 29, 23, 59, 58, 0, time.FixedZone("x", 8*3600))
	require.Equal(t, []any{true, when.UnixMilli(), "2024-02-29T15:59:58.000Z"}, mustRun(t, vm, "services.D", "inspect", when))
	got := mustRun(t, vm, "services.D", "make").(time.Time)
	require.True(t, got.Equal(time.Date(2020, 1, 2, 3, 4, 5, 6_000_000, time.UTC)), got.String())
	require.Nil(t, mustRun(t, vm, "services.D", "invalid"))
}

func TestValuesThatDoNotCross(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(
		index("services.V", `
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
		index("services.W", `exports.mutate = function (a, b) { a.v = 2; return {same: a === b, a} }`),
	))
	require.Equal(t, map[string]any{"f": nil, "s": nil, "u": nil, "n": nil, "arr": []any{nil, nil}}, mustRun(t, vm, "services.V", "fns"))
	e := runErr(t, vm, "services.V", "cycle")
	require.Equal(t, CodeInvalidArg, e.Details["code"])
	require.Contains(t, e.Message, "cycle")
	require.Contains(t, runErr(t, vm, "services.V", "deep").Message, "nested deeper")
	require.Equal(t, []any{"s", int64(2), false, int64(10), "1180591620717411303424"}, mustRun(t, vm, "services.V", "boxed"))
	// Structured-clone-like: the callee gets copies, and no identity crosses.
	require.Equal(t, []any{int64(1), false, false}, mustRun(t, vm, "services.V", "identity"))
	require.Equal(t, CodeInvalidArg, mustRun(t, vm, "services.V", "crossCycle"))
}

func TestHostValuesArePlain(t *testing.T) {
	t.Parallel()
	type row struct {
		ID   int       `json:"id"`
		Tags []string  `json:"tags"`
		At   time.Time `json:"at"`
	}
	host := HostCallerFunc(func(ctx context.Context, c HostCall) (any, error) {
		return map[string]any{"row": row{ID: 1, Tags: []string{"a"}, At: time.Unix(0, 0).UTC()}, "args": c.Args, "when": time.UnixMilli(1000)}, nil
	})
	vm := setup(t, Options{Host: host}, source(
		&Element{FullName: "models.M", Kind: KindHost, Methods: []string{"get"}},
		index("services.U", `exports.f = function () {
			const r = app.getElement("models.M").get(1, {a: [new Date(5)]});
			return [r.row.id, r.row.tags[0], typeof r.row.at, r.when instanceof Date, r.when.getTime(), r.args,
				Object.getPrototypeOf(r.row) === Object.prototype, Array.isArray(r.row.tags)];
		}`),
	))
	got := mustRun(t, vm, "services.U", "f").([]any)
	require.Equal(t, []any{int64(1), "a", "string", true, int64(1000)}, got[:5])
	args := got[5].([]any)
	require.Equal(t, int64(1), args[0])
	require.True(t, time.UnixMilli(5).Equal(args[1].(map[string]any)["a"].([]any)[0].(time.Time)))
	require.Equal(t, []any{true, true}, got[6:])
}
