package host_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/backends"
	"github.com/trellis-run/trellis/host/isolate"
	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/host/registry"
	"github.com/trellis-run/trellis/host/vocab"
	"github.com/trellis-run/trellis/logstore"
)

func TestMain(m *testing.M) {
	if isolate.IsWorker() {
		isolate.WorkerMain()
	}
	os.Exit(m.Run())
}

func writeApp(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	}
	return dir
}

// setup starts a host on embedded storage and stops it when the test ends.
func setup(t testing.TB, cfg host.Config, files map[string]string) *host.Host {
	t.Helper()
	cfg.AppDir = writeApp(t, files)
	if cfg.Workers == 0 {
		cfg.Workers = 1
	}
	h, err := host.New(cfg, backends.Open)
	require.NoError(t, err)
	require.NoError(t, h.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, h.Stop(context.Background())) })
	return h
}

// overrideApp overrides the built-in services.TaskSvc with JS that wraps the built-in, as the
// seeds describe for EventSvc, and has another service that uses whatever TaskSvc resolves to.
var overrideApp = map[string]string{
	"app.json": `{"name": "override"}`,
	"services/TaskSvc/e.json": `{"title": "Our TaskSvc", "type": "services.NormalType",
		"functionList": [{"name": "getTaskTmplList", "args": [{"name": "queryStr", "type": "Stext"}]}]}`,
	"services/TaskSvc/index.js": `
exports.getTaskTmplList = function (queryStr) {
  const builtin = app.getBuiltin("services.TaskSvc").getTaskTmplList({queryStr: queryStr});
  return {wrapped: true, templates: builtin};
};`,
	"services/UsesTasks/e.json": `{"title": "Uses TaskSvc", "type": "services.NormalType"}`,
	"services/UsesTasks/index.js": `
exports.list = function () { return app.getElement("services.TaskSvc").getTaskTmplList("Nightly"); };
exports.badArgs = function () { return app.getBuiltin("services.TaskSvc").getTaskTmplList(42); };
exports.notYet = function () { return app.getBuiltin("services.TaskSvc").createTimerTask("tasks.Nightly", "2030-01-01 00:00:00", "run", "tasks.NormalType", {}); };
`,
	"tasks/Nightly/e.json": `{"title": "Nightly", "type": "tasks.NormalType", "repeatType": "cron", "cron": "0 1 * * *", "funcName": "services.UsesTasks.list"}`,
	"tasks/Hourly/e.json":  `{"title": "Hourly", "type": "tasks.NormalType", "repeatType": "interval", "interval": "1h", "funcName": "services.UsesTasks.list"}`,
}

func TestOverrideBuiltinWrapsIt(t *testing.T) {
	t.Parallel()
	for _, sandbox := range []string{host.SandboxInProcess, host.SandboxIsolated} {
		t.Run(sandbox, func(t *testing.T) {
			t.Parallel()
			h := setup(t, host.Config{Sandbox: sandbox}, overrideApp)
			el := h.Snapshot().Elements["services.TaskSvc"]
			require.Equal(t, registry.OriginApp, el.Origin)
			require.Equal(t, registry.OriginBuiltin, el.Overrides)

			res, err := h.CallService(context.Background(), "services.UsesTasks", "list", nil)
			require.NoError(t, err)
			require.Equal(t, map[string]any{"wrapped": true, "templates": []any{map[string]any{
				"title": "Nightly", "taskType": "tasks.NormalType", "repeatType": "cron", "fullName": "tasks.Nightly",
			}}}, res.Value)

			_, err = h.CallService(context.Background(), "services.UsesTasks", "badArgs", nil)
			var je *jsvm.Error
			require.ErrorAs(t, err, &je)
			require.Equal(t, vocab.CodeJSError, je.Code)
			require.Contains(t, je.Message, `argument "queryStr" must be a string`)
			require.Contains(t, je.Stack, "services/UsesTasks/index.js:3:")
			require.NotContains(t, je.Stack, "github.com/", "stacks show JS frames, not the host's Go symbols")

			_, err = h.CallService(context.Background(), "services.UsesTasks", "notYet", nil)
			require.ErrorAs(t, err, &je)
			require.Contains(t, je.Message, `tasks.Nightly has no function run`, "built-in TaskSvc checks funcName")
		})
	}
}

func TestCallServiceErrors(t *testing.T) {
	t.Parallel()
	h := setup(t, host.Config{Sandbox: host.SandboxInProcess}, overrideApp)
	ctx := context.Background()
	_, err := h.CallService(ctx, "services.Nope", "x", nil)
	require.ErrorIs(t, err, host.ErrNotFound)
	_, err = h.CallService(ctx, "services.usestasks", "list", nil)
	require.ErrorContains(t, err, "did you mean services.UsesTasks?")
	_, err = h.CallService(ctx, "services.UsesTasks", "missing", nil)
	require.ErrorIs(t, err, host.ErrNotFound)
	require.ErrorContains(t, err, "it exports: badArgs, list, notYet")
	_, err = h.CallService(ctx, "tasks.Nightly", "list", nil)
	require.ErrorContains(t, err, "not a service")
	res, err := h.CallService(ctx, "services.TaskSvc", "getTaskTmplList", []any{"hour"})
	require.NoError(t, err)
	require.Len(t, res.Value.(map[string]any)["templates"], 1)
}

func TestHostileCodeEndsOnlyItsExecution(t *testing.T) {
	t.Parallel()
	h := setup(t, host.Config{Workers: 2, Limits: jsvm.Limits{Timeout: 1500 * time.Millisecond, MemoryBytes: 64 << 20}}, map[string]string{
		"app.json":             `{"name": "hostile"}`,
		"services/Evil/e.json": `{"title": "Evil", "type": "services.NormalType"}`,
		"services/Evil/index.js": `
exports.spin = function () { for (;;) {} };
exports.regex = function () { return /^(a+)+(?=b)$/.test("a".repeat(40) + "c"); };
exports.double = function () { let s = "x"; for (;;) s += s; };
exports.recurse = function f() { return f() + 1; };
exports.escape = function () { return typeof this.constructor.constructor("return globalThis.process || globalThis.require && globalThis.require('fs')")(); };
`,
		"services/Good/e.json":   `{"title": "Good", "type": "services.NormalType"}`,
		"services/Good/index.js": `exports.ok = function (n) { return n * 2; };`,
	})
	ctx := context.Background()
	cases := map[string]string{"spin": vocab.CodeTimeout, "regex": vocab.CodeTimeout, "double": vocab.CodeMemoryLimit, "recurse": vocab.CodeStackOverflow}
	for fn, code := range cases {
		t.Run(fn, func(t *testing.T) {
			_, err := h.CallService(ctx, "services.Evil", fn, nil)
			var je *jsvm.Error
			require.ErrorAs(t, err, &je, "%s must fail", fn)
			require.Equal(t, code, je.Code, je.Message)
			res, err := h.CallService(ctx, "services.Good", "ok", []any{int64(21)})
			require.NoError(t, err, "the host goes on after %s", fn)
			require.EqualValues(t, 42, res.Value)
		})
	}
	_, err := h.CallService(ctx, "services.Evil", "escape", nil)
	var je *jsvm.Error
	require.ErrorAs(t, err, &je, "require is not reachable from a Function-constructed scope either")
}

func TestConfigErrorsNameTheField(t *testing.T) {
	t.Parallel()
	dir := writeApp(t, map[string]string{"app.json": `{"name": "x"}`})
	for _, tc := range []struct {
		cfg  host.Config
		want string
	}{
		{host.Config{}, "AppDir (--app) is required"},
		{host.Config{AppDir: dir, Sandbox: "docker"}, `Sandbox (--sandbox) is "docker"`},
		{host.Config{AppDir: dir, Workers: -1}, "Workers (--workers)"},
		{host.Config{AppDir: dir, Limits: jsvm.Limits{MemoryBytes: 1024}}, "Limits.MemoryBytes"},
		{host.Config{AppDir: dir, DBDSN: "mysql://x"}, "DBDSN (--db)"},
		{host.Config{AppDir: dir, LagEvery: time.Millisecond}, "LagEvery (--lag-every)"},
		{host.Config{AppDir: dir, Limits: jsvm.Limits{MaxResultBytes: 10}}, "Limits.MaxResultBytes (--max-result)"},
		{host.Config{AppDir: dir, Limits: jsvm.Limits{MaxErrorBytes: 10}}, "Limits.MaxErrorBytes (--max-error)"},
		{host.Config{AppDir: dir, Limits: jsvm.Limits{MaxConsoleBytes: 10}}, "Limits.MaxConsoleBytes (--max-console)"},
		{host.Config{AppDir: dir, Limits: jsvm.Limits{MaxMessageBytes: 10}}, "Limits.MaxMessageBytes (--max-message)"},
		{host.Config{AppDir: dir, Limits: jsvm.Limits{MaxValueDepth: 10000}}, "Limits.MaxValueDepth (--max-depth) must be between 1 and 512"},
	} {
		_, err := host.New(tc.cfg, backends.Open)
		require.ErrorIs(t, err, host.ErrInvalidConfig)
		require.ErrorContains(t, err, tc.want)
	}
}

func TestInvalidAppIsRefusedWhole(t *testing.T) {
	t.Parallel()
	dir := writeApp(t, map[string]string{
		"app.json":             `{"name": "broken"}`,
		"services/A/e.json":    `{"title": "A", "type": "services.NormalType"}`,
		"services/A/index.js":  "exports.f = function () { return 1 +; };",
		"services/B/e.json":    `{"title": "B", "type": "services.NoSuchType"}`,
		"services/Ok/e.json":   `{"title": "Ok", "type": "services.NormalType"}`,
		"services/Ok/index.js": "exports.f = function () { return 1; };",
	})
	_, err := host.New(host.Config{AppDir: dir}, backends.Open)
	var ve *registry.ValidationError
	require.ErrorAs(t, err, &ve)
	require.GreaterOrEqual(t, len(ve.Problems), 2, "every problem at once: %v", ve.Problems)
	require.ErrorContains(t, err, "services/A/index.js:1:")
	require.ErrorContains(t, err, "services.NoSuchType")
}

func TestStopTwiceAndCallAfterStop(t *testing.T) {
	t.Parallel()
	dir := writeApp(t, overrideApp)
	h, err := host.New(host.Config{AppDir: dir, Sandbox: host.SandboxInProcess, Watch: true}, backends.Open)
	require.NoError(t, err)
	_, err = h.CallService(context.Background(), "services.UsesTasks", "list", nil)
	require.ErrorIs(t, err, host.ErrNotStarted)
	require.NoError(t, h.Start(context.Background()))
	require.NoError(t, h.Start(context.Background()), "Start twice is harmless")
	require.NoError(t, h.Stop(context.Background()))
	require.NoError(t, h.Stop(context.Background()))
	_, err = h.CallService(context.Background(), "services.UsesTasks", "list", nil)
	require.True(t, errors.Is(err, host.ErrNotStarted), "got %v", err)
}

func TestAdminTokenGeneratedOnceAndKept(t *testing.T) {
	t.Parallel()
	dir := writeApp(t, map[string]string{"app.json": `{"name": "x"}`})
	h, err := host.New(host.Config{AppDir: dir}, backends.Open)
	require.NoError(t, err)
	tok, generated, err := h.AdminToken()
	require.NoError(t, err)
	require.True(t, generated)
	require.Len(t, tok, 48)
	info, err := os.Stat(filepath.Join(dir, ".trellis", "admin-token"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	again, generated, err := h.AdminToken()
	require.NoError(t, err)
	require.False(t, generated)
	require.Equal(t, tok, again)

	h2, err := host.New(host.Config{AppDir: dir, AdminToken: "from-env"}, backends.Open)
	require.NoError(t, err)
	tok, _, err = h2.AdminToken()
	require.NoError(t, err)
	require.Equal(t, "from-env", tok)
}

// genServices is an app of n services, for the reload benchmark.
func genServices(n int) map[string]string {
	files := map[string]string{"app.json": `{"name": "big"}`, "commons/util.js": "exports.twice = function (x) { return 2 * x; };"}
	for i := 0; i < n; i++ {
		dir := fmt.Sprintf("services/Svc%04d/", i)
		files[dir+"e.json"] = fmt.Sprintf(`{"title": "Service %d", "type": "services.NormalType"}`, i)
		files[dir+"index.js"] = fmt.Sprintf("const u = require(\"commons/util\");\nexports.version = function () { return 0; };\nexports.calc = function (x) { return u.twice(x) + %d; };\n", i)
	}
	return files
}

func TestIsolatedWorkersUseTheAppTimezone(t *testing.T) {
	t.Parallel()
	h := setup(t, host.Config{}, map[string]string{
		"app.json":            `{"name": "tz", "timezone": "Asia/Shanghai"}`,
		"services/T/e.json":   `{"title": "T", "type": "services.NormalType"}`,
		"services/T/index.js": `exports.hour = function () { return new Date(Date.UTC(2024, 0, 1, 0, 0, 0)).getHours(); };`,
	})
	res, err := h.CallService(context.Background(), "services.T", "hour", nil)
	require.NoError(t, err)
	require.EqualValues(t, 8, res.Value, "midnight UTC is 08:00 in Asia/Shanghai")
}

func TestSecondProcessOnOneDataDirLogsThroughItsOwnSpool(t *testing.T) {
	t.Parallel()
	dir := writeApp(t, overrideApp)
	first, err := host.New(host.Config{AppDir: dir, Sandbox: host.SandboxInProcess}, backends.Open)
	require.NoError(t, err)
	require.NoError(t, first.Start(context.Background()))
	defer first.Stop(context.Background())

	// A `trellis call` beside a running `serve`: the main spool is taken.
	second, err := host.New(host.Config{AppDir: dir, Sandbox: host.SandboxInProcess}, backends.Open)
	require.NoError(t, err)
	require.NoError(t, second.Start(context.Background()))
	_, err = second.CallService(context.Background(), "services.UsesTasks", "list", nil)
	require.NoError(t, err)
	require.NoError(t, second.Stop(context.Background()))

	page, err := first.LogStore().Query(context.Background(), logstore.Query{FullName: "services.UsesTasks"}.WithDefaults())
	require.NoError(t, err)
	require.EqualValues(t, 1, page.TotalCount, "the second process's row reached the shared store")
	left, _ := os.ReadDir(filepath.Join(dir, ".trellis", "log-spool.d"))
	require.Empty(t, left, "a drained private spool is removed")
}

func TestServiceCallsAreLoggedAndQueryableFromJS(t *testing.T) {
	t.Parallel()
	files := map[string]string{
		"app.json":               `{"name": "logs", "timezone": "Asia/Shanghai"}`,
		"services/Work/e.json":   `{"title": "Work", "type": "services.NormalType"}`,
		"services/Work/index.js": "exports.ok = function () { console.log('did it'); return 1; };\nexports.bad = function () { throw new Error('nope'); };",
		"services/Reader/e.json": `{"title": "Reader", "type": "services.NormalType"}`,
		"services/Reader/index.js": `
const svc = app.getElement("events.services.EventSvc");
exports.failed = function () { return svc.getEventLog({fullName: "services.Work", status: "fail"}); };
exports.positional = function () { return svc.getEventLog("services.Work", null, null, null, 1, 10); };
exports.byRequest = function (id) { return svc.getEventLogByRequestId(id); };
exports.badStatus = function () { return svc.getEventLog("services.Work", null, null, "done"); };
exports.badTime = function () { return svc.getEventLog({fullName: "services.Work", startTime: "soon"}); };
exports.byStage = function (stage) { return svc.getEventLog("services.Work", null, null, null, 1, 10, stage); };
exports.badStage = function () { return svc.getEventLog({fullName: "services.Work", stage: "dead"}); };
`,
	}
	h := setup(t, host.Config{Sandbox: host.SandboxInProcess}, files)
	ctx := context.Background()
	_, err := h.CallService(ctx, "services.Work", "ok", nil)
	require.NoError(t, err)
	_, err = h.CallService(ctx, "services.Work", "bad", nil)
	require.Error(t, err)
	require.NoError(t, h.LogWriter().Flush(ctx))

	res, err := h.CallService(ctx, "services.Reader", "failed", nil)
	require.NoError(t, err)
	page := res.Value.(map[string]any)
	require.EqualValues(t, 1, page["totalCount"])
	row := page["rowDatas"].([]any)[0].(map[string]any)
	require.Equal(t, "fail", row["status"])
	require.Equal(t, "nope", row["error"].(map[string]any)["message"])
	require.Regexp(t, `^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$`, row["startTime"], "datetimes come back as app-timezone strings")

	res, err = h.CallService(ctx, "services.Reader", "positional", nil)
	require.NoError(t, err)
	require.EqualValues(t, 2, res.Value.(map[string]any)["totalCount"])

	res, err = h.CallService(ctx, "services.Reader", "byRequest", []any{row["requestId"]})
	require.NoError(t, err)
	require.Len(t, res.Value, 1)

	// stage, the seventh argument: the stage of the latest state.
	res, err = h.CallService(ctx, "services.Reader", "byStage", []any{"failed"})
	require.NoError(t, err)
	require.EqualValues(t, 1, res.Value.(map[string]any)["totalCount"])
	res, err = h.CallService(ctx, "services.Reader", "byStage", []any{"deadLettered"})
	require.NoError(t, err)
	require.EqualValues(t, 0, res.Value.(map[string]any)["totalCount"])

	for fn, want := range map[string]string{"badStatus": `status "done"`, "badTime": `"startTime"`, "badStage": `stage "dead"`} {
		_, err = h.CallService(ctx, "services.Reader", fn, nil)
		var je *jsvm.Error
		require.ErrorAs(t, err, &je, fn)
		require.Contains(t, je.Message, want)
	}
}

func TestClickHouseClusterNeedsClickHouse(t *testing.T) {
	t.Parallel()
	dir := writeApp(t, map[string]string{"app.json": `{"name": "x"}`})
	_, err := host.New(host.Config{AppDir: dir, ClickHouseCluster: "prod"}, backends.Open)
	require.ErrorIs(t, err, host.ErrInvalidConfig)
	require.ErrorContains(t, err, "--clickhouse-cluster")
}

// loaderApp has a user Type whose loader.js builds its instances' runtime objects: the
// instance's own index.js exports nothing callable, the loader adds greet.
var loaderApp = map[string]string{
	"app.json":                    `{"name": "loaders"}`,
	"services/GreeterType/e.json": `{"title": "Greeter type", "type": "services.Meta", "loader": "loader.js"}`,
	"services/GreeterType/loader.js": `exports.load = function (definition, app, own) {
  return {greet: function (who) { return (definition.greeting || "hello") + ", " + who; }, own: own};
};`,
	"services/Greeter/e.json":   `{"title": "Greeter", "type": "services.GreeterType"}`,
	"services/Greeter/index.js": `exports.helper = 1;`,
	"services/Caller/e.json":    `{"title": "Caller", "type": "services.NormalType"}`,
	"services/Caller/index.js":  `exports.viaApp = function () { return app.getElement("services.Greeter").greet("app"); };`,
}

// A function a Type's loader provides is callable from JS, the CLI and HTTP alike; a function
// the loaded object lacks is not_found, said by the sandbox.
func TestLoaderFunctionsAreCallableFromOutside(t *testing.T) {
	t.Parallel()
	for _, sandbox := range []string{host.SandboxInProcess, host.SandboxIsolated} {
		t.Run(sandbox, func(t *testing.T) {
			t.Parallel()
			h := setup(t, host.Config{Sandbox: sandbox}, loaderApp)
			ctx := context.Background()
			res, err := h.CallService(ctx, "services.Caller", "viaApp", nil)
			require.NoError(t, err)
			require.Equal(t, "hello, app", res.Value)

			res, err = h.CallService(ctx, "services.Greeter", "greet", []any{"cli"})
			require.NoError(t, err, "trellis call and POST /api/services reach the loader's function")
			require.Equal(t, "hello, cli", res.Value)

			_, err = h.CallService(ctx, "services.Greeter", "nope", nil)
			require.Error(t, err)
			require.Equal(t, vocab.CodeNotFound, vocab.CodeOf(err))
			require.Contains(t, err.Error(), "nope")
		})
	}
}
