package web

// The rows of the route sweep (routes_table_test.go), route by route.

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func keysOf(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Row makers: the error rows most routes have.

func e400(name, path, body string, in ...string) routeCase {
	return routeCase{name: name, path: path, body: body, want: 400, code: "invalid_argument", in: in}
}

func e404(name, path, body string, in ...string) routeCase {
	return routeCase{name: name, path: path, body: body, want: 404, code: "not_found", in: in}
}

func okRow(name, path, body string, in ...string) routeCase {
	return routeCase{name: name, path: path, body: body, want: 200, jsonBody: true, in: in}
}

// badJSONRows are the rows of a route that reads a JSON body: malformed, empty, and shapes it
// does not take.
func badJSONRows(path string, object bool) []routeCase {
	rows := []routeCase{
		e400("body: malformed JSON", path, `{"a":`, "not valid JSON"),
		e400("body: trailing garbage", path, `{} {}`),
		e400("body: a number out of range", path, `{"a": 1e99999}`, "out of range"),
	}
	if object {
		rows = append(rows,
			e400("body: an array", path, `[1]`, "JSON object"),
			e400("body: a string", path, `"x"`, "JSON object"),
			e400("body: null", path, `null`, "JSON object"),
			e400("body: empty", path, ``),
		)
	}
	return rows
}

// sweepTable is every route's rows, keyed "METHOD pattern" as echo registers it.
func sweepTable(f *sweep) map[string]routeSpec {
	t := f.t
	ids := map[string][]int{"fullName": {400}, "function": {400}, "requestId": {400}, "nodeId": {400}, "taskId": {400}, "id": {400}}

	table := map[string]routeSpec{
		// ---- health, OpenAPI, session ----
		"GET /api/health": {public: true,
			ok: func() routeCase {
				return okRow("health", "/api/health", "", `"status":"ok"`, `"backends":{`, `"bus":"embedded"`, `"version"`)
			},
			rows: []routeCase{
				// Without the token: status, version and backends only (CONTRACT §6) — not the
				// app's listener names, their lag, or the log writer (issue 12, case 8).
				{name: "no token: the public shape only", path: "/api/health", auth: authNone, want: 200, jsonBody: true,
					in: []string{`"version"`}, check: func(t *testing.T, rec *httptest.ResponseRecorder) {
						m := decodeRec(t, rec)
						require.ElementsMatch(t, []string{"status", "version", "backends"}, keysOf(m), rec.Body.String())
						require.ElementsMatch(t, []string{"bus", "logs", "db"}, keysOf(m["backends"].(map[string]any)), rec.Body.String())
						require.NotContains(t, rec.Body.String(), "OnShop")
					}},
				{name: "a wrong token: the public shape only", path: "/api/health", auth: authBadBearer, want: 200, jsonBody: true,
					notIn: []string{"OnShop", `"lag"`, `"log"`, `"app"`}},
				{name: "a forged cookie: the public shape only", path: "/api/health", auth: authForgedCookie, want: 200, jsonBody: true,
					notIn: []string{"OnShop", `"lag"`, `"log"`, `"app"`}},
				okRow("the token: the details", "/api/health", "", `"lag":{"events.OnShop":`, `"log":{`, `"app":"sweep"`, `"problems":0`, `"sandbox":"inprocess"`),
				{name: "the session cookie: the details", path: "/api/health", auth: authCookie, want: 200, jsonBody: true,
					in: []string{`"lag":{"events.OnShop":`, `"app":"sweep"`}},
				{name: "HEAD is not the probe", method: "HEAD", path: "/api/health", auth: authBearer, wantAny: []int{404, 405}},
			},
		},
		"GET /api/openapi.json": {public: true,
			ok: func() routeCase { return okRow("document", "/api/openapi.json", "", `"openapi":"3.0.3"`) },
			rows: []routeCase{
				okRow("every route is in it", "/api/openapi.json", "", `"/api/elements/{fullName}"`, `"/api/events/send"`),
			},
		},
		"POST /api/session": {public: true, readsBody: true,
			ok: func() routeCase {
				c := okRow("login", "/api/session", `{"token": "`+testToken+`"}`, `"expiresAt"`)
				c.check = func(t *testing.T, rec *httptest.ResponseRecorder) {
					require.Contains(t, strings.Join(rec.Header().Values("Set-Cookie"), "\n"), sessionCookie+"=", "sets the session cookie")
				}
				return c
			},
			rows: append([]routeCase{
				{name: "wrong token", path: "/api/session", body: `{"token": "nope"}`, want: 401, code: "unauthorized", in: []string{"wrong token"}, notIn: []string{testToken},
					check: nil},
				e400("token missing", "/api/session", `{}`, "token"),
				e400("token not a string", "/api/session", `{"token": 5}`, "token"),
				e400("unknown field", "/api/session", `{"token": "x", "user": "ada"}`, `\"user\"`),
				{name: "from another site", path: "/api/session", body: `{"token": "` + testToken + `"}`, headers: map[string]string{"Origin": "http://evil.example"},
					want: 403, code: codeForbidden, check: nil},
			}, badJSONRows("/api/session", true)...),
		},
		"DELETE /api/session": {public: true,
			ok: func() routeCase {
				ck := f.login(t)
				c := okRow("logout", "/api/session", "", `"loggedOut":true`)
				c.cookie = ck
				c.check = func(t *testing.T, rec *httptest.ResponseRecorder) {
					require.Contains(t, strings.Join(rec.Header().Values("Set-Cookie"), "\n"), "Max-Age=0", "clears the cookie")
				}
				c.unchanged = func(t *testing.T) {
					require.True(t, f.srv.sessions.valid(ck), "a refused logout keeps the session")
				}
				return c
			},
			rows: []routeCase{
				func() routeCase {
					ck := f.login(t)
					return routeCase{name: "the session ends", path: "/api/session", auth: authCookieSame, cookie: ck, want: 200,
						check: func(t *testing.T, _ *httptest.ResponseRecorder) {
							require.False(t, f.srv.sessions.valid(ck))
							rec := f.do(t, routeCase{method: "GET", path: "/api/elements", auth: authCookie, cookie: ck})
							require.Equal(t, 401, rec.Code)
						}}
				}(),
				okRow("without a session", "/api/session", "", `"loggedOut":true`),
			},
		},

		// ---- elements ----
		"GET /api/elements": {
			ok: func() routeCase {
				return okRow("list", "/api/elements", "", `"fullName":"services.MathSvc"`, `"fullName":"events.OnShop"`, `"origin":"builtin"`)
			},
			rows: []routeCase{
				okRow("query string ignored", "/api/elements?x=1", "", `"fullName":"models.Item"`),
			},
		},
		"GET /api/elements/:fullName": {hostile: ids,
			ok: func() routeCase {
				return okRow("app element", "/api/elements/services.MathSvc", "", `"definition"`, `"files"`, `"version"`, `"errors":[]`)
			},
			rows: []routeCase{
				okRow("built-in", "/api/elements/events.NormalType", "", `"origin":"builtin"`),
				okRow("percent-encoded name", "/api/elements/services%2EMathSvc", "", `"fullName":"services.MathSvc"`),
				e404("unknown element", "/api/elements/services.Nope", "", "services.Nope"),
				e404("unknown app prefix", "/api/elements/nothing.AtAll", "", "nothing.AtAll"),
				e400("empty segment", "/api/elements/services..MathSvc", "", "not an element fullName"),
				e400("trailing dot", "/api/elements/services.MathSvc.", ""),
			},
		},
		"GET /api/elements/:fullName/schema": {hostile: ids,
			ok: func() routeCase {
				return okRow("schema", "/api/elements/services.MathSvc/schema", "", `"layer"`)
			},
			rows: []routeCase{
				okRow("of a model", "/api/elements/models.Item/schema", "", `"fields"`),
				e404("unknown element", "/api/elements/services.Nope/schema", "", "services.Nope"),
			},
		},
		"PUT /api/elements/:fullName":        f.putElementSpec(ids),
		"DELETE /api/elements/:fullName":     f.deleteElementSpec(ids),
		"POST /api/elements/:fullName/run":   f.runDraftSpec(ids),
		"POST /api/elements/:fullName/check": f.checkDraftSpec(ids),

		// ---- services ----
		"POST /api/services/:fullName/:function": f.callServiceSpec(ids),

		// ---- events and the log ----
		"GET /api/events/logs": {
			ok: func() routeCase {
				return okRow("query", "/api/events/logs?fullName=events.OnShop", "", `"totalCount":`, `"rowDatas":[`)
			},
			rows: []routeCase{
				okRow("by kwargs", "/api/events/logs?kwargs.marker=seed-ok", "", `"totalCount":1`, f.nodeID),
				okRow("unknown element finds nothing", "/api/events/logs?fullName=events.Nope", "", `"totalCount":0`),
				okRow("dead letters", "/api/events/logs?stage=deadLettered&kwargs.marker=seed-dead", "", `"totalCount":1`),
				e400("status unknown", "/api/events/logs?status=done", "", "status"),
				e400("stage unknown", "/api/events/logs?stage=dead", "", "stage"),
				e400("page not a number", "/api/events/logs?page=two", "", "page"),
				e400("page 0", "/api/events/logs?page=0", "", "page"),
				e400("pageSize too big", "/api/events/logs?pageSize=100000", "", "pageSize"),
				e400("pageSize negative", "/api/events/logs?pageSize=-1", "", "pageSize"),
				e400("page past any row (its offset would wrap around)", "/api/events/logs?page=9223372036854775806", "", "page", "9223372036854775806"),
				e400("page past any row, largest pageSize", "/api/events/logs?page=9223372036854775&pageSize=1000", "", "page"),
				e400("page beyond 64 bits", "/api/events/logs?page=9223372036854775808", "", "page"),
				e400("pageSize huge", "/api/events/logs?pageSize=9223372036854775807", "", "pageSize"),
				e400("page the most negative", "/api/events/logs?page=-9223372036854775808", "", "page"),
				okRow("a page past the rows is empty", "/api/events/logs?page=100000&pageSize=1000", "", `"rowDatas":[]`),
				e400("startTime unparseable", "/api/events/logs?startTime=yesterday", "", "startTime"),
				e400("endTime unparseable", "/api/events/logs?endTime=2024-13-45", "", "endTime"),
				e400("times inverted", "/api/events/logs?startTime=2024-01-16&endTime=2024-01-15", "", "not before"),
				e400("kwargs key hostile", "/api/events/logs?kwargs.a%27b=1", "", "kwargs"),
			},
		},
		"GET /api/events/requests/:requestId": {hostile: ids,
			ok: func() routeCase {
				return okRow("request", "/api/events/requests/"+f.reqID, "", f.nodeID, `"fullName":"events.OnShop"`)
			},
			rows: []routeCase{
				e404("unknown request", "/api/events/requests/req_nope", "", "req_nope"),
			},
		},
		"GET /api/events/requests/:requestId/nodes/:nodeId": {hostile: ids,
			ok: func() routeCase {
				return okRow("node", "/api/events/requests/"+f.reqID+"/nodes/"+f.nodeID, "", f.nodeID)
			},
			rows: []routeCase{
				e404("unknown node", "/api/events/requests/"+f.reqID+"/nodes/node_nope", "", "node_nope"),
				e404("unknown request", "/api/events/requests/req_nope/nodes/"+f.nodeID, "", "req_nope"),
				e404("node of another request", "/api/events/requests/"+f.deadReq+"/nodes/"+f.nodeID, ""),
			},
		},
		"GET /api/events/nodes/:nodeId/attempts": {hostile: ids,
			ok: func() routeCase {
				return okRow("attempts", "/api/events/nodes/"+f.nodeID+"/attempts", "", `"attempt":1`)
			},
			rows: []routeCase{
				e404("unknown node", "/api/events/nodes/node_nope/attempts", "", "node_nope"),
			},
		},
		"POST /api/events/send": f.sendSpec(),
		"POST /api/events/resend": {
			ok: func() routeCase {
				return okRow("matches nothing", "/api/events/resend?fullName=events.OnShop&kwargs.marker=none-"+f.uniq(), "", `"resent":[]`, `"skipped":[]`)
			},
			rows: []routeCase{
				{name: "the dead letter runs again", path: "/api/events/resend?stage=deadLettered&kwargs.marker=seed-dead", want: 200, jsonBody: true,
					in: []string{`"resent":[{`, f.deadNode}, check: func(t *testing.T, _ *httptest.ResponseRecorder) {
						f.waitLogged(t, "kwargs.marker=seed-dead&stage=deadLettered&status=fail", 1)
						require.Eventually(t, func() bool { return f.attemptDone(t, f.deadNode, 2) }, 20*time.Second, 20*time.Millisecond,
							"a second attempt")
					}},
				e400("status unknown", "/api/events/resend?status=done", "", "status"),
				e400("stage unknown", "/api/events/resend?stage=dead", "", "stage"),
				e400("page not a number", "/api/events/resend?page=x", "", "page"),
				func() routeCase {
					c := e400("page past any row resends nothing", "/api/events/resend?stage=deadLettered&kwargs.marker=seed-dead&page=9223372036854775806", "", "page")
					c.unchanged = func(t *testing.T) {
						require.Equal(t, 0, f.logCount(t, "kwargs.marker=seed-dead&stage=resent"), "no node was resent")
					}
					return c
				}(),
				e400("startTime unparseable", "/api/events/resend?startTime=soon", "", "startTime"),
			},
		},
		"GET /api/events/listeners": {
			ok: func() routeCase {
				return okRow("listeners", "/api/events/listeners", "", `"fullName":"events.OnShop"`, `"sender":"shop"`)
			},
			rows: []routeCase{okRow("policy shown", "/api/events/listeners", "", `"policy":"none"`)},
		},

		// ---- node and request operations ----
		"POST /api/nodes/:nodeId/:op": f.nodeOpSpec(),
		"POST /api/requests/:requestId/:op": {hostile: map[string][]int{"requestId": {400}, "op": {404}},
			ok: func() routeCase {
				// The seeded request has finished: pausing it is refused, naming its state.
				return routeCase{name: "pause a finished request", path: "/api/requests/" + f.reqID + "/pause", want: 409, code: "conflict", in: []string{"finished"}}
			},
			rows: []routeCase{
				{name: "resume a request that is not paused", path: "/api/requests/" + f.reqID + "/resume", want: 409, code: "conflict", in: []string{"finished"}},
				{name: "revoke a finished request", path: "/api/requests/" + f.reqID + "/revoke", want: 409, code: "conflict", in: []string{"finished"}},
				e404("pause an unknown request", "/api/requests/req_nope/pause", "", "req_nope"),
				e404("revoke an unknown request", "/api/requests/req_nope/revoke", "", "req_nope"),
				e404("unknown operation", "/api/requests/"+f.reqID+"/explode", "", "explode", "revoke"),
			},
		},

		// ---- tasks ----
		"GET /api/tasks/templates": {
			ok: func() routeCase {
				return okRow("search", "/api/tasks/templates?q=onc", "", `"fullName":"tasks.Once"`)
			},
			rows: []routeCase{
				okRow("all", "/api/tasks/templates", "", `"fullName":"tasks.Once"`),
				okRow("none match", "/api/tasks/templates?q=zzz", "", `[]`),
			},
		},
		"POST /api/tasks/templates/:fullName/:op": f.templateOpSpec(),
		"POST /api/tasks":                         f.createTaskSpec(),
		"GET /api/tasks":                          f.listTasksSpec(),
		"GET /api/tasks/:taskId":                  f.getTaskSpec(ids),
		"POST /api/tasks/:taskId/:op":             f.taskOpSpec(),
		"GET /api/models/:fullName/rows":          f.queryRowsSpec(ids),
		"POST /api/models/:fullName/rows":         f.createRowsSpec(ids),
		"GET /api/models/:fullName/rows/:id": {hostile: ids,
			ok: func() routeCase {
				return okRow("row", "/api/models/models.Item/rows/"+f.rowID, "", `"name":"seed"`)
			},
			rows: []routeCase{
				e400("id not a number", "/api/models/models.Item/rows/abc", "", "abc"),
				e400("id zero", "/api/models/models.Item/rows/0", "", "positive"),
				e400("id negative", "/api/models/models.Item/rows/-1", "", "positive"),
				e400("id too big", "/api/models/models.Item/rows/99999999999999999999", "", "whole number"),
				e404("unknown id", "/api/models/models.Item/rows/987654", "", "987654"),
				e404("unknown model", "/api/models/models.Nope/rows/1", "", "models.Nope"),
				e404("not a model", "/api/models/services.MathSvc/rows/1", "", "services.MathSvc"),
			},
		},
		"PATCH /api/models/:fullName/rows/:id":  f.updateRowSpec(ids),
		"DELETE /api/models/:fullName/rows/:id": f.deleteRowSpec(ids),

		// ---- analytics ----
		"GET /api/analytics/summary": {
			ok: func() routeCase {
				return okRow("summary", "/api/analytics/summary", "", `"elements":`, `"start":`)
			},
			rows: []routeCase{
				okRow("one element", "/api/analytics/summary?fullName=events.OnShop", "", `"events.OnShop"`),
				okRow("epoch ms", fmt.Sprintf("/api/analytics/summary?start=%d", time.Now().Add(-time.Hour).UnixMilli()), "", `"elements":`),
				e400("start unparseable", "/api/analytics/summary?start=yesterday", "", "start"),
				e400("end unparseable", "/api/analytics/summary?end=never", "", "end"),
				e400("inverted", "/api/analytics/summary?start=2024-01-16&end=2024-01-15", ""),
			},
		},
		"GET /api/analytics/timeseries": {
			ok: func() routeCase {
				return okRow("timeseries", "/api/analytics/timeseries?bucket=1h", "", `"bucket":"1h0m0s"`, `"points":[`)
			},
			rows: []routeCase{
				okRow("a day bucket", "/api/analytics/timeseries?bucket=1d&start=2024-01-01&end=2024-01-10", "", `"bucket":"24h0m0s"`),
				e400("bucket not a duration", "/api/analytics/timeseries?bucket=hourly", "", "bucket"),
				e400("bucket too small", "/api/analytics/timeseries?bucket=1s", "", "bucket"),
				e400("too many buckets", "/api/analytics/timeseries?start=2000-01-01&end=2024-01-01&bucket=1m", "", "bucket"),
				e400("start unparseable", "/api/analytics/timeseries?start=x", "", "start"),
			},
		},

		// ---- signals ----
		"GET /api/signals/stream": {
			ok: func() routeCase {
				return routeCase{name: "held signals, not followed", path: "/api/signals/stream?follow=false", want: 200,
					in: []string{": signals are off"}, check: func(t *testing.T, rec *httptest.ResponseRecorder) {
						require.Equal(t, "text/event-stream; charset=utf-8", rec.Header().Get("Content-Type"))
						require.Equal(t, "no-cache", rec.Header().Get("Cache-Control"))
					}}
			},
			rows: []routeCase{
				{name: "a filter", path: "/api/signals/stream?follow=false&eventTypes=node_enter,%20node_finish", want: 200},
				{name: "a Last-Event-ID", path: "/api/signals/stream?follow=0", headers: map[string]string{"Last-Event-ID": "1712345678901-0"}, want: 200},
				{name: "lastEventId in the query", path: "/api/signals/stream?follow=false&lastEventId=42", want: 200},
				e400("an unknown event type", "/api/signals/stream?follow=false&eventTypes=node_enter,node_finsh", "", `\"node_finsh\" is no signal`),
				e400("a gateway signal", "/api/signals/stream?follow=false&eventTypes=pre_skip_exclusive_gateway", "", "pre_skip_exclusive_gateway"),
				e400("an empty event type", "/api/signals/stream?follow=false&eventTypes=node_enter,", "", "eventTypes"),
				e400("follow not a boolean", "/api/signals/stream?follow=sometimes", "", "follow"),
				e400("an unknown parameter", "/api/signals/stream?follow=false&since=1", "", "since"),
				{name: "a Last-Event-ID that is no id", path: "/api/signals/stream?follow=false", headers: map[string]string{"Last-Event-ID": "../etc"},
					want: 400, code: "invalid_argument", in: []string{"Last-Event-ID"}},
				e400("a lastEventId that is no id", "/api/signals/stream?follow=false&lastEventId=x-y", "", "not a signal id"),
			},
		},

		// ---- metrics ----
		"GET /metrics": {
			ok: func() routeCase {
				return routeCase{name: "scrape", path: "/metrics", want: 200, in: []string{"# TYPE trellis_http_requests_total counter"},
					check: func(t *testing.T, rec *httptest.ResponseRecorder) {
						require.True(t, strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain"), rec.Header().Get("Content-Type"))
					}}
			},
			rows: []routeCase{
				{name: "routes by pattern, not by path", path: "/metrics", want: 200,
					in:    []string{`trellis_http_requests_total{method="GET",route="/api/elements/:fullName",status="200"}`},
					notIn: []string{`route="/api/elements/services.MathSvc"`}},
				{name: "no token", path: "/metrics", auth: authNone, want: 401, code: "unauthorized", in: []string{"--metrics-public"}},
			},
		},

		// ---- fallbacks: unknown API routes answer JSON, every other path the editor ----
		"ANY /api/*": {hostile: map[string][]int{"*": {404}},
			ok: func() routeCase {
				return routeCase{name: "unknown API route", method: "GET", path: "/api/nope", want: 404, code: "not_found", in: []string{"no API route"}}
			},
			rows: []routeCase{
				{name: "POST", method: "POST", path: "/api/nope", body: `{}`, want: 404, code: "not_found"},
				{name: "DELETE", method: "DELETE", path: "/api/nope/deeper", want: 404, code: "not_found"},
				{name: "OPTIONS", method: "OPTIONS", path: "/api/elements", want: 404, code: "not_found"},
				{name: "a method another path has", method: "PUT", path: "/api/elements", body: `{}`, wantAny: []int{404, 405}},
				{name: "no token first", method: "GET", path: "/api/nope", auth: authNone, want: 401, code: "unauthorized"},
				{name: "/api itself", method: "GET", path: "/api", want: 404, code: "not_found"},
				{name: "/api itself needs the token", method: "GET", path: "/api", auth: authNone, want: 401, code: "unauthorized"},
				{name: "trailing slash", method: "GET", path: "/api/elements/", wantAny: []int{400, 404}},
			},
		},
		"GET /*": {public: true, hostile: map[string][]int{"*": {200, 404}},
			ok: func() routeCase {
				return routeCase{name: "editor", path: "/", want: 200, in: []string{"<title>Trellis</title>"}}
			},
			rows: []routeCase{
				{name: "a page of the editor", path: "/elements/services.MathSvc", want: 200, in: []string{"<title>Trellis</title>"},
					check: func(t *testing.T, rec *httptest.ResponseRecorder) {
						require.Contains(t, rec.Header().Get("Content-Security-Policy"), "default-src 'self'")
					}},
				{name: "index.html", path: "/index.html", want: 200, in: []string{"<title>Trellis</title>"}},
				{name: "a missing asset", path: "/assets/nope-123.js", want: 404, code: "not_found"},
				{name: "a missing file of a known kind", path: "/nope.css", want: 404, code: "not_found"},
				{name: "traversal to the Go sources", path: "/..%2F..%2Froutes_ui.go", wantAny: []int{200, 404}, notIn: []string{"package web"}},
				{name: "traversal to the embed root", path: "/../ui/dist/index.html", want: 404, code: "not_found"},
			},
		},
		"HEAD /*": {public: true, hostile: map[string][]int{"*": {200, 404}},
			ok: func() routeCase {
				return routeCase{name: "editor", method: "HEAD", path: "/", want: 200}
			},
			rows: []routeCase{
				{name: "a missing asset", method: "HEAD", path: "/assets/nope-123.js", want: 404},
			},
		},
	}
	return table
}

// ---- elements: save, delete, draft run ----

const sweepSvcDef = `{"title": "Sweep", "type": "services.NormalType"}`

func (f *sweep) putElementSpec(hostile map[string][]int) routeSpec {
	t := f.t
	put := func(def any, files map[string]string, extra map[string]any) string {
		m := map[string]any{"definition": def, "files": files}
		for k, v := range extra {
			m[k] = v
		}
		return jsonBody(t, m)
	}
	hi := map[string]string{"index.js": `exports.hi = function (n) { return "hi " + n; };`}
	nothingAt := func(rel string) func(*testing.T) {
		return func(t *testing.T) { f.requireNoPath(t, rel) }
	}
	refused := func(c routeCase, rel string) routeCase {
		c.unchanged = nothingAt(rel)
		return c
	}
	mathBefore := sweepApp["services/MathSvc/index.js"]
	return routeSpec{readsBody: true, hostile: hostile,
		ok: func() routeCase {
			n := "Put" + f.uniq()
			return routeCase{name: "create", path: "/api/elements/services." + n, body: put(sweepSvcDef, hi, nil), want: 201, jsonBody: true,
				in: []string{`"created":true`, `"version":"`},
				check: func(t *testing.T, _ *httptest.ResponseRecorder) {
					f.requireFile(t, "services/"+n+"/index.js", `"hi "`)
					f.requireFile(t, "services/"+n+"/e.json", `services.NormalType`)
					rec := f.do(t, routeCase{method: "POST", path: "/api/services/services." + n + "/hi", body: `["Ada"]`})
					require.Equal(t, 200, rec.Code, "the saved element runs: %s", rec.Body.String())
					require.Contains(t, rec.Body.String(), `"result":"hi Ada"`)
				},
				unchanged: nothingAt("services/" + n),
			}
		},
		rows: append([]routeCase{
			{name: "definition as an object", path: "/api/elements/services.PutObj", want: 201, jsonBody: true,
				body: put(map[string]any{"title": "Obj", "type": "services.NormalType"}, hi, nil),
				check: func(t *testing.T, _ *httptest.ResponseRecorder) {
					f.requireFile(t, "services/PutObj/e.json", `"type": "services.NormalType"`)
				}},
			{name: "replace without the version", path: "/api/elements/services.MathSvc", body: put(sweepSvcDef, hi, nil), want: 409, code: "conflict",
				in:        []string{"already exists", `"version":"`},
				unchanged: func(t *testing.T) { f.requireFile(t, "services/MathSvc/index.js", mathBefore) }},
			{name: "replace with a stale version", path: "/api/elements/services.MathSvc", body: put(sweepSvcDef, hi, map[string]any{"version": "0123"}), want: 409, code: "conflict",
				in:        []string{"0123"},
				unchanged: func(t *testing.T) { f.requireFile(t, "services/MathSvc/index.js", mathBefore) }},
			refused(routeCase{name: "invalid element: every problem", path: "/api/elements/services.PutBad", want: 422, code: "invalid_element",
				body: put(`{"title": "Bad", "type": "services.NoSuchType", "timout": "1s"}`, map[string]string{"index.js": "exports.f = function () {"}, nil),
				in:   []string{`"problems"`, "services.NoSuchType", `"js_syntax"`}}, "services/PutBad"),
			refused(e400("definition missing", "/api/elements/services.PutE1", `{"files": {}}`, "definition"), "services/PutE1"),
			refused(e400("definition a number", "/api/elements/services.PutE2", `{"definition": 5}`, "definition"), "services/PutE2"),
			refused(e400("definition an array", "/api/elements/services.PutE2b", `{"definition": []}`, "definition"), "services/PutE2b"),
			refused(e400("files not an object", "/api/elements/services.PutE3", put(sweepSvcDef, nil, map[string]any{"files": "index.js"}), "files"), "services/PutE3"),
			refused(e400("a file not a string", "/api/elements/services.PutE4", `{"definition": "{}", "files": {"index.js": 1}}`, "index.js"), "services/PutE4"),
			refused(e400("version not a string", "/api/elements/services.PutE5", put(sweepSvcDef, hi, map[string]any{"version": 5}), "version"), "services/PutE5"),
			refused(e400("unknown field", "/api/elements/services.PutE6", put(sweepSvcDef, hi, map[string]any{"mode": 1}), `\"mode\"`), "services/PutE6"),
			refused(e400("force not a boolean", "/api/elements/services.PutE7?force=yes", put(sweepSvcDef, hi, nil), "force"), "services/PutE7"),
			refused(e400("file name with ..", "/api/elements/services.PutE8", put(sweepSvcDef, map[string]string{"../../x.js": "1"}, nil), "../../x.js"), "services/PutE8"),
			refused(e400("absolute file name", "/api/elements/services.PutE9", put(sweepSvcDef, map[string]string{"/tmp/x.js": "1"}, nil), "/tmp/x.js"), "services/PutE9"),
			refused(e400("file name with NUL", "/api/elements/services.PutE10", put(sweepSvcDef, map[string]string{"x\x00.js": "1"}, nil)), "services/PutE10"),
			refused(e400("file name with backslashes", "/api/elements/services.PutE11", put(sweepSvcDef, map[string]string{`..\..\x.js`: "1"}, nil)), "services/PutE11"),
			refused(e400("a file of another kind", "/api/elements/services.PutE12", put(sweepSvcDef, map[string]string{"run.sh": "rm -rf /"}, nil), ".js"), "services/PutE12"),
			refused(e400("a very long file name", "/api/elements/services.PutE13", put(sweepSvcDef, map[string]string{strings.Repeat("a", 4000) + ".js": "1"}, nil)), "services/PutE13"),
		}, refusedAll(badJSONRows("/api/elements/services.PutJ", true), nothingAt("services/PutJ"))...),
	}
}

// refusedAll gives every row the same nothing-happened check.
func refusedAll(rows []routeCase, unchanged func(*testing.T)) []routeCase {
	for i := range rows {
		rows[i].unchanged = unchanged
	}
	return rows
}

func (f *sweep) deleteElementSpec(hostile map[string][]int) routeSpec {
	exists := func(rel string) func(*testing.T) {
		return func(t *testing.T) {
			_, ok := f.host.ElementVersion(strings.ReplaceAll(rel, "/", "."))
			require.True(t, ok, "%s is still there", rel)
		}
	}
	fresh := func(t *testing.T, rel string) {
		f.writeElement(t, rel, map[string]string{"e.json": sweepSvcDef, "index.js": `exports.x = function () { return 1; };`})
	}
	return routeSpec{hostile: hostile,
		ok: func() routeCase {
			n := "Del" + f.uniq()
			rel := "services/" + n
			return routeCase{name: "delete", path: "/api/elements/services." + n + "?force=true", want: 200, jsonBody: true, in: []string{`"deleted":true`},
				setup:     func(t *testing.T) { fresh(t, rel) },
				check:     func(t *testing.T, _ *httptest.ResponseRecorder) { f.requireNoPath(t, rel) },
				unchanged: exists(rel),
			}
		},
		rows: []routeCase{
			func() routeCase {
				rel := "services/DelVersioned"
				fresh(f.t, rel)
				v, ok := f.host.ElementVersion("services.DelVersioned")
				require.True(f.t, ok)
				return routeCase{name: "with the version read", path: "/api/elements/services.DelVersioned?version=" + v, want: 200, jsonBody: true,
					check: func(t *testing.T, _ *httptest.ResponseRecorder) { f.requireNoPath(t, rel) }}
			}(),
			e404("unknown element", "/api/elements/services.Nope?force=true", "", "services.Nope"),
			{name: "built-in", path: "/api/elements/events.NormalType?force=true", want: 409, code: "conflict", in: []string{"builtin"}},
			{name: "without the version", path: "/api/elements/services.MathSvc", want: 409, code: "conflict", in: []string{"version"},
				unchanged: exists("services/MathSvc")},
			{name: "a stale version", path: "/api/elements/services.MathSvc?version=0123", want: 409, code: "conflict", in: []string{"0123"},
				unchanged: exists("services/MathSvc")},
			func() routeCase {
				c := e400("force not a boolean", "/api/elements/services.MathSvc?force=maybe", "", "force")
				c.unchanged = exists("services/MathSvc")
				return c
			}(),
		},
	}
}

func (f *sweep) runDraftSpec(hostile map[string][]int) routeSpec {
	t := f.t
	draft := func(def string, js string, extra map[string]any) string {
		m := map[string]any{"definition": def, "files": map[string]string{"index.js": js}}
		for k, v := range extra {
			m[k] = v
		}
		return jsonBody(t, m)
	}
	const js = `exports.f = function (a) { console.log("drafting"); return "draft " + a; };`
	path := "/api/elements/services.MathSvc/run"
	return routeSpec{readsBody: true, hostile: hostile,
		ok: func() routeCase {
			n := "Draft" + f.uniq()
			return routeCase{name: "a new element's draft", path: "/api/elements/services." + n + "/run", want: 200, jsonBody: true,
				body: draft(sweepSvcDef, js, map[string]any{"function": "f", "args": []any{1}}),
				in:   []string{`"result":"draft 1"`, `"drafting"`, `"durationMs":`},
				check: func(t *testing.T, _ *httptest.ResponseRecorder) {
					f.requireNoPath(t, "services/"+n)
					require.Zero(t, f.logCount(t, "fullName=services."+n), "a draft run writes no log row")
				},
			}
		},
		rows: append([]routeCase{
			okRow("an app element's draft", path, draft(sweepSvcDef, js, map[string]any{"function": "f", "args": map[string]any{"k": 1}}), `"result":"draft [object Object]"`),
			okRow("a draft returning Infinity", path, draft(sweepSvcDef, `exports.f = function () { return [1 / 0, NaN]; };`, map[string]any{"function": "f"}), `"result":[null,null]`),
			okRow("a draft that throws answers its error", path, draft(sweepSvcDef, "exports.f = function () {\n  null.x;\n};", map[string]any{"function": "f"}),
				`"code":"js_error"`, "services/MathSvc/index.js:2:"),
			e400("function missing", path, draft(sweepSvcDef, js, nil), "function"),
			e400("function not a string", path, draft(sweepSvcDef, js, map[string]any{"function": 7}), "function"),
			e400("function not a name", path, draft(sweepSvcDef, js, map[string]any{"function": "../f"}), "function"),
			e400("args a number", path, draft(sweepSvcDef, js, map[string]any{"function": "f", "args": 5}), "args"),
			e400("args a string", path, draft(sweepSvcDef, js, map[string]any{"function": "f", "args": "x"}), "args"),
			e400("definition missing", path, `{"function": "f"}`, "definition"),
			e400("definition a number", path, `{"definition": 1, "function": "f"}`, "definition"),
			e400("files not an object", path, `{"definition": "{}", "files": [], "function": "f"}`, "files"),
			e400("unknown field", path, `{"definition": "{}", "function": "f", "save": true}`, `\"save\"`),
			e400("hostile file name", path, jsonBody(t, map[string]any{"definition": sweepSvcDef, "files": map[string]string{"../x.js": "1"}, "function": "f"}), "../x.js"),
			{name: "a draft with problems", path: path, want: 422, code: "invalid_element", body: draft(`{"title": "M", "type": "services.NormalType", "timout": 1}`, "exports.f = function (", map[string]any{"function": "f"}),
				in: []string{`"problems"`}},
			e400("not an instance", "/api/elements/services.SweepType/run", draft(`{"title": "T", "type": "services.Meta"}`, js, map[string]any{"function": "f"}), "not an instance"),
		}, badJSONRows(path, true)...),
	}
}

func (f *sweep) checkDraftSpec(hostile map[string][]int) routeSpec {
	t := f.t
	draft := func(def string, js string) string {
		return jsonBody(t, map[string]any{"definition": def, "files": map[string]string{"index.js": js}})
	}
	path := "/api/elements/services.MathSvc/check"
	mathBefore := sweepApp["services/MathSvc/index.js"]
	return routeSpec{readsBody: true, hostile: hostile,
		ok: func() routeCase {
			n := "Check" + f.uniq()
			return routeCase{name: "a valid new element", path: "/api/elements/services." + n + "/check", want: 200, jsonBody: true,
				body: draft(sweepSvcDef, `exports.f = function () { return 1; };`), in: []string{`{"problems":[]}`},
				check: func(t *testing.T, _ *httptest.ResponseRecorder) { f.requireNoPath(t, "services/"+n) },
			}
		},
		rows: append([]routeCase{
			{name: "problems are a 200 listing them", path: path, want: 200, jsonBody: true,
				body: draft(`{"title": "M", "type": "services.NormalType", "timout": 1}`, "exports.add = function ("),
				in:   []string{`"problems":[{`, `"unknown_field"`, `"js_syntax"`},
				check: func(t *testing.T, _ *httptest.ResponseRecorder) {
					f.requireFile(t, "services/MathSvc/index.js", mathBefore)
				}},
			e400("definition missing", path, `{"files": {}}`, "definition"),
			e400("definition a number", path, `{"definition": 3}`, "definition"),
			e400("files not an object", path, `{"definition": "{}", "files": "x"}`, "files"),
			e400("a file not a string", path, `{"definition": "{}", "files": {"index.js": false}}`, "index.js"),
			e400("unknown field", path, `{"definition": "{}", "function": "f"}`, `\"function\"`),
			e400("hostile file name", path, jsonBody(t, map[string]any{"definition": sweepSvcDef, "files": map[string]string{"../../x.js": "1"}}), "../../x.js"),
		}, badJSONRows(path, true)...),
	}
}

// ---- services ----

func (f *sweep) callServiceSpec(hostile map[string][]int) routeSpec {
	path := "/api/services/services.MathSvc/"
	return routeSpec{readsBody: true, hostile: hostile,
		ok: func() routeCase {
			var before int
			return routeCase{name: "positional", path: path + "add", body: `[2, 3]`, want: 200, jsonBody: true, in: []string{`"result":5`, `"adding"`},
				setup: func(t *testing.T) { before = f.logCount(t, "fullName=services.MathSvc") },
				check: func(t *testing.T, _ *httptest.ResponseRecorder) {
					require.Eventually(t, func() bool { return f.logCount(t, "fullName=services.MathSvc") > before }, 10*time.Second, 20*time.Millisecond,
						"a service call writes a log row")
				},
				unchanged: func(t *testing.T) {
					require.Equal(t, before, f.logCount(t, "fullName=services.MathSvc"), "a refused call runs nothing")
				},
			}
		},
		rows: []routeCase{
			okRow("one object", path+"echo", `{"a": [1, "two"]}`, `"result":{"a":[1,"two"]}`),
			okRow("no body", path+"echo", ``, `"result":null`),
			okRow("a big integer survives", path+"echo", `[9007199254740993]`, `"result":9007199254740993`),
			{name: "a JS error", path: path + "boom", want: 422, code: "js_error", in: []string{"kaboom", `"stack"`, "services/MathSvc/index.js:4:"}},
			{name: "NaN and Infinity are written as JSON.stringify writes them, in the answer and the log", path: path + "odd", want: 200, jsonBody: true,
				in: []string{`"result":{"inf":null,"list":[null,1],"nan":null}`},
				check: func(t *testing.T, _ *httptest.ResponseRecorder) {
					require.JSONEq(t, `{"inf":null,"list":[null,1],"nan":null}`, f.loggedResult(t, "fullName=services.MathSvc&sender=services.MathSvc.odd"),
						"the log row holds what the answer said")
				}},
			e400("a number out of range", path+"echo", `[1e99999]`, "out of range", "1e99999"),
			e400("a negative number out of range, nested", path+"echo", `{"a": [-1e400]}`, "out of range"),
			{name: "a JS error whose details hold Infinity", path: path + "boomOdd", want: 422, code: "js_error", in: []string{`"message":"odd"`, `"v":null`}},
			e404("unknown function", path+"nope", ``, `\"nope\"`),
			e404("unknown service", "/api/services/services.Nope/add", ``, "services.Nope"),
			e404("not a service", "/api/services/events.OnShop/handle", ``, "not a service"),
			e404("a model is not a service", "/api/services/models.Item/add", ``),
			e400("function not a name", path+"a-b", ``, "not a function name"),
			e400("scalar body", path+"echo", `42`, "JSON object"),
			e400("a string body", path+"echo", `"x"`),
			e400("malformed JSON", path+"echo", `{"a":`, "not valid JSON"),
			e400("Go service: wrong type", "/api/services/services.TaskSvc/getTaskTmplList", `[5]`, "must be a string"),
			e400("Go service: missing argument", "/api/services/services.TaskSvc/createTimerTask", `[]`, `\"fullName\"`),
			e400("Go service: unknown named argument", "/api/services/services.TaskSvc/getTaskTmplList", `{"query": ""}`, "query"),
			e400("EventSvc.getEventLog: page past any row", "/api/services/events.services.EventSvc/getEventLog", `{"fullName": "events.OnShop", "page": 9223372036854775806}`, "page"),
			e400("EventSvc.getEventLog: page past any row, positional", "/api/services/events.services.EventSvc/getEventLog", `["events.OnShop", null, null, null, 9223372036854775806, 1000]`, "page"),
			okRow("EventSvc.getEventLog: a page past the rows is empty", "/api/services/events.services.EventSvc/getEventLog", `{"fullName": "events.OnShop", "page": 100000, "pageSize": 1000}`, `"rowDatas":[]`),
		},
	}
}

// ---- events ----

func (f *sweep) sendSpec() routeSpec {
	path := "/api/events/send"
	return routeSpec{readsBody: true,
		ok: func() routeCase {
			m := "send-" + f.uniq()
			return routeCase{name: "send", path: path, body: `{"sender": "shop", "kwargs": {"n": 2, "marker": "` + m + `"}}`, want: 200, jsonBody: true,
				in: []string{`"requestId":"`, `"subscribers":["events.OnShop"]`},
				check: func(t *testing.T, rec *httptest.ResponseRecorder) {
					f.waitLogged(t, "kwargs.marker="+m+"&status=success", 1)
					req := decodeRec(t, rec)["requestId"].(string)
					require.Equal(t, 200, f.do(t, routeCase{method: "GET", path: "/api/events/requests/" + req}).Code)
				},
				unchanged: func(t *testing.T) { require.Zero(t, f.logCount(t, "kwargs.marker="+m)) },
			}
		},
		rows: append([]routeCase{
			okRow("nobody listens", path, `{"sender": "nobody", "kwargs": {}}`, `"subscribers":[]`, `"note"`),
			func() routeCase {
				m := "odd-" + f.uniq()
				return routeCase{name: "a handler's NaN and Infinity are logged as null", path: path, body: `{"sender": "shop", "kwargs": {"odd": true, "marker": "` + m + `"}}`,
					want: 200, jsonBody: true, check: func(t *testing.T, _ *httptest.ResponseRecorder) {
						f.waitLogged(t, "kwargs.marker="+m+"&status=success", 1)
						require.JSONEq(t, `{"v":null,"w":[null,2]}`, f.loggedResult(t, "kwargs.marker="+m))
					}}
			}(),
			okRow("with an eventType", path, `{"sender": "shop", "kwargs": {"n": 3}, "eventType": "events.NormalType"}`, `"requestId"`),
			e400("sender missing", path, `{"kwargs": {}}`, "sender"),
			e400("sender empty", path, `{"sender": "", "kwargs": {}}`, "sender"),
			e400("sender a number", path, `{"sender": 5, "kwargs": {}}`, "sender"),
			e400("kwargs missing", path, `{"sender": "shop"}`, "kwargs"),
			e400("kwargs an array", path, `{"sender": "shop", "kwargs": [1]}`, "kwargs"),
			e400("kwargs a string", path, `{"sender": "shop", "kwargs": "x"}`, "kwargs"),
			e400("eventType a number", path, `{"sender": "shop", "kwargs": {}, "eventType": 5}`, "eventType"),
			e400("unknown field", path, `{"sender": "shop", "kwargs": {}, "priority": 1}`, `\"priority\"`),
		}, badJSONRows(path, true)...),
	}
}

func (f *sweep) nodeOpSpec() routeSpec {
	t := f.t
	replay := func(js string) string {
		return jsonBody(t, map[string]any{"definition": sweepApp["events/OnShop/e.json"], "files": map[string]string{"index.js": js}})
	}
	replayOf := func(fullName any) string {
		return jsonBody(t, map[string]any{"definition": sweepApp["events/OnShop/e.json"], "fullName": fullName,
			"files": map[string]string{"index.js": `exports.handle = function (event) { return 0; };`}})
	}
	attempts := func(t *testing.T, node string) int {
		rec := f.do(t, routeCase{method: "GET", path: "/api/events/nodes/" + node + "/attempts"})
		require.Equal(t, 200, rec.Code, rec.Body.String())
		return strings.Count(rec.Body.String(), `"nodeId":"`+node+`"`)
	}
	return routeSpec{readsBody: true, hostile: map[string][]int{"nodeId": {400}, "op": {404}},
		ok: func() routeCase {
			var before int
			return routeCase{name: "replay a draft", path: "/api/nodes/" + f.nodeID + "/replay", want: 200, jsonBody: true,
				body: replay(`exports.handle = function (event) { return event.kwargs.n * 10; };`),
				in:   []string{`"logged":{`, `"draft":{`, `"result":10`},
				setup: func(t *testing.T) {
					require.NoError(t, f.host.LogWriter().Flush(t.Context()))
					before = attempts(t, f.nodeID)
				},
				check: func(t *testing.T, _ *httptest.ResponseRecorder) {
					require.NoError(t, f.host.LogWriter().Flush(t.Context()))
					require.Equal(t, before, attempts(t, f.nodeID), "a replay writes nothing to the log")
				},
			}
		},
		rows: []routeCase{
			{name: "resend", path: "/api/nodes/" + f.nodeID + "/resend", want: 200, jsonBody: true, in: []string{`"attempt":2`},
				check: func(t *testing.T, _ *httptest.ResponseRecorder) {
					// Done only when the second attempt has succeeded: the replay rows below count
					// the node's rows and must not see them still arriving.
					require.Eventually(t, func() bool { return f.attemptDone(t, f.nodeID, 2) }, 20*time.Second, 20*time.Millisecond,
						"the resent node runs again")
				}},
			e404("resend an unknown node", "/api/nodes/node_nope/resend", "", "node_nope"),
			e404("replay an unknown node", "/api/nodes/node_nope/replay", replay(`exports.handle = function () {};`), "node_nope"),
			okRow("replay naming its element", "/api/nodes/"+f.nodeID+"/replay", replayOf("events.OnShop"), `"draft":{`),
			{name: "replay naming another element", path: "/api/nodes/" + f.nodeID + "/replay", body: replayOf("services.MathSvc"), want: 409, code: "conflict",
				in: []string{"events.OnShop", "services.MathSvc"}},
			e400("replay with fullName a number", "/api/nodes/"+f.nodeID+"/replay", replayOf(5), "fullName"),
			e400("replay with fullName hostile", "/api/nodes/"+f.nodeID+"/replay", replayOf("../../etc"), "fullName"),
			e404("replay naming an element, unknown node", "/api/nodes/node_nope/replay", replayOf("events.OnShop"), "node_nope"),
			e400("replay without a definition", "/api/nodes/"+f.nodeID+"/replay", `{}`, "definition"),
			e400("replay with an unknown field", "/api/nodes/"+f.nodeID+"/replay", `{"definition": "{}", "function": "f"}`, `\"function\"`, "fullName"),
			e400("replay: malformed JSON", "/api/nodes/"+f.nodeID+"/replay", `{`, "not valid JSON"),
			{name: "replay a draft with problems", path: "/api/nodes/" + f.nodeID + "/replay", body: replay(`exports.handle = function (`), want: 422, code: "invalid_element"},
			e404("callback of an unknown node", "/api/nodes/node_nope/callback", `{"ok": 1}`, "node_nope"),
			e400("callback: malformed JSON", "/api/nodes/"+f.nodeID+"/callback", `{`, "not valid JSON"),
			{name: "pause a finished node", path: "/api/nodes/" + f.nodeID + "/pause", want: 409, code: "conflict", in: []string{"pause", "success/done"}},
			{name: "resume a node that is not paused", path: "/api/nodes/" + f.nodeID + "/resume", want: 409, code: "conflict", in: []string{"success/done"}},
			{name: "forcedFail a finished node", path: "/api/nodes/" + f.nodeID + "/forcedFail", body: `{"reason": "stop"}`, want: 409, code: "conflict", in: []string{"success/done"}},
			{name: "retry a node that did not fail", path: "/api/nodes/" + f.nodeID + "/retry", want: 409, code: "conflict", in: []string{"success/done"}},
			e404("pause an unknown node", "/api/nodes/node_nope/pause", "", "node_nope"),
			e404("retry an unknown node", "/api/nodes/node_nope/retry", `{"n": 2}`, "node_nope"),
			e400("retry: malformed JSON", "/api/nodes/"+f.deadNode+"/retry", `{`, "not valid JSON"),
			e400("retry: data not an object", "/api/nodes/"+f.deadNode+"/retry", `[1]`, "JSON object"),
			e400("forcedFail: reason not a string", "/api/nodes/"+f.nodeID+"/forcedFail", `{"reason": 5}`, "string"),
			e400("pause with a body", "/api/nodes/"+f.nodeID+"/pause", `{"x": 1}`, "takes no body"),
			{name: "skip a dead letter", path: "/api/nodes/" + f.deadNode + "/skip", want: 200, jsonBody: true, in: []string{`"stage":"skipped"`, `"status":"success"`}},
			{name: "skip it again", path: "/api/nodes/" + f.deadNode + "/skip", want: 409, code: "conflict", in: []string{"success/skipped"}},
			e404("unknown operation", "/api/nodes/"+f.nodeID+"/explode", "", "explode", "resend"),
		},
	}
}

// attemptDone reports whether attempt n of a node has ended (success or fail).
func (f *sweep) attemptDone(t *testing.T, node string, n int) bool {
	require.NoError(t, f.host.LogWriter().Flush(t.Context()))
	rec := f.do(t, routeCase{method: "GET", path: "/api/events/nodes/" + node + "/attempts"})
	require.Equal(t, 200, rec.Code, rec.Body.String())
	var rows []map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &rows))
	for _, r := range rows {
		if r["attempt"] == float64(n) && (r["status"] == "success" || r["status"] == "fail") {
			return true
		}
	}
	return false
}

// ---- tasks ----

func (f *sweep) taskCount(t *testing.T) int {
	return int(f.json(t, "GET", "/api/tasks", "")["totalCount"].(float64))
}

func (f *sweep) templateOpSpec() routeSpec {
	enabled := func(t *testing.T) bool {
		rec := f.do(t, routeCase{method: "GET", path: "/api/tasks/templates?q=tasks.Toggle"})
		require.Equal(t, 200, rec.Code, rec.Body.String())
		var rows []map[string]any
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &rows))
		require.Len(t, rows, 1, rec.Body.String())
		return rows[0]["enabled"] == true
	}
	toggleFile := func(t *testing.T) string {
		b, err := os.ReadFile(filepath.Join(f.dir, "tasks/Toggle/e.json"))
		require.NoError(t, err)
		return string(b)
	}
	var before int
	count := func(t *testing.T) { before = f.taskCount(t) }
	same := func(t *testing.T) { require.Equal(t, before, f.taskCount(t), "a refused run makes no task") }
	refused := func(c routeCase) routeCase {
		c.setup, c.unchanged = count, same
		return c
	}
	path := "/api/tasks/templates/tasks.Once/run"
	return routeSpec{readsBody: true, hostile: map[string][]int{"fullName": {400}, "op": {404}},
		ok: func() routeCase {
			n := f.uniq()
			return routeCase{name: "run now", path: path, body: `{"argDict": {"n": ` + n + `}}`, want: 200, jsonBody: true,
				in: []string{`"taskId":"`, `"fullName":"tasks.Once"`}, setup: count,
				check: func(t *testing.T, rec *httptest.ResponseRecorder) {
					id := decodeRec(t, rec)["taskId"].(string)
					require.Eventually(t, func() bool {
						return f.json(t, "GET", "/api/tasks/"+id, "")["status"] == "success"
					}, 20*time.Second, 20*time.Millisecond, "the task runs now")
					require.EqualValues(t, mustAtoi(t, n)+1, f.json(t, "GET", "/api/tasks/"+id, "")["result"])
				},
				unchanged: same,
			}
		},
		rows: []routeCase{
			okRow("run with the template's argDict", path, ``, `"taskId":"`),
			{name: "a task whose result is NaN succeeds with null, in its record and its log row", path: path, body: `{"argDict": {}}`, want: 200, jsonBody: true,
				check: func(t *testing.T, rec *httptest.ResponseRecorder) {
					id := decodeRec(t, rec)["taskId"].(string)
					var task map[string]any
					require.Eventually(t, func() bool {
						task = f.json(t, "GET", "/api/tasks/"+id, "")
						return task["status"] != "waiting" && task["status"] != "running"
					}, 20*time.Second, 20*time.Millisecond, "the task runs now")
					require.Equal(t, "success", task["status"], "undefined + 1 is NaN, which JSON writes as null: %v", task)
					require.Nil(t, task["result"])
					require.NoError(t, f.host.LogWriter().Flush(t.Context()))
					rec = f.do(t, routeCase{method: "GET", path: "/api/events/nodes/" + id + "/attempts"})
					require.Equal(t, 200, rec.Code, rec.Body.String())
					require.Contains(t, rec.Body.String(), `"result":null`)
					require.Contains(t, rec.Body.String(), `"status":"success"`, "the log row agrees")
				}},
			{name: "disable", path: "/api/tasks/templates/tasks.Toggle/disable", want: 200, jsonBody: true, in: []string{`"enabled":false`},
				check: func(t *testing.T, _ *httptest.ResponseRecorder) {
					require.Contains(t, toggleFile(t), `"enabled": false`)
					require.False(t, enabled(t))
				}},
			{name: "enable", path: "/api/tasks/templates/tasks.Toggle/enable", want: 200, jsonBody: true, in: []string{`"enabled":true`},
				check: func(t *testing.T, _ *httptest.ResponseRecorder) {
					require.Contains(t, toggleFile(t), `"title": "Toggle"`, "the rest of e.json is kept")
					require.True(t, enabled(t))
				}},
			e400("enable with a body of the wrong shape", "/api/tasks/templates/tasks.Toggle/enable", `[1]`, "JSON object"),
			e400("enable with an unknown field", "/api/tasks/templates/tasks.Toggle/enable", `{"argDict": {}}`, `\"argDict\"`),
			refused(e404("unknown template", "/api/tasks/templates/tasks.Nope/run", ``, "tasks.Nope")),
			refused(e404("not a template", "/api/tasks/templates/services.MathSvc/run", ``, "services.MathSvc")),
			refused(e404("disable an unknown template", "/api/tasks/templates/tasks.Nope/disable", ``, "tasks.Nope")),
			refused(e404("unknown operation", "/api/tasks/templates/tasks.Once/explode", ``, "explode", "enable")),
			refused(e400("argDict a string", path, `{"argDict": "x"}`, "argDict")),
			refused(e400("unknown field", path, `{"argDict": {}, "at": 1}`, `\"at\"`)),
			refused(e400("malformed JSON", path, `{"argDict":`, "not valid JSON")),
			refused(e400("an array", path, `[1]`, "JSON object")),
		},
	}
}

func mustAtoi(t *testing.T, s string) int {
	var n int
	_, err := fmt.Sscan(s, &n)
	require.NoError(t, err)
	return n
}

func (f *sweep) createTaskSpec() routeSpec {
	path := "/api/tasks"
	var before int
	count := func(t *testing.T) { before = f.taskCount(t) }
	same := func(t *testing.T) { require.Equal(t, before, f.taskCount(t), "a refused create makes no task") }
	refused := func(c routeCase) routeCase {
		c.setup, c.unchanged = count, same
		return c
	}
	later := time.Now().Add(time.Hour).UnixMilli()
	body := func(fields string) string {
		return `{` + fields + `}`
	}
	return routeSpec{readsBody: true,
		ok: func() routeCase {
			n := f.uniq()
			var before int
			return routeCase{name: "create", path: path, body: f.taskBody(`{"n": ` + n + `}`), want: 200, jsonBody: true,
				in:    []string{`"status":"waiting"`, `"taskId":"`},
				setup: func(t *testing.T) { before = f.taskCount(t) },
				check: func(t *testing.T, rec *httptest.ResponseRecorder) {
					id := decodeRec(t, rec)["taskId"].(string)
					got := f.json(t, "GET", "/api/tasks/"+id, "")
					require.Equal(t, "waiting", got["status"])
					require.Equal(t, before+1, f.taskCount(t), "one record more")
				},
				unchanged: func(t *testing.T) { require.Equal(t, before, f.taskCount(t), "a refused create makes no task") },
			}
		},
		rows: append([]routeCase{
			refused(e404("unknown template", path, fmt.Sprintf(`{"fullName": "tasks.Nope", "startTime": %d, "funcName": "run", "taskType": "tasks.NormalType", "argDict": {}}`, later), "tasks.Nope")),
			refused(e404("unknown function", path, fmt.Sprintf(`{"fullName": "tasks.Once", "startTime": %d, "funcName": "nope", "taskType": "tasks.NormalType", "argDict": {}}`, later), "nope")),
			refused(e400("fullName missing", path, body(fmt.Sprintf(`"startTime": %d, "funcName": "run", "taskType": "tasks.NormalType", "argDict": {}`, later)), "fullName")),
			refused(e400("fullName a number", path, body(fmt.Sprintf(`"fullName": 5, "startTime": %d, "funcName": "run", "taskType": "tasks.NormalType", "argDict": {}`, later)), "fullName")),
			refused(e400("startTime missing", path, body(`"fullName": "tasks.Once", "funcName": "run", "taskType": "tasks.NormalType", "argDict": {}`), "startTime")),
			refused(e400("startTime unparseable", path, body(`"fullName": "tasks.Once", "startTime": "soon", "funcName": "run", "taskType": "tasks.NormalType", "argDict": {}`), "startTime")),
			refused(e400("startTime an object", path, body(`"fullName": "tasks.Once", "startTime": {}, "funcName": "run", "taskType": "tasks.NormalType", "argDict": {}`), "startTime")),
			refused(e400("funcName a number", path, body(fmt.Sprintf(`"fullName": "tasks.Once", "startTime": %d, "funcName": 1, "taskType": "tasks.NormalType", "argDict": {}`, later)), "funcName")),
			refused(e400("taskType a number", path, body(fmt.Sprintf(`"fullName": "tasks.Once", "startTime": %d, "funcName": "run", "taskType": 1, "argDict": {}`, later)), "taskType")),
			refused(e400("argDict a string", path, body(fmt.Sprintf(`"fullName": "tasks.Once", "startTime": %d, "funcName": "run", "taskType": "tasks.NormalType", "argDict": "x"`, later)), "argDict")),
			refused(e400("unknown field", path, body(fmt.Sprintf(`"fullName": "tasks.Once", "startTime": %d, "colour": 1`, later)), `\"colour\"`)),
		}, refusedAll(badJSONRows(path, true), nil)...),
	}
}

func (f *sweep) listTasksSpec() routeSpec {
	return routeSpec{
		ok: func() routeCase {
			return okRow("list", "/api/tasks", "", `"totalCount":`, `"rowDatas":[`, f.taskID)
		},
		rows: []routeCase{
			okRow("by template and status", "/api/tasks?fullName=tasks.Once&status=waiting&page=1&pageSize=5", "", `"totalCount":`),
			okRow("of an unknown template", "/api/tasks?fullName=tasks.Nope", "", `"totalCount":0`),
			e400("status unknown", "/api/tasks?status=done", "", "status", "waiting"),
			e400("page not a number", "/api/tasks?page=x", "", "page"),
			e400("page negative", "/api/tasks?page=-2", "", "page"),
			e400("pageSize not a number", "/api/tasks?pageSize=lots", "", "pageSize"),
			e400("pageSize too big", "/api/tasks?pageSize=100000", "", "pageSize"),
			e400("page past any row", "/api/tasks?page=9223372036854775806", "", "page"),
			e400("page beyond 64 bits", "/api/tasks?page=9223372036854775808", "", "page"),
		},
	}
}

func (f *sweep) getTaskSpec(hostile map[string][]int) routeSpec {
	return routeSpec{hostile: hostile,
		ok: func() routeCase {
			return okRow("task", "/api/tasks/"+f.taskID, "", `"taskId":"`+f.taskID+`"`, `"argDict":{"n":1}`)
		},
		rows: []routeCase{
			e404("unknown task", "/api/tasks/task_nope", "", "task_nope"),
		},
	}
}

func (f *sweep) taskOpSpec() routeSpec {
	t := f.t
	status := func(t *testing.T, id string) any { return f.json(t, "GET", "/api/tasks/"+id, "")["status"] }
	ended := f.json(t, "POST", "/api/tasks", f.taskBody(`{"n": 0}`))["taskId"].(string)
	return routeSpec{hostile: map[string][]int{"taskId": {400}, "op": {404}},
		ok: func() routeCase {
			id := f.json(t, "POST", "/api/tasks", f.taskBody(`{"n": 0}`))["taskId"].(string)
			return routeCase{name: "forcedEnd", path: "/api/tasks/" + id + "/forcedEnd", want: 200, jsonBody: true, in: []string{`"status":"forcedEnd"`},
				check:     func(t *testing.T, _ *httptest.ResponseRecorder) { require.Equal(t, "forcedEnd", status(t, id)) },
				unchanged: func(t *testing.T) { require.Equal(t, "waiting", status(t, id)) },
			}
		},
		rows: []routeCase{
			okRow("forcedEnd", "/api/tasks/"+ended+"/forcedEnd", "", `"status":"forcedEnd"`),
			{name: "forcedEnd twice", path: "/api/tasks/" + ended + "/forcedEnd", want: 409, code: "conflict"},
			e404("unknown task", "/api/tasks/task_nope/forcedEnd", "", "task_nope"),
			{name: "unknown operation", path: "/api/tasks/" + f.taskID + "/explode", want: 404, code: "not_found", in: []string{"forcedEnd"},
				unchanged: func(t *testing.T) { require.Equal(t, "waiting", status(t, f.taskID)) }},
		},
	}
}

// ---- models ----

func (f *sweep) itemCount(t *testing.T, name string) int {
	return int(f.json(t, "GET", `/api/models/models.Item/rows?filter={"name":"`+name+`"}`, "")["totalCount"].(float64))
}

func (f *sweep) queryRowsSpec(hostile map[string][]int) routeSpec {
	path := "/api/models/models.Item/rows"
	return routeSpec{hostile: hostile,
		ok: func() routeCase {
			return okRow("query", path, "", `"totalCount":`, `"name":"seed"`)
		},
		rows: []routeCase{
			okRow("filter and order", path+`?filter={"qty":{"gte":1}}&orderBy=-qty&page=1&pageSize=10`, "", `"totalCount":`),
			e400("filter malformed", path+`?filter={`, "", "filter"),
			e400("filter not an object", path+`?filter=[1]`, "", "filter"),
			e400("filter with a number out of range", path+`?filter={"qty":{"gt":1e99999}}`, "", "out of range"),
			e400("filter on an unknown field", path+`?filter={"colour":"red"}`, "", "colour"),
			e400("filter of the wrong type", path+`?filter={"qty":"many"}`, "", "qty"),
			e400("orderBy an unknown field", path+`?orderBy=colour`, "", "colour"),
			e400("page not a number", path+`?page=x`, "", "page"),
			e400("pageSize too big", path+`?pageSize=5000`, "", "pageSize"),
			e400("page past any row (its offset would wrap around)", path+`?page=9223372036854775806`, "", "page", "9223372036854775806"),
			e400("page past any row, largest pageSize", path+`?page=9223372036854775&pageSize=1000`, "", "page"),
			e400("page beyond 64 bits", path+`?page=9223372036854775808`, "", "page"),
			okRow("a page past the rows is empty", path+`?page=100000&pageSize=1000`, "", `"rowDatas":[]`),
			e404("unknown model", "/api/models/models.Nope/rows", "", "models.Nope"),
			e404("not a model", "/api/models/services.MathSvc/rows", "", "services.MathSvc"),
		},
	}
}

func (f *sweep) createRowsSpec(hostile map[string][]int) routeSpec {
	path := "/api/models/models.Item/rows"
	none := func(name string) func(*testing.T) {
		return func(t *testing.T) { require.Zero(t, f.itemCount(t, name), "no row %s", name) }
	}
	return routeSpec{readsBody: true, hostile: hostile,
		ok: func() routeCase {
			n := "mk" + f.uniq()
			return routeCase{name: "create", path: path, body: `{"name": "` + n + `", "qty": 3}`, want: 200, jsonBody: true, in: []string{`"name":"` + n + `"`, `"id":`},
				check:     func(t *testing.T, _ *httptest.ResponseRecorder) { require.Equal(t, 1, f.itemCount(t, n)) },
				unchanged: none(n),
			}
		},
		rows: append([]routeCase{
			{name: "import", path: path, body: `[{"name": "imp1"}, {"name": "imp1", "qty": 2}]`, want: 200, jsonBody: true, in: []string{`"imported":2`},
				check: func(t *testing.T, _ *httptest.ResponseRecorder) { require.Equal(t, 2, f.itemCount(t, "imp1")) }},
			func() routeCase {
				c := e400("import with a bad row stores none", path, `[{"name": "imp2"}, {"name": "imp2", "qty": "bad"}]`, "qty")
				c.unchanged = none("imp2")
				return c
			}(),
			func() routeCase {
				c := e400("import with a row not an object", path, `[{"name": "imp3"}, 5]`, "row 1")
				c.unchanged = none("imp3")
				return c
			}(),
			func() routeCase {
				c := e400("a field of the wrong type", path, `{"name": "bad1", "qty": "many"}`, "qty")
				c.unchanged = none("bad1")
				return c
			}(),
			func() routeCase {
				c := e400("an unknown field", path, `{"name": "bad2", "colour": "red"}`, "colour")
				c.unchanged = none("bad2")
				return c
			}(),
			e400("a scalar", path, `7`, "JSON object"),
			e400("empty body", path, ``),
			e400("malformed JSON", path, `{"name":`, "not valid JSON"),
			e404("unknown model", "/api/models/models.Nope/rows", `{"name": "x"}`, "models.Nope"),
		}, refusedAll(badJSONRows(path, false), nil)...),
	}
}

func (f *sweep) updateRowSpec(hostile map[string][]int) routeSpec {
	t := f.t
	newRow := func() string {
		return fmt.Sprint(f.json(t, "POST", "/api/models/models.Item/rows", `{"name": "patchme", "qty": 1}`)["id"])
	}
	qty := func(t *testing.T, id string) any {
		return f.json(t, "GET", "/api/models/models.Item/rows/"+id, "")["qty"]
	}
	fixed := newRow()
	keep := func(c routeCase) routeCase {
		c.unchanged = func(t *testing.T) { require.EqualValues(t, 1, qty(t, fixed), "a refused patch changes nothing") }
		return c
	}
	path := "/api/models/models.Item/rows/" + fixed
	return routeSpec{readsBody: true, hostile: hostile,
		ok: func() routeCase {
			id := newRow()
			return routeCase{name: "patch", path: "/api/models/models.Item/rows/" + id, body: `{"qty": 9}`, want: 200, jsonBody: true, in: []string{`"qty":9`},
				check:     func(t *testing.T, _ *httptest.ResponseRecorder) { require.EqualValues(t, 9, qty(t, id)) },
				unchanged: func(t *testing.T) { require.EqualValues(t, 1, qty(t, id)) },
			}
		},
		rows: append([]routeCase{
			keep(e400("a field of the wrong type", path, `{"qty": "many"}`, "qty")),
			keep(e400("an unknown field", path, `{"colour": "red"}`, "colour")),
			keep(e400("id not a number", "/api/models/models.Item/rows/abc", `{"qty": 2}`, "abc")),
			keep(e404("unknown id", "/api/models/models.Item/rows/987654", `{"qty": 2}`, "987654")),
			keep(e404("unknown model", "/api/models/models.Nope/rows/"+fixed, `{"qty": 2}`, "models.Nope")),
		}, refusedAll(badJSONRows(path, true), func(t *testing.T) { require.EqualValues(t, 1, qty(t, fixed)) })...),
	}
}

func (f *sweep) deleteRowSpec(hostile map[string][]int) routeSpec {
	t := f.t
	newRow := func() string {
		return fmt.Sprint(f.json(t, "POST", "/api/models/models.Item/rows", `{"name": "delme", "qty": 1}`)["id"])
	}
	get := func(t *testing.T, id string) int {
		return f.do(t, routeCase{method: "GET", path: "/api/models/models.Item/rows/" + id}).Code
	}
	gone := newRow()
	return routeSpec{hostile: hostile,
		ok: func() routeCase {
			id := newRow()
			return routeCase{name: "delete", path: "/api/models/models.Item/rows/" + id, want: 200, jsonBody: true, in: []string{`"name":"delme"`},
				check:     func(t *testing.T, _ *httptest.ResponseRecorder) { require.Equal(t, 404, get(t, id)) },
				unchanged: func(t *testing.T) { require.Equal(t, 200, get(t, id)) },
			}
		},
		rows: []routeCase{
			okRow("delete", "/api/models/models.Item/rows/"+gone, ""),
			e404("delete again", "/api/models/models.Item/rows/"+gone, "", gone),
			e400("id not a number", "/api/models/models.Item/rows/x", "", "x"),
			e404("unknown model", "/api/models/models.Nope/rows/1", "", "models.Nope"),
		},
	}
}
