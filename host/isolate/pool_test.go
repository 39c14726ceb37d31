package isolate

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/jsvm"
)

// The tests in this file run real jsvm.VMs in real worker processes (this test binary re-executed
// with TRELLIS_ISOLATE_WORKER=1, see TestMain).

// hostileJS holds one exported function per hostile case of docs/sandbox.md, plus helpers.
const hostileJS = `
exports.add = function (a, b) { return a + b; };
exports.spin = function () { for (;;) {} };
exports.joinLoop = function () { var a = []; for (;;) a.push(new Array(1e6).fill(1).join(",")); };
exports.repeatHuge = function () { return "x".repeat(Math.pow(2, 29)).length; };
exports.doubling = function () { let s = "x"; for (;;) s += s; };
exports.joinHuge = function () { return new Array(5e7).fill(0).join("xxxxxxxxxx").length; };
exports.splitHuge = function () { return "a".repeat(1e8).split("").length; };
exports.typedArrays = function () { for (;;) new Float64Array(1e7); };
exports.arrayBuffer = function () { return new ArrayBuffer(Math.pow(2, 31)).byteLength; };
exports.regex = function () { return /^(a+)+(?=b)$/.test("a".repeat(40) + "c"); };
exports.recursion = function () { function f(n) { return f(n + 1) + 1; } return f(0); };
exports.nestedToString = function (n) { let a = []; for (let i = 0; i < n; i++) a = [a]; return String(a).length; };
exports.callHost = function (x) { return app.getElement("services.Echo").echo(x, {n: 2}); };
exports.hostError = function () {
  try { app.getElement("services.Echo").echo("fail"); } catch (e) { return {code: e.code, message: e.message}; }
};
exports.returnEmpty = function () { return {list: [], obj: {}, when: new Date(0)}; };
`

// hostileSource is the app the real-VM tests load.
func hostileSource(appName string) *jsvm.Source {
	return &jsvm.Source{AppName: appName, Elements: map[string]*jsvm.Element{
		"services.Hostile": {FullName: "services.Hostile", Kind: jsvm.KindJS, Dir: "services/Hostile", Entry: "index.js",
			Files: map[string]string{"index.js": hostileJS}},
		"services.Echo": {FullName: "services.Echo", Kind: jsvm.KindHost, Methods: []string{"echo"}},
	}}
}

// echoHost answers every host call with what it was given.
var echoHost = jsvm.HostCallerFunc(func(ctx context.Context, call jsvm.HostCall) (any, error) {
	if len(call.Args) > 0 && call.Args[0] == "fail" {
		return nil, codedErr{"not_found", "no such row"}
	}
	return map[string]any{"element": call.FullName, "method": call.Method, "args": call.Args, "caller": call.Caller}, nil
})

func newVMPool(t testing.TB, workers int) *Pool {
	t.Helper()
	p, err := New(Options{Workers: workers, Host: echoHost, Limits: jsvm.Limits{Timeout: 5 * time.Second, MemoryBytes: 64 << 20}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	require.NoError(t, p.Load(hostileSource("app1")))
	return p
}

func call(fn string, args ...any) jsvm.Call {
	if args == nil {
		args = []any{}
	}
	return jsvm.Call{Element: "services.Hostile", Function: fn, Args: args}
}

// trivial runs a trivial function and requires it to succeed.
func trivial(t testing.TB, p *Pool) {
	t.Helper()
	res, err := p.Execute(context.Background(), call("add", 2, 3))
	require.NoError(t, err)
	require.EqualValues(t, 5, res.Value)
}

// runHostile runs c while trivial executions run on another worker, and requires that only c
// failed: the trivial ones succeed during and after it.
func runHostile(t *testing.T, p *Pool, c jsvm.Call) (*jsvm.Error, time.Duration) {
	t.Helper()
	type out struct {
		err  error
		took time.Duration
	}
	done := make(chan out, 1)
	go func() {
		start := time.Now()
		_, err := p.Execute(context.Background(), c)
		done <- out{err, time.Since(start)}
	}()
	trivial(t, p)
	o := <-done
	for range 3 {
		trivial(t, p)
	}
	require.Error(t, o.err, "%s must fail", c.Function)
	je, ok := o.err.(*jsvm.Error)
	require.True(t, ok, "%T: %v", o.err, o.err)
	return je, o.took
}

func TestHostileCodeEndsOnlyItsExecution(t *testing.T) {
	t.Parallel()
	p := newVMPool(t, 2)
	for _, tc := range []struct {
		fn, code string
		limits   jsvm.Limits
		args     []any
	}{
		// Each turn takes ~70 ms (much more under -race): the smallest cap keeps the case short.
		{"joinLoop", jsvm.CodeMemoryLimit, jsvm.Limits{MemoryBytes: minMemoryBytes, Timeout: 30 * time.Second}, nil},
		{"repeatHuge", jsvm.CodeMemoryLimit, jsvm.Limits{}, nil},
		{"doubling", jsvm.CodeMemoryLimit, jsvm.Limits{}, nil},
		{"joinHuge", jsvm.CodeMemoryLimit, jsvm.Limits{}, nil},
		{"splitHuge", jsvm.CodeMemoryLimit, jsvm.Limits{}, nil},
		{"typedArrays", jsvm.CodeMemoryLimit, jsvm.Limits{}, nil},
		{"arrayBuffer", jsvm.CodeMemoryLimit, jsvm.Limits{}, nil},
		{"regex", jsvm.CodeTimeout, jsvm.Limits{Timeout: 300 * time.Millisecond}, nil},
		{"recursion", jsvm.CodeStackOverflow, jsvm.Limits{}, nil},
		// 1e6 nested arrays take about 560 MB in goja: past a 64 MiB cap before toString runs.
		{"nestedToString", jsvm.CodeMemoryLimit, jsvm.Limits{}, []any{1e6}},
		// 1e5 take 56 MB; converting them recurses past the call-depth cap.
		{"nestedToString", jsvm.CodeStackOverflow, jsvm.Limits{MemoryBytes: 128 << 20}, []any{1e5}},
	} {
		c := call(tc.fn, tc.args...)
		c.Limits = tc.limits
		je, took := runHostile(t, p, c)
		require.Equal(t, tc.code, je.Code, "%s: %s", tc.fn, je.Message)
		t.Logf("%-15s %-15s after %-12v %s", tc.fn, je.Code, took.Round(time.Millisecond), je.Message)
	}
}

func TestBusyLoopEndsAtItsDeadline(t *testing.T) {
	t.Parallel()
	p := newVMPool(t, 2)
	const timeout = 200 * time.Millisecond
	c := call("spin")
	c.Limits.Timeout = timeout
	je, took := runHostile(t, p, c)
	require.Equal(t, jsvm.CodeTimeout, je.Code, je.Message)
	require.GreaterOrEqual(t, took, timeout)
	// The design target is 50 ms past the deadline; the bound is generous for a loaded machine.
	require.Less(t, took, timeout+400*time.Millisecond)
	t.Logf("for(;;){} ended %v after its deadline", took-timeout)
}

func TestHostCallsFromAWorkerRoundTrip(t *testing.T) {
	t.Parallel()
	p := newVMPool(t, 1)
	res, err := p.Execute(context.Background(), call("callHost", "hello"))
	require.NoError(t, err)
	got := res.Value.(map[string]any)
	require.Equal(t, "services.Echo", got["element"])
	require.Equal(t, "echo", got["method"])
	require.Equal(t, "services.Hostile", got["caller"])
	require.Len(t, got["args"], 2)
	require.Equal(t, "hello", got["args"].([]any)[0])
	require.EqualValues(t, 2, got["args"].([]any)[1].(map[string]any)["n"])

	res, err = p.Execute(context.Background(), call("hostError"))
	require.NoError(t, err)
	require.Equal(t, "not_found", res.Value.(map[string]any)["code"], "a host error is thrown into JS with its code")
	require.Contains(t, res.Value.(map[string]any)["message"], "no such row")

	res, err = p.Execute(context.Background(), call("returnEmpty"))
	require.NoError(t, err)
	require.Equal(t, map[string]any{"list": []any{}, "obj": map[string]any{}, "when": time.UnixMilli(0)}, normalizeTimes(res.Value))
}

// normalizeTimes puts times in UTC so that they compare equal whatever zone they came in.
func normalizeTimes(v any) any {
	switch x := v.(type) {
	case time.Time:
		return time.UnixMilli(x.UnixMilli())
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeTimes(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalizeTimes(e)
		}
	}
	return v
}

func TestLoadAppliesToNewExecutionsAndSyntaxErrorsAreRefused(t *testing.T) {
	t.Parallel()
	p := newVMPool(t, 2)
	src := hostileSource("app2")
	src.Elements["services.Hostile"].Files = map[string]string{"index.js": hostileJS + "\nexports.add = function (a, b) { return a * b; };"}
	require.NoError(t, p.Load(src))
	for range 4 {
		res, err := p.Execute(context.Background(), call("add", 2, 3))
		require.NoError(t, err)
		require.EqualValues(t, 6, res.Value)
	}
	bad := hostileSource("app3")
	bad.Elements["services.Hostile"].Files = map[string]string{"index.js": "exports.add = function ( {"}
	err := p.Load(bad)
	require.Error(t, err)
	require.Contains(t, err.Error(), "services/Hostile/index.js")
	for range 4 {
		res, err := p.Execute(context.Background(), call("add", 2, 3))
		require.NoError(t, err)
		require.EqualValues(t, 6, res.Value, "a refused load leaves the last good version in service")
	}
}

// TestHostMemoryStaysBoundedWhileWorkersBlowUp checks that what the workers allocate never lands
// in the host process: its RSS grows by far less than one worker's cap.
func TestHostMemoryStaysBoundedWhileWorkersBlowUp(t *testing.T) {
	// Not parallel: it measures this process's RSS.
	p := newVMPool(t, 2)
	trivial(t, p)
	runtime.GC()
	before := readSelfStats().RSS
	var wg sync.WaitGroup
	for _, fn := range []string{"joinLoop", "doubling", "typedArrays", "joinHuge", "repeatHuge", "splitHuge"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := p.Execute(context.Background(), call(fn))
			require.Error(t, err)
		}()
	}
	wg.Wait()
	trivial(t, p)
	after := readSelfStats().RSS
	grew := int64(after) - int64(before)
	t.Logf("host RSS %d MiB -> %d MiB", before>>20, after>>20)
	require.Less(t, grew, int64(32<<20), "the host grew by %d MiB while workers with a 64 MiB cap blew up", grew>>20)
}

func TestManyConcurrentExecutions(t *testing.T) {
	t.Parallel()
	p := newVMPool(t, 2)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := p.Execute(context.Background(), call("add", i, 1))
			if err == nil && fmt.Sprint(res.Value) != fmt.Sprint(i+1) {
				err = fmt.Errorf("add(%d, 1) = %v", i, res.Value)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}
