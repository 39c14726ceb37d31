package isolate

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/jsvm"
)

// The tests in this file and the benchmarks run real jsvm.VMs in real worker processes (this
// test binary re-executed with TRELLIS_ISOLATE_WORKER=1, see TestMain). What every executor
// promises, hostile code ending only its own execution included, is checked by the jsvmtest
// conformance suite (conformance_test.go); what is left here is the pool's own.

// hostileJS holds a trivial function and the memory blow-ups of docs/sandbox.md.
const hostileJS = `
exports.add = function (a, b) { return a + b; };
exports.joinLoop = function () { var a = []; for (;;) a.push(new Array(1e6).fill(1).join(",")); };
exports.repeatHuge = function () { return "x".repeat(Math.pow(2, 29)).length; };
exports.doubling = function () { let s = "x"; for (;;) s += s; };
exports.joinHuge = function () { return new Array(5e7).fill(0).join("xxxxxxxxxx").length; };
exports.splitHuge = function () { return "a".repeat(1e8).split("").length; };
exports.typedArrays = function () { for (;;) new Float64Array(1e7); };
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
