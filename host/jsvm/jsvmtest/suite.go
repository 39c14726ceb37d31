// Package jsvmtest is the one conformance suite every jsvm.Executor runs, so the in-process VM
// (jsvm.VM) and the isolated worker pool (isolate.Pool) keep the same promises: the Executor,
// Call, HostCaller and Limits doc comments and docs/sandbox.md. It loads Sources and calls
// functions with positional arguments; checks values crossing both ways (integers stay int64
// past 2^53, floats, strings, nested objects and arrays, null and undefined, Date ⇄ time.Time,
// what does not cross), thrown errors as *jsvm.Error with their code, message and stack, syntax
// errors at Load, ctx.fail, console logs, require of the element's own files and commons/ (and
// nothing else), isolation between elements, the limits (timeout, stack_overflow, memory_limit),
// each ending only its own execution, host calls and their errors, reloads, Close, and
// concurrent use.
//
// It is a non-test package so each executor's own test calls Run with a constructor and the
// Features it guarantees. It owns no executor and must not import one (isolate imports it from
// its tests; jsvm's tests import it from the external test package jsvm_test).
//
// Subtests run in parallel, each on an executor of its own. Waits are bounded by
// Features.Timeout; the checks that an execution ended near its deadline allow Features.Slack,
// generous enough for a loaded machine running the race detector.
package jsvmtest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host/jsvm"
)

// Options is what the suite asks of the executor a subtest gets.
type Options struct {
	// Host receives the calls JavaScript makes to KindHost elements and app.getBuiltin. Nil means
	// no host: such calls must fail with code "unavailable".
	Host jsvm.HostCaller
	// Limits are the executor's defaults for executions (its Options.Limits). The suite always
	// sets Timeout and MemoryBytes (DefaultMemoryBytes).
	Limits jsvm.Limits
}

// DefaultMemoryBytes is the memory cap the suite gives every executor: room enough for the
// suite's ordinary code (a worker of the isolated executor needs at least 16 MiB), small enough
// that the VM's guards refuse the suite's huge allocations and that hogs trip a hard cap fast.
const DefaultMemoryBytes = 64 << 20

// Features says what an executor guarantees where executors may differ (docs/sandbox.md, "What
// the in-process VM cannot stop").
type Features struct {
	// MemoryHardCap: Limits.MemoryBytes caps whatever an execution allocates, not only the
	// single requests the VM's guards can see coming (repeat, join, fill, ArrayBuffer, typed
	// arrays...). With it the suite also runs hogs that allocate moderately in a loop (string
	// doubling, pushes, joins in a loop, a huge nested array) and expects memory_limit; without it
	// it must not run them, since nothing would stop them before the machine runs out of memory.
	MemoryHardCap bool
	// StopsStuckBuiltins: an execution's deadline ends it even while it is inside a built-in
	// that never looks at goja's interrupt (a backtracking regular expression). Without it such
	// code runs to its end, past any deadline.
	StopsStuckBuiltins bool
	// CloseEndsRunning: Close ends the executions still running, which fail. Without it they
	// run to their end on the version they started with, and only later calls fail.
	CloseEndsRunning bool
	// KnownBugs names subtests the executor is known to fail, each with the bug (reported, not
	// yet fixed); they are skipped with that reason, so the bug stays visible in the test output.
	KnownBugs map[string]string
	// Timeout bounds every wait for something that must happen [30s].
	Timeout time.Duration
	// Slack is how far past its deadline an execution that broke it may end [1s]. The design
	// target is 50 ms; the bound only catches a limit that is not enforced at all.
	Slack time.Duration
}

func (f Features) withDefaults() Features {
	if f.Timeout <= 0 {
		f.Timeout = 30 * time.Second
	}
	if f.Slack <= 0 {
		f.Slack = time.Second
	}
	return f
}

// NewExecutor makes an executor for one subtest, with nothing loaded. It must be able to run at
// least two executions at once (the suite checks that a limit ends only its own execution while
// another runs). The suite closes it at the end of the subtest; Close must be safe twice.
type NewExecutor func(t *testing.T, o Options) jsvm.Executor

// Run runs the conformance suite. Subtests run in parallel.
func Run(t *testing.T, newExecutor NewExecutor, f Features) {
	t.Helper()
	s := &suite{newExecutor: newExecutor, f: f.withDefaults()}
	names := map[string]bool{}
	tests := []struct {
		name string
		fn   func(e *env)
	}{
		{"CallWithPositionalArgs", testCall},
		{"AsyncFunctions", testAsync},
		{"NotFound", testNotFound},
		{"AppNameAndEnv", testAppNameAndEnv},
		{"ValuesRoundTrip", testValuesRoundTrip},
		{"LargeIntegers", testLargeIntegers},
		{"GoValuesArrivePlain", testGoValuesArrivePlain},
		{"Dates", testDates},
		{"ValuesThatDoNotCross", testValuesThatDoNotCross},
		{"ProtoKeysStayData", testProtoKeysStayData},
		{"ThrownError", testThrownError},
		{"ErrorInCalledElement", testErrorInCalledElement},
		{"ThrownNonErrors", testThrownNonErrors},
		{"ModuleTopLevelError", testModuleTopLevelError},
		{"SyntaxErrorAtLoad", testSyntaxErrorAtLoad},
		{"HandlerContext", testHandlerContext},
		{"ReturnArgs", testReturnArgs},
		{"Around", testAround},
		{"ConsoleLogs", testConsoleLogs},
		{"Require", testRequire},
		{"NoHostObjects", testNoHostObjects},
		{"IsolationBetweenElements", testIsolationBetweenElements},
		{"Timeout", testTimeout},
		{"ElementTimeout", testElementTimeout},
		{"ContextCancelAndDeadline", testContextCancelAndDeadline},
		{"CancelDuringHostCall", testCancelDuringHostCall},
		{"StuckBuiltinTimeout", testStuckBuiltin},
		{"StackOverflow", testStackOverflow},
		{"MemoryLimit", testMemoryLimit},
		{"MemoryHog", testMemoryHog},
		{"HostileCompile", testHostileCompile},
		{"HostileValuesAtDeadline", testHostileValuesAtDeadline},
		{"LoadRefusesHostileSource", testLoadRefusesHostileSource},
		{"SizeCaps", testSizeCaps},
		{"HostCalls", testHostCalls},
		{"HostValues", testHostValues},
		{"ExecuteHostElement", testExecuteHostElement},
		{"HostElementDeadline", testHostElementDeadline},
		{"HostErrors", testHostErrors},
		{"HostErrorDetails", testHostErrorDetails},
		{"HostPanic", testHostPanic},
		{"NoHost", testNoHost},
		{"Reload", testReload},
		{"ReloadWhileRunning", testReloadWhileRunning},
		{"ExecuteBeforeLoad", testExecuteBeforeLoad},
		{"Close", testClose},
		{"ConcurrentExecutions", testConcurrentExecutions},
		{"ConcurrentLoadAndExecute", testConcurrentLoadAndExecute},
	}
	for _, tc := range tests {
		names[tc.name] = true
	}
	for name := range s.f.KnownBugs {
		require.True(t, names[name], "Features.KnownBugs names %q, which is no subtest", name)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if bug, ok := s.f.KnownBugs[tc.name]; ok {
				t.Skip("known bug: " + bug)
			}
			t.Parallel()
			tc.fn(&env{t: t, s: s, f: s.f})
		})
	}
}

type suite struct {
	newExecutor NewExecutor
	f           Features
}

// env is one subtest: its executor (made by open) and helpers.
type env struct {
	t  *testing.T
	s  *suite
	f  Features
	ex jsvm.Executor
}

// open makes the subtest's executor with host (nil for none) and loads src (unless nil).
func (e *env) open(host jsvm.HostCaller, src *jsvm.Source) jsvm.Executor {
	e.t.Helper()
	ex := e.s.newExecutor(e.t, Options{Host: host, Limits: jsvm.Limits{Timeout: e.f.Timeout, MemoryBytes: DefaultMemoryBytes}})
	require.NotNil(e.t, ex, "newExecutor returned nil")
	e.t.Cleanup(func() { _ = ex.Close() })
	e.ex = ex
	if src != nil {
		require.NoError(e.t, ex.Load(src), "Load")
	}
	return ex
}

// ctx is a context bounded by the suite's Timeout.
func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), e.f.Timeout)
	e.t.Cleanup(cancel)
	return ctx
}

// exec runs one call.
func (e *env) exec(c jsvm.Call) (jsvm.Result, error) {
	e.t.Helper()
	if c.Args == nil {
		c.Args = []any{}
	}
	return e.ex.Execute(e.ctx(), c)
}

// run calls fn of element with args.
func (e *env) run(element, fn string, args ...any) (jsvm.Result, error) {
	e.t.Helper()
	return e.exec(jsvm.Call{Element: element, Function: fn, Args: args})
}

// value runs a call that must succeed and returns its value.
func (e *env) value(element, fn string, args ...any) any {
	e.t.Helper()
	res, err := e.run(element, fn, args...)
	require.NoError(e.t, err, "%s.%s", element, fn)
	return res.Value
}

// fail runs a call that must fail and returns its *jsvm.Error.
func (e *env) fail(element, fn string, args ...any) *jsvm.Error {
	e.t.Helper()
	_, err := e.run(element, fn, args...)
	return e.asError(err, element+"."+fn)
}

// asError requires err to be (or wrap) a *jsvm.Error and returns it.
func (e *env) asError(err error, what string) *jsvm.Error {
	e.t.Helper()
	require.Error(e.t, err, "%s must fail", what)
	var je *jsvm.Error
	require.True(e.t, errors.As(err, &je), "%s: want a *jsvm.Error, got %T: %v", what, err, err)
	return je
}

// ping is the element every limit test loads beside its hostile code (see limited).
var pingElement = js("services.Ping", `exports.ping = n => ["pong", n]`)

// ping runs a trivial call of services.Ping, which must succeed.
func (e *env) ping() {
	e.t.Helper()
	require.Equal(e.t, []any{"pong", int64(1)}, e.value("services.Ping", "ping", 1), "a trivial execution beside or after one that broke a limit")
}

// limited runs c, which must break a limit, while trivial calls run beside it, and requires
// that only c failed: the other calls succeed during and after it. It returns c's error and how
// long c took. The loaded Source must include pingElement.
func (e *env) limited(c jsvm.Call) (*jsvm.Error, time.Duration) {
	e.t.Helper()
	type out struct {
		err  error
		took time.Duration
	}
	done := make(chan out, 1)
	ctx := e.ctx()
	go func() {
		start := time.Now()
		_, err := e.ex.Execute(ctx, c)
		done <- out{err, time.Since(start)}
	}()
	e.ping()
	var o out
	select {
	case o = <-done:
	case <-time.After(e.f.Timeout + e.f.Slack):
		e.t.Fatalf("%s.%s did not end within %s", c.Element, c.Function, e.f.Timeout+e.f.Slack)
	}
	for range 3 {
		e.ping()
	}
	return e.asError(o.err, c.Element+"."+c.Function), o.took
}

// js is a KindJS element whose entry index.js is code, in directory "services/X" for
// "services.X".
func js(fullName, code string) *jsvm.Element {
	return jsFiles(fullName, map[string]string{"index.js": code})
}

// jsFiles is a KindJS element with the given files (index.js is the entry).
func jsFiles(fullName string, files map[string]string) *jsvm.Element {
	return &jsvm.Element{FullName: fullName, Kind: jsvm.KindJS, Dir: dirOf(fullName), Entry: "index.js", Files: files}
}

// hostElement is a KindHost element with the given methods.
func hostElement(fullName string, methods ...string) *jsvm.Element {
	return &jsvm.Element{FullName: fullName, Kind: jsvm.KindHost, Dir: dirOf(fullName), Methods: methods}
}

func dirOf(fullName string) string { return strings.ReplaceAll(fullName, ".", "/") }

// app is a Source named "testapp" with env REGION=eu and the given elements.
func app(elements ...*jsvm.Element) *jsvm.Source {
	src := &jsvm.Source{AppName: "testapp", Env: map[string]string{"REGION": "eu"}, Elements: map[string]*jsvm.Element{}}
	for _, el := range elements {
		src.Elements[el.FullName] = el
	}
	return src
}

// recordingHost records every HostCall and answers with the method name; it fails a call whose
// ctx carries no deadline (host calls must end when their execution does).
type recordingHost struct {
	mu    sync.Mutex
	calls []jsvm.HostCall
}

func (h *recordingHost) CallHost(ctx context.Context, c jsvm.HostCall) (any, error) {
	if _, ok := ctx.Deadline(); !ok {
		return nil, fmt.Errorf("host call %s.%s without the execution's deadline in its ctx", c.FullName, c.Method)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, c)
	return map[string]any{"method": c.Method, "builtin": c.Builtin}, nil
}

func (h *recordingHost) recorded() []jsvm.HostCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]jsvm.HostCall(nil), h.calls...)
}

// gate is a host that tells entered of every call to its "enter", "wait" and "hold" methods;
// "wait" then blocks until the gate opens (or the execution ends, when it returns the ctx's
// error), "hold" too but answers a value even when the execution has ended, as a host that
// ignores its ctx's error would. It lets a test know that an execution has started, or hold one
// in the middle.
type gate struct {
	entered chan string
	release chan struct{}
	once    sync.Once
}

func newGate() *gate { return &gate{entered: make(chan string, 64), release: make(chan struct{})} }

func (g *gate) CallHost(ctx context.Context, c jsvm.HostCall) (any, error) {
	if c.Method != "wait" && c.Method != "enter" && c.Method != "hold" {
		return c.Method, nil
	}
	g.entered <- c.Caller
	if c.Method == "enter" {
		return nil, nil
	}
	select {
	case <-g.release:
		return nil, nil
	case <-ctx.Done():
		if c.Method == "hold" {
			return "held", nil
		}
		return nil, ctx.Err()
	}
}

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

// waitEntered waits until an execution is held by the gate.
func (e *env) waitEntered(g *gate) {
	e.t.Helper()
	select {
	case <-g.entered:
	case <-time.After(e.f.Timeout):
		e.t.Fatalf("no execution reached the gate within %s", e.f.Timeout)
	}
}
