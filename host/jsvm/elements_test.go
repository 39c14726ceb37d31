package jsvm

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// recordingHost records every HostCall and answers with the method name.
type recordingHost struct {
	mu    sync.Mutex
	calls []HostCall
}

func (h *recordingHost) CallHost(ctx context.Context, c HostCall) (any, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := ctx.Deadline(); !ok {
		panic("host calls must carry the execution's deadline")
	}
	h.calls = append(h.calls, c)
	return map[string]any{"method": c.Method, "builtin": c.Builtin}, nil
}

func TestHostCallsCarryTheExecution(t *testing.T) {
	t.Parallel()
	host := &recordingHost{}
	vm := setup(t, Options{Host: host}, source(
		&Element{FullName: "events.services.EventSvc", Kind: KindHost, Methods: []string{"sendEvent", "getEventLog"}},
		index("services.S", `exports.f = function () {
			const svc = app.getElement("events.services.EventSvc");
			const a = svc.sendEvent("models.UserModel", {userId: 1});
			const b = svc.sendEvent({sender: "models.UserModel", kwargs: {userId: 1}});
			const c = app.getBuiltin("events.services.EventSvc").getEventLog("events.X", null, null, "fail");
			return [a, b, c, typeof svc.resend];
		}`),
	))
	res, err := vm.Execute(context.Background(), Call{Element: "services.S", Function: "f", RequestID: "req-1", NodeID: "node-1"})
	require.NoError(t, err)
	require.Equal(t, []any{
		map[string]any{"method": "sendEvent", "builtin": false},
		map[string]any{"method": "sendEvent", "builtin": false},
		map[string]any{"method": "getEventLog", "builtin": true},
		"undefined",
	}, res.Value)
	require.Equal(t, []HostCall{
		{FullName: "events.services.EventSvc", Method: "sendEvent", Args: []any{"models.UserModel", map[string]any{"userId": int64(1)}},
			Caller: "services.S", RequestID: "req-1", NodeID: "node-1"},
		{FullName: "events.services.EventSvc", Method: "sendEvent", Args: []any{map[string]any{"sender": "models.UserModel", "kwargs": map[string]any{"userId": int64(1)}}},
			Caller: "services.S", RequestID: "req-1", NodeID: "node-1"},
		{FullName: "events.services.EventSvc", Builtin: true, Method: "getEventLog", Args: []any{"events.X", nil, nil, "fail"},
			Caller: "services.S", RequestID: "req-1", NodeID: "node-1"},
	}, host.calls)
}

func TestNoHostMeansUnavailable(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(
		&Element{FullName: "services.TaskSvc", Kind: KindHost, Methods: []string{"getTask"}},
		index("services.S", `exports.f = () => { try { app.getElement("services.TaskSvc").getTask("t") } catch (e) { return e.code } }`),
	))
	require.Equal(t, CodeUnavailable, mustRun(t, vm, "services.S", "f"))
	e := runErr(t, vm, "services.TaskSvc", "getTask")
	require.Equal(t, CodeUnavailable, e.Code)
}

func TestExecuteOnHostElementGoesToHost(t *testing.T) {
	t.Parallel()
	host := &recordingHost{}
	vm := setup(t, Options{Host: host}, source(&Element{FullName: "services.TaskSvc", Kind: KindHost, Methods: []string{"getTask"}}))
	res, err := vm.Execute(context.Background(), Call{Element: "services.TaskSvc", Function: "getTask", Args: []any{"t1"}})
	require.NoError(t, err)
	require.Equal(t, map[string]any{"method": "getTask", "builtin": false}, res.Value)
	require.Equal(t, []any{"t1"}, host.calls[0].Args)
}

func TestDataElementIsFrozenDefinition(t *testing.T) {
	t.Parallel()
	def := map[string]any{"title": "Daily", "repeatType": "cron", "argDict": map[string]any{"list": []any{1}}}
	vm := setup(t, Options{}, source(
		&Element{FullName: "tasks.Daily", Kind: KindData, Definition: def},
		index("services.S", `"use strict"; exports.f = function () {
			const d = app.getElement("tasks.Daily");
			let threw = 0;
			for (const write of [() => { d.title = "x" }, () => { d.argDict.list.push(2) }, () => { d.argDict.n = 1 }]) {
				try { write() } catch (e) { threw++ }
			}
			return [d.title, d.argDict.list, threw, Object.isFrozen(d.argDict.list), module.element === undefined];
		}`),
		&Element{FullName: "services.WithDef", Kind: KindJS, Definition: map[string]any{"title": "Mine"},
			Files: map[string]string{"index.js": `exports.f = () => [module.element.title, Object.isFrozen(module.element)]`}},
	))
	require.Equal(t, []any{"Daily", []any{int64(1)}, int64(3), true, false}, mustRun(t, vm, "services.S", "f"))
	require.Equal(t, []any{"Mine", true}, mustRun(t, vm, "services.WithDef", "f"))
}

func TestLoaderBuildsTheRuntimeObject(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(
		&Element{FullName: "services.RestType", Kind: KindData, Definition: map[string]any{"title": "REST type"},
			Files: map[string]string{"loader.js": `
				let built = 0;
				class Client {
					constructor(def) { this.base = def.baseUrl; this.id = ++built }
					url(path) { return this.base + path }
					whoBuilt() { return [this.id, app.name] }
				}
				exports.load = (def, app) => new Client(def);`}},
		&Element{FullName: "services.GitHub", Kind: KindData, Loader: "services.RestType", Definition: map[string]any{"baseUrl": "https://api.github.com"}},
		index("services.S", `exports.f = function () {
			const gh = app.getElement("services.GitHub");
			return [gh.url("/repos"), gh.whoBuilt(), gh.base, typeof gh.constructor];
		}`),
	))
	got := mustRun(t, vm, "services.S", "f").([]any)
	require.Equal(t, "https://api.github.com/repos", got[0])
	require.Equal(t, "testapp", got[1].([]any)[1])
	require.Equal(t, "https://api.github.com", got[2])
	require.Equal(t, "function", got[3], "constructor is Object's, from the proxy's own prototype")
	// Execute addresses a loader-built element directly too.
	require.Equal(t, "https://api.github.com/x", mustRun(t, vm, "services.GitHub", "url", "/x"))
}

func TestHandlerContext(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(index("events.OnLogin", `exports.handle = function (event, ctx) {
		ctx.log("handling", event.id);
		if (event.kwargs.fail) ctx.fail("user " + event.kwargs.userId + " unknown");
		if (event.kwargs.wait) ctx.waitCallback();
		return [ctx.requestId, ctx.nodeId, ctx.attempt, ctx.deadline instanceof Date, ctx.deadline.getTime() > Date.now(), ctx.tenant];
	}`)))
	call := Call{Element: "events.OnLogin", Function: "handle", RequestID: "r1", NodeID: "n1",
		Args: []any{map[string]any{"id": "e1", "kwargs": map[string]any{"userId": 9, "fail": true}}},
		Ctx:  &HandlerContext{Attempt: 2, Extra: map[string]any{"tenant": "acme"}}}
	res, err := vm.Execute(context.Background(), call)
	require.NoError(t, err)
	require.Equal(t, []any{"r1", "n1", int64(2), true, true, "acme"}, res.Value)
	require.NotNil(t, res.Failed)
	require.Equal(t, "user 9 unknown", *res.Failed)
	require.False(t, res.WaitCallback)
	require.Equal(t, "handling e1", res.Logs[0].Message)

	call.Args = []any{map[string]any{"id": "e2", "kwargs": map[string]any{"wait": true}}}
	res, err = vm.Execute(context.Background(), call)
	require.NoError(t, err)
	require.Nil(t, res.Failed)
	require.True(t, res.WaitCallback)
}

func TestAppNameAndEnv(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(index("services.S", `exports.f = () => [app.name, app.env("REGION"), app.env("NOPE")]`)))
	require.Equal(t, []any{"testapp", "eu", nil}, mustRun(t, vm, "services.S", "f"))
}

func TestAsyncFunctionsAwaitServices(t *testing.T) {
	t.Parallel()
	host := &recordingHost{}
	vm := setup(t, Options{Host: host}, source(
		&Element{FullName: "services.H", Kind: KindHost, Methods: []string{"get"}},
		index("services.B", `exports.val = async (n) => n * 3`),
		index("services.A", `exports.f = async function () {
			const r = await app.getElement("services.H").get();
			const v = await app.getElement("services.B").val(2);
			return [r.method, v];
		}`),
	))
	require.Equal(t, []any{"get", int64(6)}, mustRun(t, vm, "services.A", "f"))
}

func TestConsoleCapturesAndCaps(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(index("services.L", `
		exports.levels = () => { console.log("a", 1, {b: [2]}, null, undefined); console.info("i"); console.warn("w"); console.error(new Error("e")); console.debug("d") };
		exports.flood = () => { const s = "x".repeat(1000); for (let i = 0; i < 5000; i++) console.log(s); return "done" };`)))
	res, err := run(t, vm, "services.L", "levels")
	require.NoError(t, err)
	var levels, msgs []string
	for _, l := range res.Logs {
		levels = append(levels, l.Level)
		msgs = append(msgs, l.Message)
	}
	require.Equal(t, []string{"log", "info", "warn", "error", "debug"}, levels)
	require.Equal(t, `a 1 {"b":[2]} null undefined`, msgs[0])
	require.Contains(t, msgs[3], "Error: e")
	require.Contains(t, msgs[3], "services/L/index.js")

	res, err = run(t, vm, "services.L", "flood")
	require.NoError(t, err)
	require.Equal(t, "done", res.Value)
	total := 0
	for _, l := range res.Logs {
		total += len(l.Message)
	}
	require.LessOrEqual(t, total, maxLogBytes+200)
	require.Contains(t, res.Logs[len(res.Logs)-1].Message, "truncated")
}

func TestWarmRuntimeKeepsModuleStatePerElement(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{MaxIdlePerElement: 1}, source(
		index("services.C", `let n = 0; exports.next = () => ++n;`),
		index("services.D", `let n = 100; exports.next = () => ++n;`),
	))
	require.EqualValues(t, 1, mustRun(t, vm, "services.C", "next"))
	require.EqualValues(t, 2, mustRun(t, vm, "services.C", "next"))
	require.EqualValues(t, 101, mustRun(t, vm, "services.D", "next"))
	require.EqualValues(t, 3, mustRun(t, vm, "services.C", "next"))
}

func TestLoadSwapsVersionsRunningOnesFinishOnOld(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{})
	release := make(chan struct{})
	host := HostCallerFunc(func(ctx context.Context, c HostCall) (any, error) {
		close(entered)
		<-release
		return nil, nil
	})
	vm := setup(t, Options{Host: host}, source(
		&Element{FullName: "services.Gate", Kind: KindHost, Methods: []string{"wait"}},
		index("services.V", `exports.f = () => { app.getElement("services.Gate").wait(); return "v1" }; exports.now = () => "v1"`),
	))
	done := make(chan any)
	go func() {
		res, err := vm.Execute(context.Background(), Call{Element: "services.V", Function: "f"})
		if err != nil {
			done <- err
			return
		}
		done <- res.Value
	}()
	<-entered
	require.NoError(t, vm.Load(source(
		&Element{FullName: "services.Gate", Kind: KindHost, Methods: []string{"wait"}},
		index("services.V", `exports.f = () => "v2"; exports.now = () => "v2"`),
	)))
	require.Equal(t, "v2", mustRun(t, vm, "services.V", "now"))
	close(release)
	require.Equal(t, "v1", <-done)
	require.Equal(t, "v2", mustRun(t, vm, "services.V", "f"))
}

func TestElementTimeoutAppliesWhenCallSetsNone(t *testing.T) {
	t.Parallel()
	el := index("services.Slow", `exports.f = () => { for (;;) {} }`)
	el.Timeout = 30 * time.Millisecond
	vm := setup(t, Options{}, source(el))
	start := time.Now()
	require.Equal(t, CodeTimeout, runErr(t, vm, "services.Slow", "f").Code)
	require.Less(t, time.Since(start), 10*time.Second, "the element's timeout, not the 30 s default, must apply")
}

func TestExecuteOnHostElementRecoversHostPanic(t *testing.T) {
	t.Parallel()
	host := HostCallerFunc(func(ctx context.Context, c HostCall) (any, error) { panic("host bug") })
	vm := setup(t, Options{Host: host}, source(&Element{FullName: "services.TaskSvc", Kind: KindHost, Methods: []string{"getTask"}}))
	e := runErr(t, vm, "services.TaskSvc", "getTask")
	require.Equal(t, CodeJSError, e.Code)
	require.Contains(t, e.Message, "host bug")
}

func TestLoaderWithInstanceCode(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(
		&Element{FullName: "services.WrapType", Kind: KindData, Definition: map[string]any{"loader": "lib/make.js"},
			Files: map[string]string{"lib/make.js": `exports.load = (def, app, own) => ({
				describe: () => def.title + ": " + own.helper(2),
				title: def.title,
			})`}},
		&Element{FullName: "services.Inst", Kind: KindJS, Loader: "services.WrapType", Definition: map[string]any{"title": "Inst"},
			Files: map[string]string{"index.js": `exports.helper = n => n * 21; exports.handle = (e) => "handled " + e`}},
		index("services.S", `exports.f = () => { const i = app.getElement("services.Inst"); return [i.describe(), i.title, typeof i.handle] }`),
	))
	require.Equal(t, []any{"Inst: 42", "Inst", "undefined"}, mustRun(t, vm, "services.S", "f"))
	require.Equal(t, "Inst: 42", mustRun(t, vm, "services.Inst", "describe"))
	require.Equal(t, "handled x", mustRun(t, vm, "services.Inst", "handle", "x"), "a function the loader object lacks comes from the instance's own exports")
	require.Equal(t, CodeNotFound, runErr(t, vm, "services.Inst", "nope").Code)
}
