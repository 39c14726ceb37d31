package jsvmtest

import (
	"context"
	"strings"
	"sync/atomic"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/jsvm"
)

// The size caps of Limits bound what an execution hands out of the sandbox, each enforced
// before the value is copied out (in the worker, for the isolated executor): a result past
// MaxResultBytes ends the execution with result_too_large and no value; an error's message,
// stack and details are cut to MaxErrorBytes with a marker naming the cap; console output past
// MaxConsoleBytes is cut with a last warn entry saying so; a value nested deeper than
// MaxValueDepth, or a host call's arguments larger than MaxMessageBytes, are refused with an
// invalid_argument error (catchable where JS makes the crossing; a result's ends the execution
// as js_error with that code, as a result with a cycle does). A call's own Limits override the executor's.
func testSizeCaps(e *env) {
	var hostCalls atomic.Int64
	host := jsvm.HostCallerFunc(func(_ context.Context, c jsvm.HostCall) (any, error) {
		hostCalls.Add(1)
		return "ok", nil
	})
	e.open(host, app(pingElement, hostElement("services.Host", "put"), js("services.Caps", `
		const host = app.getElement("services.Host");
		exports.big = n => "x".repeat(n);
		exports.growArg = (o, n) => { o.s = "x".repeat(n); return 1 };
		exports.many = n => { const a = []; for (let i = 0; i < n; i++) a.push({i, s: "abcdefgh"}); return a };
		exports.throwBig = n => { throw new Error("m".repeat(n)) };
		exports.throwDetails = n => { const e = new Error("small"); e.code = "my_code"; e.blob = "d".repeat(n); throw e };
		exports.failBig = (n, ctx) => { ctx.fail("f".repeat(n)); return 1 };
		exports.flood = n => { for (let i = 0; i < n; i++) console.log("line " + i + " " + "y".repeat(100)); return "done" };
		exports.deep = n => { let o = 1; for (let i = 0; i < n; i++) o = [o]; return o };
		exports.putBig = n => { try { return host.put("z".repeat(n)) } catch (e) { return "caught " + e.code } };
		exports.putDeep = n => { let o = 1; for (let i = 0; i < n; i++) o = {o}; try { return host.put(o) } catch (e) { return "caught " + e.code + ": " + e.message } };`)))

	// The result cap: 1 MiB by default; a 4 MiB result ends as result_too_large, the pool goes on.
	je, _ := e.limited(jsvm.Call{Element: "services.Caps", Function: "big", Args: []any{4 << 20}})
	require.Equal(e.t, jsvm.CodeResultTooLarge, je.Code, "%v", je)
	require.Contains(e.t, je.Message, "1048576")
	require.Less(e.t, len(je.Message)+len(je.Stack), 4096)
	require.Equal(e.t, int64(512<<10), int64(len(e.value("services.Caps", "big", 512<<10).(string))), "half the cap is a result")
	_, err := e.exec(jsvm.Call{Element: "services.Caps", Function: "many", Args: []any{20000}, Limits: jsvm.Limits{MaxResultBytes: 64 << 10}})
	require.Equal(e.t, jsvm.CodeResultTooLarge, e.asError(err, "many items over a call's own cap").Code)

	// Arguments handed back (Call.ReturnArgs, a hook's data) are held to the message cap.
	res, err := e.exec(jsvm.Call{Element: "services.Caps", Function: "growArg", Args: []any{map[string]any{}, 2 << 20}, ReturnArgs: true})
	require.NoError(e.t, err, "2 MiB of data is within the 8 MiB message cap, past the result cap")
	require.Len(e.t, res.Args[0].(map[string]any)["s"], 2<<20)
	_, err = e.exec(jsvm.Call{Element: "services.Caps", Function: "growArg", Args: []any{map[string]any{}, 2 << 20}, ReturnArgs: true,
		Limits: jsvm.Limits{MaxMessageBytes: 1 << 20}})
	je = e.asError(err, "2 MiB of data over a 1 MiB message cap")
	require.Equal(e.t, jsvm.CodeResultTooLarge, je.Code)
	require.Contains(e.t, je.Message, "--max-message")

	// The error cap: message, stack and details are cut, with a marker naming the cap.
	const errCap = 4 << 10
	_, err = e.exec(jsvm.Call{Element: "services.Caps", Function: "throwBig", Args: []any{8 << 20}, Limits: jsvm.Limits{MaxErrorBytes: errCap}})
	je = e.asError(err, "a thrown 8 MiB message")
	require.Equal(e.t, jsvm.CodeJSError, je.Code)
	require.Less(e.t, len(je.Message), errCap+200)
	require.True(e.t, strings.HasPrefix(je.Message, "mmmm"), je.Message[:40])
	require.Contains(e.t, je.Message, "truncated")
	require.Contains(e.t, je.Message, "--max-error")
	_, err = e.exec(jsvm.Call{Element: "services.Caps", Function: "throwDetails", Args: []any{1 << 20}, Limits: jsvm.Limits{MaxErrorBytes: errCap}})
	je = e.asError(err, "an error with 1 MiB of details")
	require.Equal(e.t, "my_code", je.Details["code"], "the code survives the cut")
	require.Contains(e.t, je.Details["truncated"], "--max-error")
	require.Nil(e.t, je.Details["blob"])
	res, err = e.exec(jsvm.Call{Element: "services.Caps", Function: "failBig", Args: []any{1 << 20}, Ctx: &jsvm.HandlerContext{}, Limits: jsvm.Limits{MaxErrorBytes: errCap}})
	require.NoError(e.t, err)
	require.NotNil(e.t, res.Failed)
	require.Less(e.t, len(*res.Failed), errCap+200)
	require.Contains(e.t, *res.Failed, "truncated")

	// The console cap: entries stop at it, the last one says so.
	const consoleCap = 16 << 10
	res, err = e.exec(jsvm.Call{Element: "services.Caps", Function: "flood", Args: []any{100000}, Limits: jsvm.Limits{MaxConsoleBytes: consoleCap}})
	require.NoError(e.t, err)
	require.Equal(e.t, "done", res.Value)
	total := 0
	for _, l := range res.Logs {
		total += len(l.Message) + 32
	}
	require.LessOrEqual(e.t, total, consoleCap+300)
	last := res.Logs[len(res.Logs)-1]
	require.Equal(e.t, "warn", last.Level)
	require.Contains(e.t, last.Message, "--max-console")
	require.Greater(e.t, len(res.Logs), 10)

	// The nesting cap: 64 by default, for results and host-call arguments alike.
	require.NotNil(e.t, e.value("services.Caps", "deep", 60))
	je = e.fail("services.Caps", "deep", 100)
	require.Equal(e.t, jsvm.CodeJSError, je.Code, "%v", je)
	require.Equal(e.t, jsvm.CodeInvalidArg, je.Details["code"], "as for a result with a cycle")
	require.Contains(e.t, je.Message, "--max-depth")
	got := e.value("services.Caps", "putDeep", 100).(string)
	require.True(e.t, strings.HasPrefix(got, "caught invalid_argument"), got)
	require.Equal(e.t, "ok", e.value("services.Caps", "putDeep", 10))
	var deepArg any = "x"
	for range 9000 {
		deepArg = []any{deepArg}
	}
	_, err = e.exec(jsvm.Call{Element: "services.Caps", Function: "big", Args: []any{deepArg}})
	je = e.asError(err, "arguments nested 9,000 deep")
	require.Equal(e.t, jsvm.CodeInvalidArg, je.Code, "refused before the call: %v", je)
	require.Contains(e.t, je.Message, "--max-depth")

	// The message cap: a host call's arguments larger than it are refused before the copy.
	res, err = e.exec(jsvm.Call{Element: "services.Caps", Function: "putBig", Args: []any{1 << 20}, Limits: jsvm.Limits{MaxMessageBytes: 64 << 10}})
	require.NoError(e.t, err)
	require.Equal(e.t, "caught invalid_argument", res.Value)
	calls := hostCalls.Load()
	require.Equal(e.t, "ok", e.value("services.Caps", "putBig", 1<<20), "1 MiB is within the default 8 MiB")
	require.Equal(e.t, calls+1, hostCalls.Load())
	e.ping()
}
