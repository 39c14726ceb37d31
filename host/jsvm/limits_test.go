package jsvm

import (
	"context"
	"sync"
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

func TestTimeoutLandsNearTheDeadline(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(index("services.Loop", `exports.f = function () { let i = 0; for (;;) { i++ } }`)))
	const timeout = 200 * time.Millisecond
	var worst time.Duration
	for range 3 {
		start := time.Now()
		_, err := vm.Execute(context.Background(), Call{Element: "services.Loop", Function: "f", Limits: Limits{Timeout: timeout}})
		over := time.Since(start) - timeout
		require.Equal(t, CodeTimeout, AsError(err).Code)
		worst = max(worst, over)
	}
	t.Logf("worst overrun past the deadline: %s (target 50ms)", worst)
	// Generous so a loaded CI machine does not flake; the target is 50 ms and is typically < 1 ms.
	require.Less(t, worst, 500*time.Millisecond)
}

func TestContextCancelAndDeadline(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{}, 1)
	host := HostCallerFunc(func(ctx context.Context, c HostCall) (any, error) {
		entered <- struct{}{}
		return nil, nil
	})
	vm := setup(t, Options{Host: host}, source(
		&Element{FullName: "services.Sig", Kind: KindHost, Methods: []string{"started"}},
		index("services.Loop", `exports.f = function () { app.getElement("services.Sig").started(); for (;;) {} }`),
	))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := vm.Execute(ctx, Call{Element: "services.Loop", Function: "f"})
		errc <- err
	}()
	<-entered
	cancel()
	require.Equal(t, CodeCanceled, AsError(<-errc).Code)

	dctx, dcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer dcancel()
	_, err := vm.Execute(dctx, Call{Element: "services.Loop", Function: "f"})
	require.Equal(t, CodeTimeout, AsError(err).Code)
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

func TestLimitsAcrossElements(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(
		index("services.A", `exports.ping = n => app.getElement("services.B").pong(n + 1);
			exports.catchLoop = () => { try { return app.getElement("services.B").loop() } catch (e) { return "caught " + e.code } finally { for (;;) {} } };
			exports.deepInB = () => { try { return app.getElement("services.B").deep() } catch (e) { return "caught" } };
			exports.selfRec = n => app.getElement("services.A").selfRec(n + 1);`),
		index("services.B", `exports.pong = n => app.getElement("services.A").ping(n + 1);
			exports.loop = () => { for (;;) {} };
			exports.deep = function d() { return d() };`),
	))
	e := runErr(t, vm, "services.A", "ping", 0)
	require.Equal(t, CodeStackOverflow, e.Code, e.Error())
	require.Equal(t, CodeStackOverflow, runErr(t, vm, "services.A", "selfRec", 0).Code)
	require.Equal(t, CodeStackOverflow, runErr(t, vm, "services.A", "deepInB").Code)

	start := time.Now()
	_, err := vm.Execute(context.Background(), Call{Element: "services.A", Function: "catchLoop", Limits: Limits{Timeout: 50 * time.Millisecond}})
	require.Equal(t, CodeTimeout, AsError(err).Code, "a limit in the callee cannot be caught by the caller")
	require.Less(t, time.Since(start), 5*time.Second)

	// The call depth is shared: each element's frames count toward one budget.
	vm2 := setup(t, Options{Limits: Limits{MaxCallDepth: 60}}, source(
		index("services.A", `function r(n) { return n ? r(n - 1) : app.getElement("services.B").r(40) } exports.f = () => r(40);`),
		index("services.B", `function r(n) { return n ? r(n - 1) : "bottom" } exports.r = r;`),
	))
	require.Equal(t, CodeStackOverflow, runErr(t, vm2, "services.A", "f").Code)
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

func TestHostPanicNeverEscapes(t *testing.T) {
	t.Parallel()
	host := HostCallerFunc(func(ctx context.Context, c HostCall) (any, error) { panic(c.Method) })
	vm := setup(t, Options{Host: host}, source(
		&Element{FullName: "services.H", Kind: KindHost, Methods: []string{"boom"}},
		index("services.A", `exports.f = () => app.getElement("services.B").g()`),
		index("services.B", `exports.g = () => app.getElement("services.H").boom()`),
	))
	e := runErr(t, vm, "services.A", "f")
	require.Equal(t, CodeJSError, e.Code)
	require.Contains(t, e.Message, "boom")
}

func TestEndlessMicrotasksTimeOut(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(index("services.P", `
		exports.jobs = () => { (function loop() { Promise.resolve().then(loop) })(); return "scheduled" };
		exports.await = async () => { for (;;) { await null } };`)))
	for _, fn := range []string{"jobs", "await"} {
		_, err := vm.Execute(context.Background(), Call{Element: "services.P", Function: fn, Limits: Limits{Timeout: 50 * time.Millisecond}})
		require.Equal(t, CodeTimeout, AsError(err).Code, fn)
	}
}

func TestHugeSparseResultIsRefused(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{Limits: Limits{MemoryBytes: 16 << 20}}, source(index("services.S", `
		exports.f = () => { const a = []; a.length = 4e9; return a };
		exports.g = () => { const a = []; a.length = 4e9; try { app.getElement("services.S").id(a) } catch (e) { return "caught" } };
		exports.id = x => x;`)))
	require.Equal(t, CodeMemoryLimit, runErr(t, vm, "services.S", "f").Code)
	require.Equal(t, CodeMemoryLimit, runErr(t, vm, "services.S", "g").Code)
}
