package jsvmtest

import (
	"context"
	"fmt"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/jsvm"
)

// A busy loop, an endless chain of microtasks and a loop in a called element end at the call's
// deadline with code timeout, naming the element, and no catch or finally runs; trivial
// executions run meanwhile and after.
func testTimeout(e *env) {
	e.open(nil, app(pingElement,
		js("services.Loop", `
			exports.spin = function () { try { for (;;) {} } catch (e) { return "caught" } finally { return "finally" } };
			exports.jobs = () => { (function loop() { Promise.resolve().then(loop) })(); return "scheduled" };
			exports.awaits = async () => { for (;;) { await null } };
			exports.catchLoop = () => { try { return app.getElement("services.B").loop() } catch (e) { return "caught " + e.code } };`),
		js("services.B", `exports.loop = () => { for (;;) {} }`),
	))
	const timeout = 200 * time.Millisecond
	for _, fn := range []string{"spin", "jobs", "awaits", "catchLoop"} {
		je, took := e.limited(jsvm.Call{Element: "services.Loop", Function: fn, Limits: jsvm.Limits{Timeout: timeout}})
		require.Equal(e.t, jsvm.CodeTimeout, je.Code, "%s: %v", fn, je)
		require.GreaterOrEqual(e.t, took, timeout, fn)
		require.Less(e.t, took, timeout+e.f.Slack, "%s ran %s past its deadline", fn, took-timeout)
		e.t.Logf("%-9s timeout %s after its deadline", fn, took-timeout)
	}
	res, err := e.exec(jsvm.Call{Element: "services.Loop", Function: "spin", Limits: jsvm.Limits{Timeout: timeout}})
	je := e.asError(err, "spin")
	require.Equal(e.t, "services.Loop", je.Element, "a timeout names the element")
	require.Nil(e.t, res.Value)
}

// An element's Timeout applies when the call sets none; a call's own timeout wins over it.
func testElementTimeout(e *env) {
	short := js("services.Short", `exports.spin = () => { for (;;) {} }`)
	short.Timeout = 100 * time.Millisecond
	long := js("services.Long", `exports.spin = () => { for (;;) {} }`)
	long.Timeout = time.Hour
	e.open(nil, app(pingElement, short, long))

	je, took := e.limited(jsvm.Call{Element: "services.Short", Function: "spin"})
	require.Equal(e.t, jsvm.CodeTimeout, je.Code)
	require.Less(e.t, took, short.Timeout+e.f.Slack, "the element's timeout, not the executor's %s, must apply", e.f.Timeout)

	const callTimeout = 400 * time.Millisecond
	je, took = e.limited(jsvm.Call{Element: "services.Short", Function: "spin", Limits: jsvm.Limits{Timeout: callTimeout}})
	require.Equal(e.t, jsvm.CodeTimeout, je.Code)
	require.GreaterOrEqual(e.t, took, callTimeout, "the call's timeout wins over the element's shorter one")

	je, took = e.limited(jsvm.Call{Element: "services.Long", Function: "spin", Limits: jsvm.Limits{Timeout: 100 * time.Millisecond}})
	require.Equal(e.t, jsvm.CodeTimeout, je.Code)
	require.Less(e.t, took, 100*time.Millisecond+e.f.Slack, "the call's timeout wins over the element's longer one")
}

// A canceled ctx ends a running execution with code canceled; a ctx deadline before the
// call's timeout ends it with timeout; a ctx canceled before Execute fails it with canceled.
func testContextCancelAndDeadline(e *env) {
	g := newGate()
	e.open(g, app(pingElement,
		hostElement("services.Sig", "enter"),
		js("services.Loop", `exports.f = function () { app.getElement("services.Sig").enter(); for (;;) {} }`),
	))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := e.ex.Execute(ctx, jsvm.Call{Element: "services.Loop", Function: "f", Args: []any{}})
		errc <- err
	}()
	e.waitEntered(g)
	time.Sleep(50 * time.Millisecond) // let it reach the loop: CancelDuringHostCall is the other case
	start := time.Now()
	cancel()
	select {
	case err := <-errc:
		je := e.asError(err, "canceled execution")
		require.Equal(e.t, jsvm.CodeCanceled, je.Code, "%+v", je)
		require.Less(e.t, time.Since(start), e.f.Slack, "the execution ends soon after the cancel")
	case <-time.After(e.f.Timeout):
		e.t.Fatalf("a canceled execution did not end within %s", e.f.Timeout)
	}
	e.ping()

	dctx, dcancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer dcancel()
	start = time.Now()
	_, err := e.ex.Execute(dctx, jsvm.Call{Element: "services.Loop", Function: "f", Args: []any{}})
	require.Equal(e.t, jsvm.CodeTimeout, e.asError(err, "ctx deadline").Code)
	require.Less(e.t, time.Since(start), 100*time.Millisecond+e.f.Slack)
	e.ping()

	done, dcancel2 := context.WithCancel(context.Background())
	dcancel2()
	_, err = e.ex.Execute(done, jsvm.Call{Element: "services.Loop", Function: "f", Args: []any{}})
	require.Equal(e.t, jsvm.CodeCanceled, e.asError(err, "ctx canceled before Execute").Code)
	e.ping()
}

// An execution whose ctx is canceled, or whose deadline passes, while it waits for a host call
// ends with canceled or timeout, as it would in JS code, and as uncatchably: the host call's own
// error (the ctx's) must not turn it into a js_error, nor reach a catch around the call (in the
// calling element or one that called it), and a host that ignores its ctx and answers a value
// does not let the execution go on.
func testCancelDuringHostCall(e *env) {
	g := newGate()
	e.open(g, app(pingElement,
		hostElement("services.Gate", "wait", "hold"),
		js("services.W", `exports.f = function () { app.getElement("services.Gate").wait(); return "released" };
			exports.caught = function () { try { app.getElement("services.Gate").wait() } catch (e) { console.log("caught " + e.code); return "caught " + e.code } };
			exports.held = function () { const v = app.getElement("services.Gate").hold(); console.log("went on with " + v); return v };
			exports.nested = function () { try { return app.getElement("services.V").g() } catch (e) { console.log("caught " + e.code); return "caught " + e.code } };`),
		js("services.V", `exports.g = function () { try { app.getElement("services.Gate").wait() } catch (e) { console.log("caught in V " + e.code); return "caught " + e.code } };`),
	))
	// drain forgets the gate's record of calls made so far, so that waitEntered sees the next.
	drain := func() {
		for {
			select {
			case <-g.entered:
			default:
				return
			}
		}
	}
	// run executes fn, ends it during its host call (cancel, or its deadline) and returns its
	// error, requiring that no JS ran after the host call. A short deadline may pass before the
	// call is made on a loaded machine (the execution then makes none), so only a cancel waits
	// for the host.
	run := func(fn string, limits jsvm.Limits, cancelIt bool) *jsvm.Error {
		defer drain()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		type out struct {
			res jsvm.Result
			err error
		}
		done := make(chan out, 1)
		go func() {
			res, err := e.ex.Execute(ctx, jsvm.Call{Element: "services.W", Function: fn, Args: []any{}, Limits: limits})
			if err == nil {
				err = fmt.Errorf("no error; value %v", res.Value)
			}
			done <- out{res, err}
		}()
		if cancelIt {
			e.waitEntered(g)
			cancel()
		}
		select {
		case o := <-done:
			require.Empty(e.t, o.res.Logs, "%s: JS ran after the host call its execution ended in", fn)
			return e.asError(o.err, fn+" ended during a host call")
		case <-time.After(e.f.Timeout):
			e.t.Fatalf("%s: an execution ended during a host call did not end within %s", fn, e.f.Timeout)
			return nil
		}
	}
	for _, fn := range []string{"f", "caught", "held", "nested"} {
		je := run(fn, jsvm.Limits{}, true)
		require.Equal(e.t, jsvm.CodeCanceled, je.Code, "%s: %v", fn, je)
		e.ping()

		je = run(fn, jsvm.Limits{Timeout: 100 * time.Millisecond}, false)
		require.Equal(e.t, jsvm.CodeTimeout, je.Code, "%s: deadline during a host call: %v", fn, je)
		e.ping()

		je, _ = e.limited(jsvm.Call{Element: "services.W", Function: fn, Limits: jsvm.Limits{Timeout: 100 * time.Millisecond}})
		require.Equal(e.t, jsvm.CodeTimeout, je.Code, "%s: deadline during a host call: %v", fn, je)
		drain()
	}
}

// Code stuck inside a built-in that never looks at the interrupt (a backtracking regular
// expression) ends at its deadline with timeout, where the executor can stop it.
func testStuckBuiltin(e *env) {
	if !e.f.StopsStuckBuiltins {
		e.t.Skip("the executor does not stop code stuck inside a built-in (Features.StopsStuckBuiltins)")
	}
	e.open(nil, app(pingElement, js("services.Re", `exports.regex = function () { return /^(a+)+(?=b)$/.test("a".repeat(40) + "c") }`)))
	const timeout = 300 * time.Millisecond
	je, took := e.limited(jsvm.Call{Element: "services.Re", Function: "regex", Limits: jsvm.Limits{Timeout: timeout}})
	require.Equal(e.t, jsvm.CodeTimeout, je.Code, je.Message)
	require.Less(e.t, took, timeout+e.f.Slack, "stuck code ran %s past its deadline", took-timeout)
	e.t.Logf("stuck regex ended %s after its deadline", took-timeout)
}

// Recursion past the call-depth cap ends the execution with stack_overflow, whether it is in
// one function, between two elements, through app.getElement of the element itself, or inside a
// built-in converting a deeply nested value; catch cannot stop it. Limits.MaxCallDepth sets the
// cap, one budget for all the elements an execution goes through.
func testStackOverflow(e *env) {
	e.open(nil, app(pingElement,
		js("services.A", `
			exports.recursion = function f() { try { return f() } catch (e) { return "caught" } };
			exports.ping = n => app.getElement("services.B").pong(n + 1);
			exports.deepInB = () => { try { return app.getElement("services.B").deep() } catch (e) { return "caught" } };
			exports.nestedToString = n => { let a = []; for (let i = 0; i < n; i++) a = [a]; return String(a).length };
			exports.depth = n => { function r(k) { return k ? r(k - 1) : "bottom" } return r(n) };
			exports.selfRec = n => app.getElement("services.A").selfRec(n + 1);
			exports.split = (a, b) => { function r(k) { return k ? r(k - 1) : app.getElement("services.B").r(b) } return r(a) };`),
		js("services.B", `exports.pong = n => app.getElement("services.A").ping(n + 1);
			exports.deep = function d() { return d() };
			exports.r = function r(k) { return k ? r(k - 1) : "bottom" };`),
	))
	for _, c := range []jsvm.Call{
		{Element: "services.A", Function: "recursion"},
		{Element: "services.A", Function: "ping", Args: []any{0}},
		{Element: "services.A", Function: "deepInB"},
		{Element: "services.A", Function: "selfRec", Args: []any{0}},
		// The depth is one budget for the execution: each element's frames count toward it.
		{Element: "services.A", Function: "split", Args: []any{40, 40}, Limits: jsvm.Limits{MaxCallDepth: 60}},
		// 1e5 nested arrays take ~56 MB in goja; converting them recurses past the cap.
		{Element: "services.A", Function: "nestedToString", Args: []any{100_000}, Limits: jsvm.Limits{MemoryBytes: 2 * DefaultMemoryBytes}},
		{Element: "services.A", Function: "depth", Args: []any{200}, Limits: jsvm.Limits{MaxCallDepth: 50}},
	} {
		je, _ := e.limited(c)
		require.Equal(e.t, jsvm.CodeStackOverflow, je.Code, "%s: %v", c.Function, je)
	}
	require.Equal(e.t, "bottom", e.value("services.A", "depth", 20))
	res, err := e.exec(jsvm.Call{Element: "services.A", Function: "split", Args: []any{10, 10}, Limits: jsvm.Limits{MaxCallDepth: 60}})
	require.NoError(e.t, err, "20 frames in two elements are within a depth of 60")
	require.Equal(e.t, "bottom", res.Value)
	res, err = e.exec(jsvm.Call{Element: "services.A", Function: "depth", Args: []any{500}})
	require.NoError(e.t, err, "500 frames are within the default depth")
	require.Equal(e.t, "bottom", res.Value)
}

// Allocations that the executor can see are too big end with memory_limit, and cannot be
// caught: a huge repeat, ArrayBuffer, fill, Array.from, split of a huge string, typed arrays
// in a loop. The cap is the call's MemoryBytes when it sets one.
func testMemoryLimit(e *env) {
	e.open(nil, app(pingElement, js("services.M", `
		const guard = f => { try { return f() } catch (e) { return "caught " + e.code } };
		exports.repeatHuge = () => guard(() => "x".repeat(Math.pow(2, 29)).length);
		exports.arrayBuffer = () => guard(() => new ArrayBuffer(Math.pow(2, 31)).byteLength);
		exports.joinHuge = () => guard(() => new Array(5e7).fill(0).join("xxxxxxxxxx").length);
		exports.from = () => guard(() => Array.from({length: 1e8}).length);
		exports.splitHuge = () => guard(() => "a".repeat(1e8).split("").length);
		exports.typedArrays = () => guard(() => { for (;;) new Float64Array(1e7) });
		exports.repeat = n => guard(() => "x".repeat(n).length);`)))
	for _, fn := range []string{"repeatHuge", "arrayBuffer", "joinHuge", "from", "splitHuge", "typedArrays"} {
		je, took := e.limited(jsvm.Call{Element: "services.M", Function: fn})
		require.Equal(e.t, jsvm.CodeMemoryLimit, je.Code, "%s: %v", fn, je)
		e.t.Logf("%-12s memory_limit after %s", fn, took.Round(time.Millisecond))
	}
	const n = 24 << 20
	require.Equal(e.t, int64(n), e.value("services.M", "repeat", n), "24 MiB is within the default cap")
	je, _ := e.limited(jsvm.Call{Element: "services.M", Function: "repeat", Args: []any{n}, Limits: jsvm.Limits{MemoryBytes: 16 << 20}})
	require.Equal(e.t, jsvm.CodeMemoryLimit, je.Code, "the call's own cap applies: %v", je)
}

// Where the memory cap is hard, allocations no guard sees coming also end with memory_limit:
// string doubling, pushes in a loop, joins of moderate arrays in a loop, a huge nested array.
func testMemoryHog(e *env) {
	if !e.f.MemoryHardCap {
		e.t.Skip("the executor's memory cap is not hard (Features.MemoryHardCap): nothing would stop these hogs")
	}
	e.open(nil, app(pingElement, js("services.Hog", `
		exports.doubling = function () { let s = "x"; for (;;) s += s; };
		exports.push = function () { const a = []; for (;;) a.push({n: a.length, s: "item " + a.length}); };
		exports.joinLoop = function () { var a = []; for (;;) a.push(new Array(1e6).fill(1).join(",")); };
		exports.smallTyped = function () { const keep = []; for (;;) keep.push(new Float64Array(1e5)); };
		exports.nested = function (n) { let a = []; for (let i = 0; i < n; i++) a = [a]; return String(a).length; };`)))
	for _, c := range []jsvm.Call{
		{Element: "services.Hog", Function: "doubling"},
		{Element: "services.Hog", Function: "push"},
		// Each turn takes ~70 ms (much more under -race): the smallest cap keeps the case short.
		{Element: "services.Hog", Function: "joinLoop", Limits: jsvm.Limits{MemoryBytes: 16 << 20}},
		{Element: "services.Hog", Function: "smallTyped"},
		// 1e6 nested arrays take about 560 MB in goja: past the cap before toString runs.
		{Element: "services.Hog", Function: "nested", Args: []any{1_000_000}},
	} {
		je, took := e.limited(c)
		require.Equal(e.t, jsvm.CodeMemoryLimit, je.Code, "%s: %v", c.Function, je)
		e.t.Logf("%-10s memory_limit after %s: %s", c.Function, took.Round(time.Millisecond), je.Message)
	}
}
