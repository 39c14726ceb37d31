package web

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/backends"
	"github.com/trellis-run/trellis/host/jsvm"
	"github.com/trellis-run/trellis/logstore"
)

// draftApp has one element of each kind a draft may run: a service, a listener, a task template.
var draftApp = map[string]string{
	"app.json":                `{"name": "drafts"}`,
	"services/MathSvc/e.json": `{"title": "Math", "type": "services.NormalType"}`,
	"services/MathSvc/index.js": `exports.add = function (a, b) { return a + b; };
exports.spin = function () { for (;;) {} };`,
	"events/OnLogin/e.json":   `{"title": "On login", "type": "events.NormalType", "sender": "models.UserModel"}`,
	"events/OnLogin/index.js": `exports.handle = function (event, ctx) { return {user: event.kwargs.userId, attempt: ctx.attempt, v: 1}; };`,
	"tasks/Report/e.json":     `{"title": "Report", "type": "tasks.NormalType", "funcName": "run"}`,
	"tasks/Report/index.js":   `exports.run = function (argDict, ctx) { return {n: argDict.n, v: 1}; };`,
}

func setupDrafts(t *testing.T, sandbox string, limits jsvm.Limits) (http.Handler, *host.Host, string) {
	t.Helper()
	dir := writeApp(t, draftApp)
	h, err := host.New(host.Config{AppDir: dir, Sandbox: sandbox, Workers: 1, Watch: true, Limits: limits}, backends.Open)
	require.NoError(t, err)
	require.NoError(t, h.Start(context.Background()))
	t.Cleanup(func() { _ = h.Stop(context.Background()) })
	srv, err := New(depsOf(h), Options{Token: testToken, MaxBodyBytes: 1 << 16})
	require.NoError(t, err)
	return srv.Handler(), h, dir
}

func draftReq(t *testing.T, def string, files map[string]string, extra map[string]any) string {
	m := map[string]any{"definition": def, "files": files}
	for k, v := range extra {
		m[k] = v
	}
	return jsonBody(t, m)
}

const mathDef = `{"title": "Math", "type": "services.NormalType"}`

func TestRunDraft(t *testing.T) {
	t.Parallel()
	handler, h, dir := setupDrafts(t, host.SandboxInProcess, jsvm.Limits{Timeout: 500 * time.Millisecond})
	draftJS := `exports.add = function (a, b) { console.log("draft adding"); return (a + b) * 100; };
exports.other = function () { return app.getElement("tasks.Report").run({n: 7}); };
exports.boom = function () {
  null.x;
};
exports.spin = function () { for (;;) {} };
exports.echo = function (x) { return x; };`
	run1 := func(fn string, args any) string {
		return draftReq(t, mathDef, map[string]string{"index.js": draftJS}, map[string]any{"function": fn, "args": args})
	}
	for _, sc := range []scenario{
		{name: "service function", path: "/api/elements/services.MathSvc/run", body: run1("add", []any{2, 3}), wantStatus: 200,
			wantIn: []string{`"result":500`, `"draft adding"`, `"error":null`, `"durationMs":`}},
		{name: "one object argument", path: "/api/elements/services.MathSvc/run", body: run1("echo", map[string]any{"a": 1}), wantStatus: 200,
			wantIn: []string{`"result":{"a":1}`}},
		{name: "other elements through app.getElement", path: "/api/elements/services.MathSvc/run", body: run1("other", nil), wantStatus: 200,
			wantIn: []string{`"result":{"n":7,"v":1}`}},
		{name: "error at the draft's file and line", path: "/api/elements/services.MathSvc/run", body: run1("boom", nil), wantStatus: 200,
			wantIn: []string{`"code":"js_error"`, "services/MathSvc/index.js:4:", `"result":null`}},
		{name: "limits hold", path: "/api/elements/services.MathSvc/run", body: run1("spin", nil), wantStatus: 200, wantIn: []string{`"code":"timeout"`}},
		{name: "unknown function", path: "/api/elements/services.MathSvc/run", body: run1("nope", nil), wantStatus: 200, wantIn: []string{`"code":"not_found"`}},
		{name: "a new element", path: "/api/elements/services.Fresh/run", body: draftReq(t, mathDef, map[string]string{"index.js": "exports.f = function () { return 'fresh'; };"}, map[string]any{"function": "f"}),
			wantStatus: 200, wantIn: []string{`"result":"fresh"`}},
		{name: "event handler with the event", path: "/api/elements/events.OnLogin/run", wantStatus: 200,
			body: draftReq(t, draftApp["events/OnLogin/e.json"], map[string]string{"index.js": `exports.handle = function (event, ctx) { return {user: event.kwargs.userId, attempt: ctx.attempt, v: 2}; };`},
				map[string]any{"function": "handle", "args": []any{map[string]any{"kwargs": map[string]any{"userId": 9}}}}),
			wantIn: []string{`"result":{"attempt":1,"user":9,"v":2}`}},
		{name: "event handler with sample kwargs", path: "/api/elements/events.OnLogin/run", wantStatus: 200,
			body: draftReq(t, draftApp["events/OnLogin/e.json"], map[string]string{"index.js": `exports.handle = function (event) { return [event.sender, event.eventType, event.kwargs.userId]; };`},
				map[string]any{"function": "handle", "args": map[string]any{"userId": 4}}),
			wantIn: []string{`"result":["models.UserModel","events.NormalType",4]`}},
		{name: "task function with its argDict", path: "/api/elements/tasks.Report/run", wantStatus: 200,
			body: draftReq(t, draftApp["tasks/Report/e.json"], map[string]string{"index.js": `exports.run = function (argDict, ctx) { return {n: argDict.n, v: 2, attempt: ctx.attempt}; };`},
				map[string]any{"function": "run", "args": map[string]any{"n": 3}}),
			wantIn: []string{`"result":{"attempt":1,"n":3,"v":2}`}},
		{name: "model lifecycle function", path: "/api/elements/models.Order/run", wantStatus: 200,
			body: draftReq(t, `{"title": "Order", "type": "models.NormalType", "fields": [{"name": "amount", "type": "Integer"}]}`,
				map[string]string{"index.js": `exports.beforeSave = function (row, prev) { return {amount: row.amount + 1, first: prev === null}; };`},
				map[string]any{"function": "beforeSave", "args": []any{map[string]any{"amount": 41}, nil}}),
			wantIn: []string{`"result":{"amount":42,"first":true}`}},
		{name: "draft with problems", path: "/api/elements/services.MathSvc/run", wantStatus: 422,
			body:   draftReq(t, `{"title": "Math", "type": "services.NormalType", "timout": "1s"}`, map[string]string{"index.js": "exports.f = function () {"}, map[string]any{"function": "f"}),
			wantIn: []string{`"code":"invalid_element"`, `"code":"unknown_field"`, `"code":"js_syntax"`, `"line":`}},
		{name: "not an instance", path: "/api/elements/services.MyType/run", wantStatus: 400,
			body: draftReq(t, `{"title": "T", "type": "services.Meta"}`, nil, map[string]any{"function": "f"}), wantIn: []string{"not an instance"}},
		{name: "no function", path: "/api/elements/services.MathSvc/run", wantStatus: 400, body: draftReq(t, mathDef, nil, nil), wantIn: []string{"function"}},
		{name: "args not an array or object", path: "/api/elements/services.MathSvc/run", wantStatus: 400, body: run1("add", 5), wantIn: []string{"args"}},
		{name: "hostile file name", path: "/api/elements/services.MathSvc/run", wantStatus: 400,
			body: draftReq(t, mathDef, map[string]string{"../x.js": "1"}, map[string]any{"function": "f"}), wantIn: []string{"plain relative name"}},
		{name: "unknown field", path: "/api/elements/services.MathSvc/run", wantStatus: 400, body: `{"definition": "{}", "save": true}`},
	} {
		sc.method = "POST"
		t.Run(sc.name, func(t *testing.T) { run(t, handler, sc) })
	}

	// Nothing was saved: the running app is as it was, on disk and in the sandbox.
	b, err := os.ReadFile(filepath.Join(dir, "services/MathSvc/index.js"))
	require.NoError(t, err)
	require.Equal(t, draftApp["services/MathSvc/index.js"], string(b))
	require.NoDirExists(t, filepath.Join(dir, "services/Fresh"))
	run(t, handler, scenario{method: "POST", path: "/api/services/services.MathSvc/add", body: `[2, 3]`, wantStatus: 200, wantIn: []string{`"result":5`}})

	// Draft runs write no log rows; the real call just made does.
	require.NoError(t, h.LogWriter().Flush(context.Background()))
	run(t, handler, scenario{method: "GET", path: "/api/events/logs?fullName=services.MathSvc", wantStatus: 200, wantIn: []string{`"totalCount":1`}})
	for _, name := range []string{"services.Fresh", "events.OnLogin", "tasks.Report"} {
		run(t, handler, scenario{method: "GET", path: "/api/events/logs?fullName=" + name, wantStatus: 200, wantIn: []string{`"totalCount":0`}})
	}
}

// TestRunDraftIsolated runs a draft in a worker process, as the default sandbox does.
func TestRunDraftIsolated(t *testing.T) {
	t.Parallel()
	handler, _, _ := setupDrafts(t, host.SandboxIsolated, jsvm.Limits{})
	run(t, handler, scenario{method: "POST", path: "/api/elements/services.MathSvc/run", wantStatus: 200,
		body:   draftReq(t, mathDef, map[string]string{"index.js": "exports.add = function (a, b) {\n  throw new Error('iso ' + (a + b));\n};"}, map[string]any{"function": "add", "args": []any{1, 2}}),
		wantIn: []string{`"message":"iso 3"`, "services/MathSvc/index.js:2:"}})
}

func TestReplay(t *testing.T) {
	t.Parallel()
	handler, h, _ := setupDrafts(t, host.SandboxInProcess, jsvm.Limits{})
	at := time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)
	row := func(id, kind, fullName, node, sender string, kwargs, result string, rowErr *logstore.RowError) logstore.Row {
		r := logstore.Row{ID: id, Kind: kind, FullName: fullName, Sender: sender, EventType: "events.NormalType", EventID: "evt_1",
			Status: logstore.StatusSuccess, RequestID: "req_1", NodeID: node, Attempt: 2, CreatedAt: at, RecordedAt: at.Add(time.Second),
			Kwargs: json.RawMessage(kwargs)}
		if result != "" {
			r.Result = json.RawMessage(result)
		}
		if rowErr != nil {
			r.Status, r.Error = logstore.StatusFail, rowErr
		}
		return r
	}
	w := h.LogWriter()
	require.NoError(t, w.Write(context.Background(),
		row("r1", logstore.KindEvent, "events.OnLogin", "node_ev", "models.UserModel", `{"userId": 9007199254740993}`, "", &logstore.RowError{Code: "js_error", Message: "was broken"}),
		row("r2", logstore.KindTask, "tasks.Report", "node_task", "", `{"n": 5}`, `{"n":5,"v":1}`, nil),
		row("r3", logstore.KindService, "services.MathSvc", "node_svc", "services.MathSvc.add", `[20, 22]`, `42`, nil),
	))
	require.NoError(t, w.Flush(context.Background()))
	replay := func(def, js string) string {
		return draftReq(t, def, map[string]string{"index.js": js}, nil)
	}
	for _, sc := range []scenario{
		{name: "listener gets the logged event", path: "/api/nodes/node_ev/replay", wantStatus: 200,
			body:   replay(draftApp["events/OnLogin/e.json"], `exports.handle = function (event, ctx) { return {user: event.kwargs.userId, attempt: ctx.attempt, id: event.id}; };`),
			wantIn: []string{`"logged":{"error":{"code":"js_error","message":"was broken"}`, `"draft":{`, `"result":{"attempt":2,"id":"evt_1","user":9007199254740993}`, `"error":null`}},
		{name: "task gets its argDict", path: "/api/nodes/node_task/replay", wantStatus: 200,
			body:   replay(draftApp["tasks/Report/e.json"], `exports.run = function (argDict) { return {n: argDict.n, v: 2}; };`),
			wantIn: []string{`"logged":{"error":null,"result":{"n":5,"v":1}`, `"result":{"n":5,"v":2}`}},
		{name: "service gets its arguments", path: "/api/nodes/node_svc/replay", wantStatus: 200,
			body:   replay(mathDef, `exports.add = function (a, b) { throw new Error("now " + (a - b)); };`),
			wantIn: []string{`"result":42`, `"message":"now -2"`, "services/MathSvc/index.js:1:", `"function":"add"`}},
		{name: "draft with problems", path: "/api/nodes/node_svc/replay", wantStatus: 422, body: replay(mathDef, `exports.add = function (`), wantIn: []string{"js_syntax"}},
		{name: "unknown node", path: "/api/nodes/node_nope/replay", wantStatus: 404, body: replay(mathDef, `exports.add = 1;`), wantIn: []string{"node_nope"}},
		{name: "no definition", path: "/api/nodes/node_svc/replay", wantStatus: 400, body: `{}`, wantIn: []string{"definition"}},
	} {
		sc.method = "POST"
		t.Run(sc.name, func(t *testing.T) { run(t, handler, sc) })
	}
	// Replays write nothing to the log: each node still has its one row.
	require.NoError(t, w.Flush(context.Background()))
	for _, node := range []string{"node_ev", "node_task", "node_svc"} {
		rows, err := h.LogStore().Attempts(context.Background(), node)
		require.NoError(t, err)
		require.Len(t, rows, 1, node)
	}
}
