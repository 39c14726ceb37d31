package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trellis-run/trellis/host"
	"github.com/trellis-run/trellis/host/backends"
	"github.com/trellis-run/trellis/host/isolate"
)

func TestMain(m *testing.M) {
	if isolate.IsWorker() {
		isolate.WorkerMain()
	}
	os.Exit(m.Run())
}

const testToken = "test-token"

// testApp is a small app: a JS service and a service overriding nothing.
var testApp = map[string]string{
	"app.json":                `{"name": "webtest", "title": "Web test"}`,
	"services/MathSvc/e.json": `{"title": "Math", "type": "services.NormalType"}`,
	"services/MathSvc/index.js": `
exports.add = function (a, b) { console.log("adding"); return a + b; };
exports.echo = function (x) { return x; };
exports.boom = function () { throw new Error("kaboom"); };
exports.spin = function () { for (;;) {} };
`,
	"services/MathSvc/e.json.bak": "not an element file",
}

func writeApp(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	}
	return dir
}

// setup starts a real host on embedded storage and returns the HTTP handler in front of it.
func setup(t *testing.T, sandbox string) http.Handler {
	return setupApp(t, sandbox, testApp, false)
}

// setupApp is setup for another app; serve makes the host run events and tasks too.
func setupApp(t *testing.T, sandbox string, files map[string]string, serve bool) http.Handler {
	t.Helper()
	h, err := host.New(host.Config{AppDir: writeApp(t, files), Sandbox: sandbox, Workers: 1, MaxBodyBytes: 1 << 16, ServeEvents: serve}, backends.Open)
	require.NoError(t, err)
	require.NoError(t, h.Start(context.Background()))
	t.Cleanup(func() { _ = h.Stop(context.Background()) })
	srv, err := New(depsOf(h), Options{Token: testToken, MaxBodyBytes: 1 << 16})
	require.NoError(t, err)
	return srv.Handler()
}

type scenario struct {
	name       string
	method     string
	path       string
	body       string
	noAuth     bool
	token      string
	wantStatus int
	wantIn     []string // substrings of the body
}

func run(t *testing.T, handler http.Handler, sc scenario) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(sc.method, sc.path, strings.NewReader(sc.body))
	if !sc.noAuth {
		tok := testToken
		if sc.token != "" {
			tok = sc.token
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	require.Equal(t, sc.wantStatus, rec.Code, "%s %s → %s", sc.method, sc.path, rec.Body.String())
	for _, s := range sc.wantIn {
		require.Contains(t, rec.Body.String(), s)
	}
	if rec.Code >= 400 {
		var body struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), "errors are JSON")
		require.NotEmpty(t, body.Error.Code)
		require.NotEmpty(t, body.Error.Message)
	}
	return rec
}

func TestAPIScenarios(t *testing.T) {
	t.Parallel()
	handler := setup(t, host.SandboxInProcess)
	big := `{"x": "` + strings.Repeat("a", 1<<17) + `"}`
	for _, sc := range []scenario{
		{name: "health needs no token", method: "GET", path: "/api/health", noAuth: true, wantStatus: 200, wantIn: []string{`"status":"ok"`, `"bus":"embedded"`, `"logs":"embedded"`, `"db":"embedded"`, `"version"`}},
		{name: "health details need the token", method: "GET", path: "/api/health", wantStatus: 200, wantIn: []string{`"status":"ok"`, `"lag":{`, `"log":{`, `"sandbox":`, `"app":"webtest"`}},
		{name: "elements need a token", method: "GET", path: "/api/elements", noAuth: true, wantStatus: 401, wantIn: []string{"unauthorized"}},
		{name: "wrong token", method: "GET", path: "/api/elements", token: "nope", wantStatus: 401, wantIn: []string{"wrong bearer token"}},
		{name: "list elements", method: "GET", path: "/api/elements", wantStatus: 200, wantIn: []string{`"fullName":"services.MathSvc"`, `"layer":"instance"`, `"origin":"app"`, `"fullName":"events.services.EventSvc"`, `"origin":"builtin"`}},
		{name: "get element", method: "GET", path: "/api/elements/services.MathSvc", wantStatus: 200, wantIn: []string{`"definition"`, `"files"`, `index.js`, `"errors":[]`}},
		{name: "get built-in", method: "GET", path: "/api/elements/events.NormalType", wantStatus: 200, wantIn: []string{`"origin":"builtin"`}},
		{name: "unknown element", method: "GET", path: "/api/elements/services.Nope", wantStatus: 404, wantIn: []string{"not_found", "services.Nope"}},
		{name: "hostile element path", method: "GET", path: "/api/elements/..%2F..%2Fetc%2Fpasswd", wantStatus: 400, wantIn: []string{"not an element fullName"}},
		{name: "call positional", method: "POST", path: "/api/services/services.MathSvc/add", body: `[2, 3]`, wantStatus: 200, wantIn: []string{`"result":5`, `"adding"`}},
		{name: "call one object", method: "POST", path: "/api/services/services.MathSvc/echo", body: `{"a": {"b": [1, "two"]}}`, wantStatus: 200, wantIn: []string{`"result":{"a":{"b":[1,"two"]}}`}},
		{name: "call no body", method: "POST", path: "/api/services/services.MathSvc/echo", wantStatus: 200, wantIn: []string{`"result":null`}},
		{name: "bad json", method: "POST", path: "/api/services/services.MathSvc/echo", body: `{"a":`, wantStatus: 400, wantIn: []string{"invalid_argument", "not valid JSON"}},
		{name: "scalar body", method: "POST", path: "/api/services/services.MathSvc/echo", body: `42`, wantStatus: 400, wantIn: []string{"JSON object", "got a number"}},
		{name: "oversized body", method: "POST", path: "/api/services/services.MathSvc/echo", body: big, wantStatus: 413, wantIn: []string{"body_too_large"}},
		{name: "unknown function", method: "POST", path: "/api/services/services.MathSvc/nope", wantStatus: 404, wantIn: []string{`no function \"nope\"`, "add"}},
		{name: "unknown service", method: "POST", path: "/api/services/services.Nope/x", wantStatus: 404, wantIn: []string{"not_found"}},
		{name: "not a service", method: "POST", path: "/api/services/events.NormalType/x", wantStatus: 404, wantIn: []string{"not a service"}},
		{name: "hostile function name", method: "POST", path: "/api/services/services.MathSvc/..%2Fx", wantStatus: 400, wantIn: []string{"not a function name"}},
		{name: "js throws", method: "POST", path: "/api/services/services.MathSvc/boom", wantStatus: 422, wantIn: []string{`"code":"js_error"`, "kaboom", "services/MathSvc/index.js:4:"}},
		{name: "built-in Go service, named args", method: "POST", path: "/api/services/services.TaskSvc/getTaskTmplList", body: `{"queryStr": ""}`, wantStatus: 200, wantIn: []string{`"result":[]`}},
		{name: "built-in Go service, wrong type", method: "POST", path: "/api/services/services.TaskSvc/getTaskTmplList", body: `[5]`, wantStatus: 400, wantIn: []string{"must be a string"}},
		{name: "built-in missing argument", method: "POST", path: "/api/services/services.TaskSvc/createTimerTask", body: `[]`, wantStatus: 400, wantIn: []string{"invalid_argument", `missing argument \"fullName\"`}},
		{name: "unknown route", method: "GET", path: "/api/nope", wantStatus: 404},
		{name: "send event", method: "POST", path: "/api/events/send", body: `{"sender": "models.UserModel", "kwargs": {"userId": 1}}`, wantStatus: 200,
			wantIn: []string{`"requestId":"req_`, `"eventId":"evt_`, `"subscribers":[]`, `"note"`}},
		{name: "send event kwargs not an object", method: "POST", path: "/api/events/send", body: `{"sender": "a", "kwargs": [1]}`, wantStatus: 400, wantIn: []string{"kwargs must be an object"}},
		{name: "send event no kwargs", method: "POST", path: "/api/events/send", body: `{"sender": "a"}`, wantStatus: 400, wantIn: []string{"kwargs must be an object, got null"}},
		{name: "send event no sender", method: "POST", path: "/api/events/send", body: `{"kwargs": {}}`, wantStatus: 400, wantIn: []string{"sender"}},
		{name: "send event unknown field", method: "POST", path: "/api/events/send", body: `{"sender": "a", "kwargs": {}, "priority": 1}`, wantStatus: 400, wantIn: []string{`unknown field \"priority\"`}},
		{name: "send event eventType wrong type", method: "POST", path: "/api/events/send", body: `{"sender": "a", "kwargs": {}, "eventType": 5}`, wantStatus: 400, wantIn: []string{"eventType must be a string"}},
		{name: "send event not an object", method: "POST", path: "/api/events/send", body: `[1]`, wantStatus: 400},
		{name: "send event oversized", method: "POST", path: "/api/events/send", body: big, wantStatus: 413},
		{name: "node operation on an unknown node", method: "POST", path: "/api/nodes/node_1/pause", wantStatus: 404, wantIn: []string{"node_1"}},
		{name: "unknown node operation", method: "POST", path: "/api/nodes/node_1/explode", wantStatus: 404, wantIn: []string{"no node operation"}},
		{name: "request operation on an unknown request", method: "POST", path: "/api/requests/req_1/revoke", wantStatus: 404, wantIn: []string{"req_1"}},
		{name: "unknown request operation", method: "POST", path: "/api/requests/req_1/explode", wantStatus: 404},
		{name: "hostile node id", method: "POST", path: "/api/nodes/..%2F..%2Fx/callback", wantStatus: 400, wantIn: []string{"not an id"}},
		{name: "callback of an unknown node", method: "POST", path: "/api/nodes/node_nope/callback", body: `{"ok": 1}`, wantStatus: 404},
		{name: "callback data not JSON", method: "POST", path: "/api/nodes/node_1/callback", body: `{`, wantStatus: 400, wantIn: []string{"not valid JSON"}},
		{name: "editor page", method: "GET", path: "/", noAuth: true, wantStatus: 200, wantIn: []string{"<title>Trellis</title>"}},
	} {
		t.Run(sc.name, func(t *testing.T) { run(t, handler, sc) })
	}
}

func TestAPIIsolatedTimeout(t *testing.T) {
	t.Parallel()
	h, err := host.New(host.Config{AppDir: writeApp(t, testApp), Workers: 1}, backends.Open)
	require.NoError(t, err)
	cfg := h.Config()
	require.Equal(t, host.SandboxIsolated, cfg.Sandbox, "isolated is the default")
	h2, err := host.New(host.Config{AppDir: cfg.AppDir, Workers: 1, Limits: limitsTimeout()}, backends.Open)
	require.NoError(t, err)
	require.NoError(t, h2.Start(context.Background()))
	t.Cleanup(func() { _ = h2.Stop(context.Background()) })
	srv, err := New(depsOf(h2), Options{Token: testToken})
	require.NoError(t, err)
	run(t, srv.Handler(), scenario{method: "POST", path: "/api/services/services.MathSvc/spin", wantStatus: 422, wantIn: []string{`"code":"timeout"`}})
	run(t, srv.Handler(), scenario{method: "POST", path: "/api/services/services.MathSvc/add", body: `[1, 1]`, wantStatus: 200, wantIn: []string{`"result":2`}})
}
